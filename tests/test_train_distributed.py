"""`recakit.train` across processes: under `torchrun --nproc_per_node 2` (CPU, gloo) it follows the
same loss curve as one process at the same global batch, and a run stopped by SIGTERM (what
schedulers and torchrun send) saves its progress and resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import train_worker  # tests/ is on sys.path under pytest

WORKER = Path(__file__).with_name("train_worker.py")


def test_two_processes_match_one(tmp_path):
    single = train_worker.run(tmp_path / "single")

    result, out_dir = tmp_path / "double.json", tmp_path / "double"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(WORKER),
            "--result",
            str(result),
            "--out-dir",
            str(out_dir),
            "--grad-accum",
            "2",
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    double = json.loads(result.read_text())
    assert len(single["losses"]) == 6
    assert double["losses"] == pytest.approx(single["losses"], rel=1e-4)
    assert double["weights"] == pytest.approx(single["weights"], rel=1e-4, abs=1e-6)
    checkpoint = out_dir / "checkpoint"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["processes"] == 2
    assert (checkpoint / "rng_state_0.pt").exists() and (checkpoint / "rng_state_1.pt").exists()


def test_recakit_train_under_torchrun_follows_the_single_process_curve(tmp_path):
    from PIL import Image

    import recakit
    from recakit.commands.main import main

    model, processor = recakit.tiny_janus()
    model.save_pretrained(tmp_path / "base")
    processor.save_pretrained(tmp_path / "base")
    (tmp_path / "images").mkdir()
    for i in range(6):
        Image.new("RGB", (40, 40), (40 * i, 90, 250 - 30 * i)).save(tmp_path / "images" / f"{i}.png")
    command = [
        "train",
        "--model",
        str(tmp_path / "base"),
        "--images",
        str(tmp_path / "images"),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
        "--mixed-precision",
        "no",
    ]

    assert main(command + ["--out", str(tmp_path / "single"), "--device", "cpu"]) == 0
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "recakit.commands.main",
            *command,
            "--out",
            str(tmp_path / "double"),
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    def history(run):
        return [json.loads(line) for line in (tmp_path / run / "history.jsonl").read_text().splitlines()]

    single, double = history("single"), history("double")
    assert [r["step"] for r in double] == [1, 2]  # one writer, not two
    assert [r["loss"] for r in double] == pytest.approx([r["loss"] for r in single], rel=1e-4)
    assert (tmp_path / "double" / "final" / "config.json").exists()


def test_sigterm_saves_the_progress_and_the_run_resumes_exactly(tmp_path):
    out_dir, steps = tmp_path / "run", 200
    process = subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            "--result",
            str(tmp_path / "unused.json"),
            "--out-dir",
            str(out_dir),
            "--steps",
            str(steps),
            "--slow",
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    history_file = out_dir / "history.jsonl"
    deadline = time.monotonic() + 240
    while not (history_file.exists() and len(history_file.read_text().splitlines()) >= 4):
        assert process.poll() is None and time.monotonic() < deadline, "training did not start"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=120)
    assert process.returncode != 0 and "KeyboardInterrupt" in errors

    saved = json.loads((out_dir / "checkpoint" / "trainer_state.json").read_text())["step"]
    # Saved at the step it stopped on (at least the 4th), or, when the signal lands inside an
    # update, at the last periodic checkpoint (every 3 steps): the 3rd at the earliest.
    assert 3 <= saved < steps
    assert saved == len(history_file.read_text().splitlines()) or saved % 3 == 0
    resumed = train_worker.run(out_dir, steps=steps)
    reference = train_worker.run(tmp_path / "reference", steps=steps)
    assert resumed["losses"] == pytest.approx(reference["losses"], rel=1e-6)
