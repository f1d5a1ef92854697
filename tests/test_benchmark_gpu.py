"""benchmarks/gpu.py runs its whole code path on the tiny model on a CPU and writes every key."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu.py"

# the GPU machine has no diffusers: the benchmark must not need it; and bitsandbytes' 4-bit
# layers take the CPU path chosen by the test (see conftest.bnb_cpu_packed), not the machine's
RUN_WITHOUT_DIFFUSERS = (
    "import runpy, sys; sys.modules['diffusers'] = None; "
    "import bitsandbytes.nn.modules as bnb; bnb.has_avx512bf16 = lambda: {packed}; "
    "sys.argv = [sys.argv[1]] + sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def run_benchmark(*arguments, cwd, packed=False, diffusers=False):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    code = RUN_WITHOUT_DIFFUSERS.format(packed=packed)
    if diffusers:  # the OpenUni section needs it (the GPU machine gets it from a carried wheel)
        code = code.replace("sys.modules['diffusers'] = None; ", "")
    return subprocess.run(
        [sys.executable, "-c", code, str(SCRIPT), *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def benchmark_result(folder, *arguments, packed=False, diffusers=False):
    done = run_benchmark(
        "--tiny", *arguments, "--out", str(folder / "tmp.json"), cwd=folder, packed=packed, diffusers=diffusers
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((folder / "tmp.json").read_text())


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    return benchmark_result(tmp_path_factory.mktemp("gpu_benchmark"))


def test_every_required_key_is_written_and_every_gap_explained(tiny_result):
    for key in import_benchmark().REQUIRED_KEYS:
        assert key in tiny_result
        if tiny_result[key] is None:
            assert tiny_result["reasons"].get(key), f"{key} is null without a reason"
    assert tiny_result["model_size"] == "tiny"
    assert not any(key.endswith("_error") for key in tiny_result["details"])


def import_benchmark():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return gpu


def expected_footprint(model, kind: str) -> float:
    """Bytes of `model` once its linear layers, all but the VQ model's and the two heads', hold
    NF4 (half a byte a weight) or INT8 (one byte) weights; every other tensor as it is. NF4 also
    leaves alone the layers bitsandbytes' packed CPU kernel cannot take: an input width that is
    not a multiple of 64 or an output width that is not a multiple of 32."""
    kept = ("model.vqmodel", "model.generation_head", "lm_head")

    def quantizable(name, module):
        if not isinstance(module, torch.nn.Linear) or name.startswith(kept):
            return False
        return not (kind == "nf4" and (module.in_features % 64 or module.out_features % 32))

    quantized = {f"{name}.weight" for name, module in model.named_modules() if quantizable(name, module)}
    weight_bytes = {"nf4": 0.5, "int8": 1}.get(kind)  # None: unquantized
    total = sum(buffer.numel() * buffer.element_size() for buffer in model.buffers())
    for name, parameter in model.named_parameters():
        per_value = weight_bytes if weight_bytes and name in quantized else parameter.element_size()
        total += parameter.numel() * per_value
    return total


@pytest.mark.parametrize("kind", ["nf4", "int8"])
def test_quantized_footprint_is_that_of_the_packed_weights(kind):
    gpu = import_benchmark()
    model, _ = gpu.build_model("tiny", torch.device("cpu"), torch.float32)
    expected = expected_footprint(model, kind)
    gpu.quantize_linears(model, kind, torch.float32)
    assert model.get_memory_footprint() == expected


def test_cpu_run_measures_what_needs_no_gpu(tiny_result):
    details = tiny_result["details"]
    # the headline speedups are the ratios of the timed figures they summarise
    for batch in ("b1", "b16"):
        figures = details["sampling"][batch]
        plain = figures["plain"]["s_per_image"]
        speedups = [mode["speedup"] for name, mode in figures.items() if name != "plain" and "speedup" in mode]
        for name, mode in figures.items():
            if "speedup" in mode:  # both times are rounded to 0.1 ms
                assert mode["speedup"] == pytest.approx(plain / mode["s_per_image"], rel=1e-2), name
        assert tiny_result[f"sampling_speedup_{batch}"] == max(speedups)
    train = details["train"]
    assert tiny_result["train_speedup"] == pytest.approx(
        train["fast"]["tokens_per_s"] / train["plain"]["tokens_per_s"], abs=1e-3
    )
    # footprints in GiB, to the benchmark's 3 decimals: the tiny model's three all round to
    # 0.002, so test_quantized_footprint_is_that_of_the_packed_weights checks the exact bytes
    model, _ = import_benchmark().build_model("tiny", torch.device("cpu"), torch.float32)
    for kind in ("bf16", "nf4", "int8"):
        assert tiny_result[f"{kind}_gib"] == round(expected_footprint(model, kind) / 2**30, 3), kind
    # GPU-only figures stay empty on the CPU, with the reason
    assert tiny_result["full_ft_1b_peak_gib"] is None and "CUDA" in tiny_result["reasons"]["full_ft_1b_peak_gib"]


def test_quantized_sections_run_on_the_packed_bitsandbytes_cpu_path_too(tmp_path):
    result = benchmark_result(tmp_path, "--sections", "quantized,presets", packed=True)
    model, _ = import_benchmark().build_model("tiny", torch.device("cpu"), torch.float32)
    for kind in ("nf4", "int8"):  # the footprint is the weights', whichever kernel runs them
        assert result[f"{kind}_gib"] == round(expected_footprint(model, kind) / 2**30, 3), result["reasons"]
    assert "error" not in result["details"]["presets"]["janus-pro-7b-qlora-16gb"]


def test_fast_paths_compute_what_the_plain_paths_compute(tiny_result):
    sampling = tiny_result["details"]["sampling"]
    for batch in ("b1", "b16"):
        assert sampling[batch]["eager"]["same_codes_fraction"] == 1.0
    train = tiny_result["details"]["train"]
    # same weights, same images: the chunked loss of the fast path is the plain loss
    assert train["fast"]["loss"] == pytest.approx(train["plain"]["loss"], rel=1e-4)
    for preset in ("janus-pro-1b-full-16gb", "janus-pro-7b-qlora-16gb"):
        figures = tiny_result["details"]["presets"][preset]
        assert "error" not in figures, figures.get("traceback")
    assert tiny_result["details"]["presets"]["janus-pro-7b-qlora-16gb"]["trainable_m"] > 0


def test_unknown_section_is_refused(tmp_path):
    done = run_benchmark("--tiny", "--sections", "sampling,warp", "--out", str(tmp_path / "x.json"), cwd=tmp_path)
    assert done.returncode != 0
    assert "warp" in done.stderr and "sampling" in done.stderr


def test_compiled_training_step_traces_whole_and_computes_the_same_loss():
    """The GPU run compiles these modules with inductor; tracing them (aot_eager, no code
    generation) on the CPU checks that they compile without graph breaks and change nothing."""
    import torch._dynamo.utils

    gpu = import_benchmark()
    from recakit.objective import freeze_for_reca
    from recakit.registry import adapter_for

    cpu = torch.device("cpu")
    losses = []
    for compiled in (False, True):
        model, processor = gpu.build_model("tiny", cpu, torch.float32)
        freeze_for_reca(model)
        model.train()
        if compiled:
            torch._dynamo.reset()
            torch._dynamo.utils.counters.clear()
            for module in gpu.compiled_modules(model):
                module.compile(backend="aot_eager")
        pixels = gpu.random_pixels(processor, 2, 32, 1, cpu, torch.float32)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        with gpu.chunked_loss(True):
            losses.append(gpu.run_steps(adapter_for(model, processor), optimizer, pixels, 2, 0, 1, cpu)["loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert not torch._dynamo.utils.counters["graph_break"]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 3


def test_without_diffusers_the_openuni_figures_are_null_with_the_reason(tiny_result):
    for key in import_benchmark().OPENUNI_KEYS:
        assert tiny_result[key] is None and "diffusers cannot be imported" in tiny_result["reasons"][key]


def test_openuni_section_steps_the_80gb_preset_and_samples_what_recakit_samples(tmp_path):
    """The tiny run's figures are recomputed here from a fresh tiny OpenUni: the first step's loss
    (initial weights, the benchmark's images and seeds), the parameter split, and the image."""
    import hashlib

    import numpy as np

    import recakit
    from recakit.memory_presets import get_preset
    from recakit.models.openuni import tiny_openuni

    gpu = import_benchmark()
    result = benchmark_result(tmp_path, "--sections", "openuni", diffusers=True)
    details = result["details"]["openuni"]
    reca, sample = details["reca"], details["sample"]
    assert details["model_size"] == "tiny" and not any(key.endswith("_error") for key in result["details"])
    assert result["openuni_l_reca_step_s"] == reca["step_s"] and result["openuni_l_image_s"] == sample["s_per_image"]
    for key in ("openuni_l_reca_peak_gib", "openuni_l_image_peak_gib"):
        assert result[key] is None and "CUDA" in result["reasons"][key]

    preset = get_preset("openuni-l-reca-80gb")
    model, tokenizer = tiny_openuni(seed=0)
    assert (reca["preset"], reca["images"], reca["micro_batch"], reca["side"]) == (preset.name, 8, 8, 32)
    counts = recakit.freeze_for_reca(model)
    assert (reca["trainable"], reca["frozen"]) == (counts["trainable"], counts["frozen"])
    images = gpu.random_images(8, 32, 3)
    with torch.no_grad():
        loss = recakit.reca_loss(model, tokenizer, images, sample_seeds=list(range(8)), instruction_dropout=0.0)
    assert reca["first_loss"] == pytest.approx(loss.item(), abs=2e-6)

    assert (sample["side"], sample["steps"], sample["cfg_scale"]) == (32, 20, 4.5)
    model.eval()
    image = recakit.generate_images(
        model, tokenizer, [gpu.OPENUNI_PROMPT], seed=[0], cfg_scale=4.5, steps=20, progress=False
    )[0]
    assert sample["sha256"] == hashlib.sha256(np.asarray(image).tobytes()).hexdigest()


def test_openuni_l_built_from_configs_has_the_sizes_the_presets_plan_for():
    """On the meta device (no memory): 1.83 B trained and 2.40 B frozen parameters, the figures
    behind the openuni-l-reca-80gb preset's arithmetic, and the released models' shapes."""
    import recakit

    model, _ = import_benchmark().build_openuni("l", torch.device("meta"), torch.float32)
    counts = recakit.freeze_for_reca(model)
    assert (round(counts["trainable"] / 1e9, 2), round(counts["frozen"] / 1e9, 2)) == (1.83, 2.40)
    assert round(sum(p.numel() for p in model.transformer.parameters()) / 1e9, 2) == 1.60  # SANA 1.6B
    assert model.lmm.lm_head.weight is not model.lmm.get_input_embeddings().weight  # InternVL3's untied head
    shape = (model.num_queries, model.image_size, model.vit_size, model.lmm.config.image_seq_length)
    assert shape == (256, 512, 448, 256)
    assert model.transformer.config.sample_size * 32 == 512  # the DC-AE's 32x compression
