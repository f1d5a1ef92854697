"""`recakit.train` under `torchrun --nproc_per_node 2` (CPU, gloo) follows the same loss curve as
one process at the same global batch, and both processes write their part of the checkpoint."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("train_worker.py")


def run_worker(tmp_path, name, launcher, *options):
    result, out_dir = tmp_path / f"{name}.json", tmp_path / name
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, *launcher, str(WORKER), "--result", str(result), "--out-dir", str(out_dir),
         *options], env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(result.read_text()), out_dir


def test_two_processes_match_one(tmp_path):
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    single, _ = run_worker(tmp_path, "single", [])
    double, out_dir = run_worker(tmp_path, "double", torchrun, "--grad-accum", "2")
    assert len(single["losses"]) == 6
    assert double["losses"] == pytest.approx(single["losses"], rel=1e-4)
    assert double["weights"] == pytest.approx(single["weights"], rel=1e-4, abs=1e-6)
    checkpoint = out_dir / "checkpoint"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["processes"] == 2
    assert (checkpoint / "rng_state_0.pt").exists() and (checkpoint / "rng_state_1.pt").exists()
