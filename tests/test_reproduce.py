"""`recakit reproduce --preset toy`: the quick run end to end, and the result aggregation."""
import json

import pytest

from recakit import geneval
from recakit.reproduce import aggregate, evaluation_entries, results_markdown


def test_quick_reproduce_writes_valid_results(tmp_path):
    from recakit.cli import main

    out = tmp_path / "run"
    assert main(["reproduce", "--preset", "toy", "--out", str(out), "--quick"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [0]
    for arm in ("base", "control", "reca"):
        assert 0.0 <= results[arm]["overall"] <= 1.0
        assert set(results[arm]["tasks"]) == set(geneval.TASKS)
        assert results[arm]["per_seed"][0]["n_images"] == len(geneval.TASKS)
    assert "| reca |" in (out / "results.md").read_text()
    assert (out / "samples.png").stat().st_size > 0
    # the two arms were trained for the asked number of steps, from the same base
    for arm in ("control", "reca"):
        history = (out / "seed0" / f"{arm}_train" / "history.jsonl").read_text().splitlines()
        assert len(history) == 2


def test_aggregate_mean_std_and_per_seed():
    tasks = {task: 0.5 for task in geneval.TASKS}
    runs = [{"seed": 0, "overall": 0.4, "tasks": dict(tasks, position=0.2)},
            {"seed": 1, "overall": 0.6, "tasks": dict(tasks, position=0.4)}]
    result = aggregate(runs)
    assert result["overall"] == pytest.approx(0.5)
    assert result["tasks"]["position"] == pytest.approx(0.3)
    assert result["std"]["overall"] == pytest.approx(0.1414, abs=1e-3)
    assert result["per_seed"] == runs
    assert "std" not in aggregate(runs[:1])


def test_results_markdown_reports_gains():
    def arm(overall):
        return aggregate([{"seed": 0, "overall": overall, "tasks": {t: overall for t in geneval.TASKS}}])

    text = results_markdown({"seeds": [0], "settings": {}, "base": arm(0.4), "control": arm(0.45), "reca": arm(0.6)})
    assert "| RecA - base |" in text and "+20.0" in text
    assert "RecA above its base on 1 of 1 seeds." in text


def test_evaluation_entries_one_per_task():
    entries = evaluation_entries(1)
    assert sorted(e["tag"] for e in entries) == sorted(geneval.TASKS)
    assert len(evaluation_entries(None)) > len(entries)
