"""GenEval prompts cache, sampling driver and scoring command, offline with fakes."""

import hashlib
import itertools
import json
import math
import shutil
from pathlib import Path

import pytest
from PIL import Image

import recakit.bench.geneval as geneval
import recakit.bench.runs as runs
import recakit.bench.scorers as scorers
import recakit.commands.geneval as geneval_commands
from recakit.commands.main import main

# the official prompt file, kept as test data (MIT; see tests/data/README.md)
OFFICIAL_COPY = Path(__file__).resolve().parent / "data" / "geneval" / "evaluation_metadata.jsonl"
CACHED = Path("geneval") / "evaluation_metadata.jsonl"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("RECAKIT_CACHE", str(folder))
    return folder


class FakeNetwork(list):
    """Records every download; serves `serve` bytes, or fails like a machine with no network."""

    serve = None

    def download(self, url, timeout):
        self.append(url)
        if self.serve is None:
            raise OSError("network is unreachable")
        return self.serve


@pytest.fixture
def downloads(monkeypatch):
    network = FakeNetwork()
    monkeypatch.setattr(runs, "_download", network.download)
    return network


def test_cached_file_with_the_right_checksum_needs_no_network(cache, downloads):
    (cache / CACHED).parent.mkdir(parents=True)
    shutil.copy(OFFICIAL_COPY, cache / CACHED)
    entries = geneval.load_prompts("official")
    assert downloads == []
    assert len(entries) == 553
    counts = {task: sum(e["tag"] == task for e in entries) for task in geneval.TASKS}
    assert counts == {
        "single_object": 80,
        "two_object": 99,
        "counting": 80,
        "colors": 94,
        "position": 100,
        "color_attr": 100,
    }


def test_corrupted_cache_is_reported_and_fetched_again(cache, downloads, capsys):
    (cache / CACHED).parent.mkdir(parents=True)
    (cache / CACHED).write_text('{"tag": "single_object", "include": [], "prompt": "tampered"}\n')
    downloads.serve = OFFICIAL_COPY.read_bytes()
    entries = geneval.load_prompts("official")
    assert downloads == [geneval.OFFICIAL_METADATA_URL]
    assert "wrong SHA-256" in capsys.readouterr().err
    assert len(entries) == 553
    assert runs.sha256_of(cache / CACHED) == geneval.OFFICIAL_METADATA_SHA256


def test_a_download_with_the_wrong_checksum_is_not_cached(cache, downloads):
    downloads.serve = b'{"tag": "single_object", "include": [], "prompt": "a photo of a cup"}\n'
    with pytest.raises(RuntimeError, match="SHA-256"):
        geneval.load_prompts("official")
    assert not (cache / CACHED).exists()


def test_offline_without_cache_says_where_to_put_the_file(cache, downloads):
    with pytest.raises(RuntimeError) as error:
        geneval.load_prompts("official")
    assert str(cache / CACHED) in str(error.value)
    assert "network is unreachable" in str(error.value)
    assert main(["geneval", "prompts", "--set", "official", "--out", str(cache / "p.jsonl")]) == 2


def test_prompts_command_writes_the_official_and_mini_sets(cache, downloads, tmp_path):
    downloads.serve = OFFICIAL_COPY.read_bytes()
    out = tmp_path / "official.jsonl"
    assert main(["geneval", "prompts", "--set", "official", "--out", str(out)]) == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == geneval.OFFICIAL_METADATA_SHA256
    mini = tmp_path / "mini.jsonl"
    assert main(["geneval", "prompts", "--set", "mini", "--out", str(mini)]) == 0
    lines = [json.loads(line) for line in mini.read_text().splitlines()]
    assert lines and {line["tag"] for line in lines} <= set(geneval.TASKS)


def test_unknown_prompt_set_and_malformed_lines(tmp_path):
    with pytest.raises(ValueError, match="unknown prompt set"):
        geneval.load_prompts("nonsense")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tag": "single_object", "prompt": "a cup"}\n')
    with pytest.raises(ValueError, match="bad.jsonl, line 1"):
        geneval.load_prompts(str(bad))


# -- sampling -----------------------------------------------------------------------------------------
ENTRIES = [
    {"tag": "single_object", "prompt": "a photo of a circle", "include": [{"class": "circle", "count": 1}]},
    {
        "tag": "colors",
        "prompt": "a photo of a red square",
        "include": [{"class": "square", "count": 1, "color": "red"}],
    },
    {
        "tag": "counting",
        "prompt": "a photo of two stars",
        "include": [{"class": "star", "count": 2}],
        "exclude": [{"class": "star", "count": 3}],
    },
]


