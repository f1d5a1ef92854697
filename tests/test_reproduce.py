"""`recakit reproduce --preset toy`: the quick run end to end, and the result aggregation."""

import json

import pytest
from PIL import Image

from recakit import load_model
from recakit.bench import geneval
from recakit.toy import reproduce
from recakit.toy.detect import ShapesDetector
from recakit.toy.reproduce import aggregate, evaluation_entries, results_markdown


def test_quick_reproduce_writes_valid_results(tmp_path, capsys):
    from recakit.commands.main import main

    out = tmp_path / "run"
    assert main(["reproduce", "--preset", "toy", "--out", str(out), "--quick"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [0]
    detector = ShapesDetector()
    for arm, folder in (
        ("base", out / "base"),
        ("control", out / "seed0" / "control"),
        ("reca", out / "seed0" / "reca"),
    ):
        # the scores are those of judging the arm's images on disk afresh, task by task
        verdicts = {task: [] for task in geneval.TASKS}
        for record in map(json.loads, (folder / geneval.RESULTS_FILE).read_text().splitlines()):
            entry = json.loads((folder / record["filename"]).parents[1].joinpath("metadata.jsonl").read_text())
            with Image.open(folder / record["filename"]) as image:
                verdicts[entry["tag"]].append(geneval.judge(entry, detector.detect([image.convert("RGB")])[0])[0])
        tasks = {task: sum(found) / len(found) for task, found in verdicts.items()}
        assert results[arm]["tasks"] == pytest.approx(tasks)
        assert results[arm]["overall"] == pytest.approx(sum(tasks.values()) / len(tasks))
        assert results[arm]["per_seed"][0]["n_images"] == len(geneval.TASKS)
    assert "| reca |" in (out / "results.md").read_text()
    assert (out / "samples.png").stat().st_size > 0
    # the two arms were trained for the asked number of steps, from the same base
    for arm in ("control", "reca"):
        history = (out / "seed0" / f"{arm}_train" / "history.jsonl").read_text().splitlines()
        assert len(history) == 2
    # the same folder with other settings would mix two runs' checkpoints and samples
    assert main(["reproduce", "--preset", "toy", "--out", str(out), "--quick", "--steps", "3"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main(["reproduce", "--preset", "toy", "--out", str(tmp_path / "longer"), "--quick", "--steps", "3"]) == 0
    assert len((tmp_path / "longer" / "seed0" / "reca_train" / "history.jsonl").read_text().splitlines()) == 3


def test_arms_never_see_a_training_scene_twice(tmp_path, monkeypatch):
    # Cycling a few thousand scenes, both arms memorised them; every step must bring new ones.
    from conftest import RecordedReads

    from recakit.toy import reproduce
    from recakit.toy.model import load_toy

    datasets = []
    real_dataset = reproduce.scene_dataset

    def recorded_dataset(n, **options):
        datasets.append(RecordedReads(real_dataset(n, **options)))
        return datasets[-1]

    monkeypatch.setattr(reproduce, "scene_dataset", recorded_dataset)
    base, processor = load_toy()
    settings = dict(reproduce.QUICK, steps=3, batch_size=2)
    reproduce.train_arm(base, processor, "reca", 0, settings, tmp_path / "reca")
    seen = datasets[0].read
    assert sorted(seen) == list(range(6))


def test_aggregate_mean_std_and_per_seed():
    tasks = {task: 0.5 for task in geneval.TASKS}
    runs = [
        {"seed": 0, "overall": 0.4, "tasks": dict(tasks, position=0.2)},
        {"seed": 1, "overall": 0.6, "tasks": dict(tasks, position=0.4)},
    ]
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


def test_reca_arm_splits_its_batch_by_share():
    """The RecA arm's loss: RecA on the first `reca_share` of the batch, sparse text-to-image on
    the rest, as a mean over examples; share 1 is RecA alone, `reca_resolution` shrinks what the
    understanding encoder sees, and a bad share is refused."""
    import torch

    from recakit.objective import reca_loss
    from recakit.toy.model import load_toy
    from recakit.toy.reproduce import arm_loss
    from recakit.toy.shapes import scene_dataset
    from recakit.toy.train_base import UNCONDITIONAL_RATE

    model, processor = load_toy()
    data = scene_dataset(4, seed=3)
    examples, seeds = [data[i] for i in range(4)], [10, 11, 12, 13]
    images, captions = [e.image for e in examples], [e.sparse for e in examples]
    with torch.no_grad():
        alone = reca_loss(model, processor, images, sample_seeds=seeds, instruction_dropout=UNCONDITIONAL_RATE)
        assert torch.allclose(arm_loss("reca", processor, 1.0)(model, examples, seeds), alone)
        half = (
            reca_loss(
                model,
                processor,
                images[:2],
                sample_seeds=seeds[:2],
                instruction_dropout=UNCONDITIONAL_RATE,
                t2i=(images[2:], captions[2:]),
            )
            / 2
        )
        assert torch.allclose(arm_loss("reca", processor, 0.5)(model, examples, seeds), half)
        quarter = arm_loss("reca", processor, 0.25)(model, examples, seeds)
        assert not torch.allclose(quarter, half)
        # the understanding encoder sees the unlabeled images at reca_resolution; the targets stay full size
        shrunk = reca_loss(
            model, processor, images, sample_seeds=seeds, instruction_dropout=UNCONDITIONAL_RATE, resolution=32
        )
        assert torch.allclose(arm_loss("reca", processor, 1.0, 32)(model, examples, seeds), shrunk)
        assert not torch.allclose(shrunk, alone)
    with pytest.raises(ValueError, match="reca_share"):
        arm_loss("reca", processor, 0.0)


@pytest.mark.parametrize("name", ["toy-reca", "toy-control"])
def test_a_shipped_arm_scores_exactly_what_its_reproduction_run_reported(name, tmp_path):
    # The shipped arms are seed 0 of `recakit reproduce --preset toy` (their training.json says
    # how): sampled with the run's settings on the whole GenEval-mini, they give the run's scores.
    from recakit.toy.model import SHIPPED_MODELS

    model, processor = load_model(name, device="cpu")
    reported = json.loads((SHIPPED_MODELS[name] / "training.json").read_text())["geneval_mini"]
    scores = reproduce.evaluate(
        model, processor, reproduce.evaluation_entries(None), tmp_path, reproduce.FULL, ShapesDetector()
    )
    assert scores == reported
