"""Run every tutorial notebook, both languages, in quick mode on the CPU with papermill.

A failure names the notebook, the cell and its first lines. Each run writes into pytest's
tmp_path, and must leave its figures in OUT_DIR.
"""
import json
import sys
from pathlib import Path

import papermill
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from papermill.exceptions import PapermillExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FIGURES = {
    "01_reconstruction_objective": {"vq_roundtrip.png", "embedding_similarity.png", "token_layout.png",
                                    "bottleneck_lookup.png"},
    "02_reca_finetuning": {"before.png", "loss.png", "before_after.png"},
    "03_inference": {"text_to_image.png", "reconstruction.png", "cfg_sweep.png", "panel.png"},
    "04_benchmarks": {"geneval_vs_Harmon-1.5B.png", "geneval_vs_OpenUni-2-1.6B.png"},
}
RUNS = [(language, name) for name in FIGURES for language in ("en", "zh")]


def execute(language: str, name: str, tmp_path: Path, **parameters) -> Path:
    """Run one notebook; returns its OUT_DIR. Raises AssertionError naming the failing cell."""
    out_dir = tmp_path / "out"
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS / language / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
            parameters={"OUT_DIR": str(out_dir), "DEVICE": "cpu", **parameters},
            kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    except PapermillExecutionError as error:
        head = "\n".join(error.source.splitlines()[:4])
        raise AssertionError(f"{language}/{name}.ipynb failed in cell {error.cell_index} "
                             f"({error.ename}: {error.evalue}):\n{head}") from None
    return out_dir


def test_the_python3_kernel_is_this_environments():
    spec = KernelSpecManager().get_kernel_spec("python3")
    # "python" in the spec's argv is replaced by the running interpreter, so the kernel is this venv's
    assert spec.argv[0] in ("python", sys.executable)
    assert Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve())


@pytest.mark.parametrize("language, name", RUNS, ids=[f"{lang}/{name}" for lang, name in RUNS])
def test_notebook_runs_in_quick_mode_and_saves_its_figures(language, name, tmp_path):
    out_dir = execute(language, name, tmp_path)
    saved = {path.name for path in out_dir.rglob("*.png")}
    assert FIGURES[name] <= saved, f"missing figures: {sorted(FIGURES[name] - saved)}"


def test_a_papermill_string_override_changes_the_run(tmp_path):
    # papermill's command line hands "-p QUICK true" over as text; STEPS arrives as text here too
    out_dir = execute("en", "02_reca_finetuning", tmp_path, STEPS="3", QUICK="true")
    history = (out_dir / "train" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in history] == [1, 2, 3]