class FakeGenerator:
    """Stands in for recakit.sampling.generate_images: the image's colour encodes (prompt, seed)."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, processor, prompts, *, seed, batch_size=None, **options):
        self.calls.append((list(prompts), list(seed), options))
        images = []
        for prompt, s in zip(prompts, seed):
            digest = hashlib.sha256(f"{prompt}|{s}".encode()).digest()
            images.append(Image.new("RGB", (8, 8), tuple(digest[:3])))
        return images


def test_sampling_writes_the_official_layout_with_positional_seeds(tmp_path):
    fake = FakeGenerator()
    drawn = geneval.sample_prompts(
        None,
        None,
        ENTRIES,
        tmp_path / "run",
        n_per_prompt=2,
        seed=10,
        batch_size=4,
        generate=fake,
        run_info={"model": "fake"},
    )
    assert drawn == 6
    for index, entry in enumerate(ENTRIES):
        folder = tmp_path / "run" / f"{index:05d}"
        assert json.loads((folder / "metadata.jsonl").read_text()) == entry
        assert sorted(p.name for p in (folder / "samples").iterdir()) == ["0000.png", "0001.png"]
    seeds = [s for _, batch_seeds, _ in fake.calls for s in batch_seeds]
    assert seeds == [10, 11, 12, 13, 14, 15]  # seed + prompt_index * n_per_prompt + k
    assert [len(p) for p, _, _ in fake.calls] == [4, 2]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["model"] == "fake" and run["seed"] == 10 and run["n_per_prompt"] == 2 and run["rewrite"] is None


def test_sampling_resumes_and_completes_partial_prompts(tmp_path):
    out = tmp_path / "run"
    geneval.sample_prompts(None, None, ENTRIES, out, n_per_prompt=2, seed=3, generate=FakeGenerator())
    reference = {p: p.read_bytes() for p in out.glob("*/samples/*.png")}
    (out / "00001" / "samples" / "0001.png").unlink()
    shutil.rmtree(out / "00002" / "samples")
    fake = FakeGenerator()
    drawn = geneval.sample_prompts(None, None, ENTRIES, out, n_per_prompt=2, seed=3, batch_size=1, generate=fake)
    assert drawn == 3
    assert [(p, s) for prompts, seeds, _ in fake.calls for p, s in zip(prompts, seeds)] == [
        ("a photo of a red square", 6),
        ("a photo of two stars", 7),
        ("a photo of two stars", 8),
    ]
    # the same images as the uninterrupted run, whatever the batching
    assert {p: p.read_bytes() for p in out.glob("*/samples/*.png")} == reference
    assert geneval.sample_prompts(None, None, ENTRIES, out, n_per_prompt=2, seed=3, generate=FakeGenerator()) == 0


def test_shards_share_a_folder_and_draw_a_single_runs_images(tmp_path):
    geneval.sample_prompts(None, None, ENTRIES, tmp_path / "single", n_per_prompt=2, seed=4, generate=FakeGenerator())
    for k in range(2):
        fake = FakeGenerator()
        geneval.sample_prompts(
            None, None, ENTRIES, tmp_path / "sharded", n_per_prompt=2, seed=4, shard=(k, 2), generate=fake
        )
        assert sorted({p for prompts, _, _ in fake.calls for p in prompts}) == sorted(
            {e["prompt"] for i, e in enumerate(ENTRIES) if i % 2 == k}
        )
    single = {p.relative_to(tmp_path / "single"): p.read_bytes() for p in (tmp_path / "single").glob("*/*/*.png")}
    sharded = {p.relative_to(tmp_path / "sharded"): p.read_bytes() for p in (tmp_path / "sharded").glob("*/*/*.png")}
    assert sharded == single and len(single) == 6
    with pytest.raises(ValueError, match="does not exist"):
        geneval.sample_prompts(None, None, ENTRIES, tmp_path / "x", shard=(2, 2), generate=FakeGenerator())


def test_resuming_with_other_settings_is_refused(tmp_path):
    geneval.sample_prompts(None, None, ENTRIES, tmp_path, n_per_prompt=1, seed=0, generate=FakeGenerator())
    with pytest.raises(ValueError, match="seed"):
        geneval.sample_prompts(None, None, ENTRIES, tmp_path, n_per_prompt=1, seed=1, generate=FakeGenerator())


def test_rewrite_is_recorded_and_cfg_is_passed(tmp_path):
    fake = FakeGenerator()
    geneval.sample_prompts(
        None,
        None,
        ENTRIES[:1],
        tmp_path,
        n_per_prompt=1,
        cfg_scale=3.0,
        rewrite="Generate an image: {prompt}",
        generate=fake,
    )
    assert fake.calls == [(["Generate an image: a photo of a circle"], [0], {"cfg_scale": 3.0})]
    line = json.loads((tmp_path / "00000" / "metadata.jsonl").read_text())
    assert line["rewrite"] == "Generate an image: {prompt}" and line["prompt"] == "a photo of a circle"
    assert json.loads((tmp_path / "run.json").read_text())["rewrite"] == "Generate an image: {prompt}"
    with pytest.raises(ValueError, match="placeholder"):
        geneval.sample_prompts(None, None, ENTRIES, tmp_path / "x", rewrite="no slot", generate=fake)


def test_fast_reaches_the_sampler_and_a_resume_must_match_it(tmp_path):
    fake = FakeGenerator()
    geneval.sample_prompts(None, None, ENTRIES[:1], tmp_path, n_per_prompt=1, fast=True, generate=fake)
    assert fake.calls == [(["a photo of a circle"], [0], {"fast": True})]
    assert json.loads((tmp_path / "run.json").read_text())["fast"] is True
    with pytest.raises(ValueError, match="fast"):
        geneval.sample_prompts(None, None, ENTRIES[:1], tmp_path, n_per_prompt=1, generate=FakeGenerator())
    # a folder written before the setting existed ran the plain loop: it resumes without --fast only
    older = tmp_path / "older"
    geneval.sample_prompts(None, None, ENTRIES[:2], older, n_per_prompt=1, generate=FakeGenerator())
    (older / "00001" / "samples" / "0000.png").unlink()
    run = json.loads((older / "run.json").read_text())
    del run["fast"]
    (older / "run.json").write_text(json.dumps(run))
    assert geneval.sample_prompts(None, None, ENTRIES[:2], older, n_per_prompt=1, generate=FakeGenerator()) == 1
    with pytest.raises(ValueError, match="fast"):
        geneval.sample_prompts(None, None, ENTRIES[:2], older, n_per_prompt=1, fast=True, generate=FakeGenerator())


def test_sample_command_uses_load_model(tmp_path, monkeypatch):
    import sys
    import types

    fake = FakeGenerator()
    loaded = []
    fake_registry = types.ModuleType("recakit.registry")
    fake_registry.load_model = lambda name, device=None: loaded.append((name, device)) or ("model", "processor")
    fake_sampling = types.ModuleType("recakit.sampling")
    fake_sampling.generate_images = fake
    monkeypatch.setitem(sys.modules, "recakit.registry", fake_registry)
    monkeypatch.setitem(sys.modules, "recakit.sampling", fake_sampling)
    out = tmp_path / "run"
    assert (
        main(
            [
                "geneval",
                "sample",
                "--model",
                "toy",
                "--set",
                "mini",
                "--n-per-prompt",
                "2",
                "--limit",
                "3",
                "--out",
                str(out),
                "--batch-size",
                "8",
            ]
        )
        == 0
    )
    assert loaded == [("toy", None)]
    assert len(list(out.glob("*/samples/*.png"))) == 6
    assert json.loads((out / "run.json").read_text())["set"] == "mini"
    assert all("fast" not in options for _, _, options in fake.calls)
    fast_out = tmp_path / "fast"
    assert (
        main(
            [
                "geneval",
                "sample",
                "--model",
                "toy",
                "--set",
                "mini",
                "--limit",
                "1",
                "--n-per-prompt",
                "1",
                "--out",
                str(fast_out),
                "--fast",
            ]
        )
        == 0
    )
    assert fake.calls[-1][2]["fast"] is True
    assert main(["geneval", "sample", "--model", "toy", "--set", "mini", "--out", str(out), "--shard", "1"]) == 2


# -- scoring ------------------------------------------------------------------------------------------
class ColourDetector:
    """Finds one object of the prompt's class whose colour is read from the image's pixel."""

    def __init__(self, device=None):
        self.batches = []

    def detect(self, images):
        self.batches.append(len(images))
        return [
            [
                {
                    "class": "square",
                    "score": 0.95,
                    "box": [0, 0, 4, 4],
                    "color": "red" if image.getpixel((0, 0))[0] > 128 else "blue",
                }
            ]
            for image in images
        ]


def write_samples(folder, entries_and_colours):
    for index, (entry, colours) in enumerate(entries_and_colours):
        samples = folder / f"{index:05d}" / "samples"
        samples.mkdir(parents=True)
        (folder / f"{index:05d}" / "metadata.jsonl").write_text(json.dumps(entry) + "\n")
        for k, colour in enumerate(colours):
            Image.new("RGB", (8, 8), colour).save(samples / f"{k:04d}.png")


def test_score_folder_judges_every_image_and_resumes(tmp_path):
    red_square = {
        "tag": "colors",
        "prompt": "a photo of a red square",
        "include": [{"class": "square", "count": 1, "color": "red"}],
    }
    one_square = {"tag": "single_object", "prompt": "a photo of a square", "include": [{"class": "square", "count": 1}]}
    write_samples(tmp_path, [(red_square, ["red", "blue", "red", "red"]), (one_square, ["blue", "blue"])])
    detector = ColourDetector()
    summary = geneval.score_folder(tmp_path, detector, batch_size=4)
    assert detector.batches == [4, 2]
    assert summary["tasks"]["colors"] == 0.75 and summary["tasks"]["single_object"] == 1.0
    assert summary["overall"] == pytest.approx(0.875) and summary["n_images"] == 6
    lines = [json.loads(line) for line in (tmp_path / geneval.RESULTS_FILE).read_text().splitlines()]
    assert [line["filename"] for line in lines][:2] == ["00000/samples/0000.png", "00000/samples/0001.png"]
    assert lines[1]["correct"] is False and "red square" in lines[1]["reason"]
    # a second run reuses what was judged, except for images that changed since
    again = ColourDetector()
    assert geneval.score_folder(tmp_path, again)["overall"] == summary["overall"]
    assert again.batches == []
    Image.new("RGB", (8, 8), "red").save(tmp_path / "00000" / "samples" / "0001.png")
    changed = ColourDetector()
    assert geneval.score_folder(tmp_path, changed)["tasks"]["colors"] == 1.0
    assert changed.batches == [1]
    # another detector judges everything afresh
    other = type("OtherDetector", (ColourDetector,), {})()
    geneval.score_folder(tmp_path, other)
    assert other.batches == [6]


def test_scoring_ignores_partial_writes_and_files_that_are_not_samples(tmp_path):
    red_square = {
        "tag": "colors",
        "prompt": "a photo of a red square",
        "include": [{"class": "square", "count": 1, "color": "red"}],
    }
    write_samples(tmp_path, [(red_square, ["red", "blue"])])
    red = Image.new("RGB", (8, 8), "red")
    red.save(tmp_path / "00000" / "samples" / "0002.partial.png")  # an interrupted write
    red.save(tmp_path / "00000" / "samples" / "preview.png")
    (tmp_path / "00000" / "samples" / "0003.png.txt").write_text("notes")
    red.save(tmp_path / "00000" / "grid.png")  # the official generation script's grid
    red.save(tmp_path / "overview.png")
    (tmp_path / "figures").mkdir()
    assert [str(path.relative_to(tmp_path)) for _, path in geneval.find_samples(tmp_path)] == [
        "00000/samples/0000.png",
        "00000/samples/0001.png",
    ]
    summary = geneval.score_folder(tmp_path, ColourDetector())
    assert summary["n_images"] == 2 and summary["tasks"]["colors"] == 0.5


def test_score_command_writes_summary_and_per_image_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(scorers.SCORERS, "fake", f"{__name__}:ColourDetector")
    entry = {
        "tag": "colors",
        "prompt": "a photo of a red square",
        "include": [{"class": "square", "count": 1, "color": "red"}],
    }
    write_samples(tmp_path / "run", [(entry, ["red", "blue"])])
    out = tmp_path / "scores" / "run.json"
    import argparse

    # the choices list was built from SCORERS at parser time; call the command function directly
    args = argparse.Namespace(
        folder=str(tmp_path / "run"),
        scorer="fake",
        out=str(out),
        batch_size=16,
        device=None,
        detector_model=None,
        clip_model=None,
    )
    assert geneval_commands._run_score(args) == 0
    summary = json.loads(out.read_text())
    assert set(summary["tasks"]) == set(geneval.TASKS)
    assert summary["tasks"]["colors"] == 0.5 and summary["n_images"] == 2 and summary["scorer"] == "fake"
    assert len((tmp_path / "scores" / "run.images.jsonl").read_text().splitlines()) == 2
    table = capsys.readouterr().out
    assert "colors" in table and "50.0" in table
    with pytest.raises(ValueError, match="mask2former scorer only"):
        geneval_commands._run_score(argparse.Namespace(**{**vars(args), "device": "cuda"}))


def test_unknown_scorer_and_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="unknown scorer"):
        scorers.make_detector("yolo")
    with pytest.raises(ValueError, match="no GenEval samples"):
        geneval.score_folder(tmp_path, ColourDetector())


def write_verdicts(tmp_path, verdicts):
    """Our and the official scorer's per-image files for (tag, ours correct, theirs correct) rows."""
    ours, theirs = tmp_path / "ours.jsonl", tmp_path / "results.jsonl"
    with open(ours, "w") as a, open(theirs, "w") as b:
        for index, (tag, mine, official) in enumerate(verdicts):
            name, prompt = f"{index:05d}/samples/0000.png", f"a photo of prompt {index}"
            a.write(json.dumps({"filename": name, "tag": tag, "prompt": prompt, "correct": mine}) + "\n")
            # the official script writes the full path it was given
            b.write(
                json.dumps({"filename": f"/data/run/{name}", "tag": tag, "prompt": prompt, "correct": official}) + "\n"
            )
    return ours, theirs


