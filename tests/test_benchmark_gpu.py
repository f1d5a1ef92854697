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
RUN_WITHOUT_DIFFUSERS = ("import runpy, sys; sys.modules['diffusers'] = None; "
                         "import bitsandbytes.nn.modules as bnb; bnb.has_avx512bf16 = lambda: {packed}; "
                         "sys.argv = [sys.argv[1]] + sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def run_benchmark(*arguments, cwd, packed=False):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    code = RUN_WITHOUT_DIFFUSERS.format(packed=packed)
    return subprocess.run([sys.executable, "-c", code, str(SCRIPT), *arguments],
                          cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)


def benchmark_result(folder, *arguments, packed=False):
    done = run_benchmark("--tiny", *arguments, "--out", str(folder / "tmp.json"), cwd=folder, packed=packed)
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
        train["fast"]["tokens_per_s"] / train["plain"]["tokens_per_s"], abs=1e-3)
    # footprints in GiB, to the benchmark's 3 decimals: the tiny model's three all round to
    # 0.002, so test_quantized_footprint_is_that_of_the_packed_weights checks the exact bytes
    model, _ = import_benchmark().build_model("tiny", torch.device("cpu"), torch.float32)
    for kind in ("bf16", "nf4", "int8"):
        assert tiny_result[f"{kind}_gib"] == round(expected_footprint(model, kind) / 2**30, 3), kind
    # GPU-only figures stay empty on the CPU, with the reason
    assert tiny_result["full_ft_1b_peak_gib"] is None and "CUDA" in tiny_result["reasons"]["full_ft_1b_peak_gib"]


def test_quantized_sections_run_on_the_packed_bitsandbytes_cpu_path_too(tmp_path):
    result = benchmark_result(tmp_path, "--sections", "quantized,presets", packed=True)
    for key in ("nf4_gib", "int8_gib"):
        assert result[key] is not None and result[key] > 0, result["reasons"].get(key)
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
    from recakit.registry import adapter_for
    from recakit.objective import freeze_for_reca

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
