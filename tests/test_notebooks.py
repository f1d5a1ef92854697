"""The stored notebooks carry the outputs of their default run; re-executing them must give the
same outputs. Each notebook is copied into tmp_path and run there under nbval (so its OUT_DIR
starts empty and no earlier run's samples are reused), in the environment `notebooks/build.py
--execute` used to store them. nbval compares text and stream outputs after the sanitizer
(notebooks/sanitize.cfg: timings, paths, memory addresses); it does not compare PNG bytes, but
every figure's text form is a digest of its data (`recakit.notebook.summarize_figures`), so a
changed figure fails as well. Rebuild with `python notebooks/build.py --execute` after a change.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import papermill
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from papermill.exceptions import PapermillExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
from build import RUN_ENVIRONMENT  # noqa: E402  (the notebooks' folder is not a package)

FIGURES = {
    "01_reconstruction_objective": {
        "vq_roundtrip.png",
        "embedding_similarity.png",
        "token_layout.png",
        "bottleneck_lookup.png",
        "reca_pipeline.png",
        "flow_matching.png",
    },
    "02_reca_finetuning": {"reca_pipeline.png", "loss.png", "base_vs_reca.png"},
    "03_inference": {
        "text_to_image.png",
        "reconstruction.png",
        "cfg_sweep.png",
        "panel.png",
        "guided_loop.png",
        "openuni_samples.png",
        "reca_pipeline.png",
    },
    "04_benchmarks": {"reca_pipeline.png", "gains.png"},
}
RUNS = [(language, name) for name in FIGURES for language in ("en", "zh")]


def nbval(notebook: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Re-execute `notebook` under nbval, comparing its outputs with the stored ones."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "nbval_plugin",
        "--nbval",
        "--nbval-current-env",
        "--nbval-sanitize-with",
        str(NOTEBOOKS / "sanitize.cfg"),
        "--nbval-cell-timeout",
        "1800",
        str(notebook),
    ]
    environment = {**os.environ, **RUN_ENVIRONMENT, "PYTHONPATH": os.pathsep.join([str(ROOT), str(NOTEBOOKS)])}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True)


def execute(language: str, name: str, tmp_path: Path, **parameters) -> Path:
    """Run one notebook with papermill; returns its OUT_DIR. Raises AssertionError naming the failing cell."""
    out_dir = tmp_path / "out"
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS / language / f"{name}.ipynb"),
            str(tmp_path / f"{name}.ipynb"),
            parameters={"OUT_DIR": str(out_dir), "DEVICE": "cpu", **parameters},
            kernel_name="python3",
            cwd=str(tmp_path),
            progress_bar=False,
        )
    except PapermillExecutionError as error:
        head = "\n".join(error.source.splitlines()[:4])
        raise AssertionError(
            f"{language}/{name}.ipynb failed in cell {error.cell_index} ({error.ename}: {error.evalue}):\n{head}"
        ) from None
    return out_dir


def test_the_python3_kernel_is_this_environments():
    spec = KernelSpecManager().get_kernel_spec("python3")
    # "python" in the spec's argv is replaced by the running interpreter, so the kernel is this venv's
    assert spec.argv[0] in ("python", sys.executable)
    assert Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve())


@pytest.mark.parametrize("language, name", RUNS, ids=[f"{lang}/{name}" for lang, name in RUNS])
def test_a_rerun_reproduces_the_stored_outputs_and_saves_the_figures(language, name, tmp_path):
    notebook = shutil.copy(NOTEBOOKS / language / f"{name}.ipynb", tmp_path / f"{name}.ipynb")
    result = nbval(Path(notebook), tmp_path)
    assert result.returncode == 0, (
        f"{language}/{name}.ipynb: outputs differ from the stored ones or a cell failed; if the change is "
        f"intended, rebuild with `python notebooks/build.py --execute`\n{result.stdout[-6000:]}"
    )
    saved = {path.name for path in (tmp_path / "runs").rglob("*.png")}
    assert FIGURES[name] <= saved, f"missing figures: {sorted(FIGURES[name] - saved)}"


def test_nbval_fails_on_a_changed_output(tmp_path):
    # the comparison is real: a stored output that the code does not print makes the run fail
    notebook = json.loads((NOTEBOOKS / "en" / "02_reca_finetuning.ipynb").read_text(encoding="utf-8"))
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    notebook["cells"] = [cell for cell in notebook["cells"] if cell["cell_type"] != "code" or cell in code_cells[:3]]
    printed = next(output for output in code_cells[2]["outputs"] if output["output_type"] == "stream")
    printed["text"] = ["a line the code never printed\n"]
    path = tmp_path / "changed.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    result = nbval(path, tmp_path)
    assert result.returncode != 0 and "never printed" in result.stdout


def test_nbval_leaves_stderr_to_the_machine(tmp_path):
    # a library notice that one machine prints and another does not is no changed output
    notebook = json.loads((NOTEBOOKS / "en" / "02_reca_finetuning.ipynb").read_text(encoding="utf-8"))
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    notebook["cells"] = [cell for cell in notebook["cells"] if cell["cell_type"] != "code" or cell in code_cells[:3]]
    code_cells[2]["outputs"].insert(0, {"output_type": "stream", "name": "stderr", "text": ["a notice\n"]})
    path = tmp_path / "noticed.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    result = nbval(path, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_papermill_string_override_changes_the_run(tmp_path):
    # papermill's command line hands "-p QUICK true" over as text; STEPS arrives as text here too
    out_dir = execute("en", "02_reca_finetuning", tmp_path, STEPS="3", QUICK="true")
    history = (out_dir / "train" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in history] == [1, 2, 3]