def counted(tag, both, ours_only, theirs_only, neither):
    return (
        [(tag, True, True)] * both
        + [(tag, True, False)] * ours_only
        + [(tag, False, True)] * theirs_only
        + [(tag, False, False)] * neither
    )


def test_agreement_counts_kappa_and_differences(tmp_path, capsys):
    # worked by hand: single_object agree 6/10, ours 7/10, theirs 5/10, chance 0.7*0.5 + 0.3*0.5 = 0.5,
    # kappa (0.6 - 0.5) / 0.5 = 0.2; position agree 4/6, ours 1/6, theirs 3/6, chance 1/2, kappa 1/3
    ours, theirs = write_verdicts(tmp_path, counted("single_object", 4, 3, 1, 2) + counted("position", 1, 0, 2, 3))
    result = geneval.agreement(ours, theirs)
    single, position, overall = result["tasks"]["single_object"], result["tasks"]["position"], result["overall"]
    assert (single["both_correct"], single["ours_only"], single["theirs_only"], single["both_wrong"]) == (4, 3, 1, 2)
    assert single["agree"] == pytest.approx(0.6) and single["kappa"] == pytest.approx(0.2)
    assert single["difference"] == pytest.approx(0.2)
    assert position["agree"] == pytest.approx(4 / 6) and position["kappa"] == pytest.approx(1 / 3)
    assert position["difference"] == pytest.approx(1 / 6 - 3 / 6)
    # all 16 images: agree 10/16, both rates 8/16, chance 0.5, kappa 0.25; the overall difference is
    # GenEval's, the mean of the task differences
    assert (overall["n"], overall["ours_only"], overall["theirs_only"]) == (16, 3, 3)
    assert overall["agree"] == pytest.approx(10 / 16) and overall["kappa"] == pytest.approx(0.25)
    assert overall["difference"] == pytest.approx((0.2 - 1 / 3) / 2)
    for figures in (single, position, overall):
        low, high = figures["difference_95"]
        assert low <= figures["difference"] <= high
    assert result["ours"]["tasks"]["single_object"] == pytest.approx(0.7)
    # one verdict throughout: agreement is perfect and kappa undefined, with nothing to resample
    same, again = write_verdicts(tmp_path, [("colors", True, True)] * 5)
    constant = geneval.agreement(same, again)["overall"]
    assert constant["agree"] == 1.0 and constant["kappa"] is None and constant["difference_95"] == [0.0, 0.0]

    ours, theirs = write_verdicts(tmp_path, counted("single_object", 4, 3, 1, 2) + counted("position", 1, 0, 2, 3))
    assert main(["geneval", "agree", str(ours), str(theirs), "--out", str(tmp_path / "agree.json")]) == 0
    table = capsys.readouterr().out
    assert "0.20" in table and "+20.0" in table and "0.25" in table  # kappa, difference, overall kappa
    assert json.loads((tmp_path / "agree.json").read_text())["overall"]["ours_only"] == 3


