"""benchmarks/gpu.py runs its whole code path on the tiny model on a CPU and writes every key."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from gpu import REQUIRED_KEYS
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    for key in REQUIRED_KEYS:
        assert key in tiny_result
        if tiny_result[key] is None:
            assert tiny_result["reasons"].get(key), f"{key} is null without a reason"
    assert tiny_result["model_size"] == "tiny"
    assert not any(key.endswith("_error") for key in tiny_result["details"])


def test_cpu_run_measures_what_needs_no_gpu(tiny_result):
    for key in ("sampling_speedup_b1", "sampling_speedup_b16", "train_speedup", "bf16_gib", "nf4_gib", "int8_gib"):
        assert tiny_result[key] is not None and tiny_result[key] > 0, key
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
    import torch
    import torch._dynamo.utils

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from recakit.adapter import adapter_for
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