def exact_bootstrap_quantiles(tasks, probabilities):
    """Quantiles of the mean over tasks of redrawn score differences, by enumerating every draw."""
    outcomes = []
    for draw in itertools.product(*[itertools.product(d, repeat=len(d)) for d in tasks]):
        outcomes.append(sum(sum(values) / len(values) for values in draw) / len(tasks))
    outcomes.sort()
    return [outcomes[math.ceil(p * len(outcomes)) - 1] for p in probabilities]


def test_agreement_intervals_match_the_exact_bootstrap_and_are_seeded(tmp_path):
    # single_object: differences (ours - theirs) 1, 0, 0, 0; position: -1, 0
    verdicts = [
        ("single_object", True, False),
        ("single_object", True, True),
        ("single_object", False, False),
        ("single_object", True, True),
        ("position", False, True),
        ("position", False, False),
    ]
    ours, theirs = write_verdicts(tmp_path, verdicts)
    result = geneval.agreement(ours, theirs, resamples=20000, seed=3)
    single = [1, 0, 0, 0]
    position = [-1, 0]
    assert result["tasks"]["single_object"]["difference_95"] == pytest.approx(
        exact_bootstrap_quantiles([single], [0.025, 0.975])
    )  # [0, 0.75]
    assert result["tasks"]["position"]["difference_95"] == pytest.approx([-1.0, 0.0])
    assert result["overall"]["difference_95"] == pytest.approx(
        exact_bootstrap_quantiles([single, position], [0.025, 0.975])
    )
    assert geneval.agreement(ours, theirs, resamples=20000, seed=3) == result
    # few draws: the interval depends on the draws, and the seed fixes them
    few = [geneval.agreement(ours, theirs, resamples=40, seed=seed)["overall"]["difference_95"] for seed in (0, 0, 1)]
    assert few[0] == few[1] != few[2]


def test_agreement_refuses_files_that_hold_other_images_or_prompts(tmp_path):
    ours, theirs = write_verdicts(tmp_path, counted("single_object", 2, 1, 1, 0))
    with open(theirs, "a") as handle:
        handle.write(
            json.dumps(
                {
                    "filename": "/data/run/00009/samples/0000.png",
                    "tag": "colors",
                    "prompt": "a photo of a red cup",
                    "correct": True,
                }
            )
            + "\n"
        )
    with pytest.raises(
        ValueError,
        match=r"not hold the same images: 0 only in the first \[\], 1 only in the second "
        r"\['00009/samples/0000.png'\]",
    ):
        geneval.agreement(ours, theirs)
    ours, theirs = write_verdicts(tmp_path, counted("single_object", 2, 1, 1, 0))
    lines = theirs.read_text().splitlines()
    lines[2] = lines[2].replace("prompt 2", "a dog")
    theirs.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="disagree on the prompt of 1 images, e.g. 00002/samples/0000.png"):
        geneval.agreement(ours, theirs)
    ours, theirs = write_verdicts(tmp_path, counted("single_object", 2, 1, 1, 0))
    lines = theirs.read_text().splitlines()
    theirs.write_text("\n".join([*lines, lines[0]]) + "\n")  # one image judged twice
    with pytest.raises(ValueError, match=r"line 5: 00000/samples/0000.png is judged a second time"):
        geneval.agreement(ours, theirs)


class RecordingDetector(ColourDetector):
    built_with = []

    def __init__(self, **options):
        super().__init__()
        RecordingDetector.built_with.append(options)


def test_score_command_passes_mask2former_options(tmp_path, monkeypatch):
    monkeypatch.setitem(scorers.SCORERS, "mask2former", f"{__name__}:RecordingDetector")
    entry = {"tag": "single_object", "prompt": "a photo of a square", "include": [{"class": "square", "count": 1}]}
    write_samples(tmp_path / "run", [(entry, ["red"])])
    assert (
        main(
            [
                "geneval",
                "score",
                str(tmp_path / "run"),
                "--scorer",
                "mask2former",
                "--out",
                str(tmp_path / "s.json"),
                "--detector-model",
                "/models/m2f",
                "--device",
                "cpu",
                "--batch-size",
                "4",
            ]
        )
        == 0
    )
    assert RecordingDetector.built_with == [{"batch_size": 4, "model_id": "/models/m2f", "device": "cpu"}]
