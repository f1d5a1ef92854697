"""GenEval-mini: the shipped prompt file, its format, task sizes and the held-out guarantee."""

import collections
import copy
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from recakit.bench.geneval import MINI_METADATA, TASKS, read_metadata, validate_entry
from recakit.toy.geneval_mini import (
    UNSEEN_PAIRS,
    build_entries,
    names_unseen_pair,
    prompt_for,
    to_jsonl,
)
from recakit.toy.shapes import (
    COLORS,
    SHAPES,
    dense_caption,
    heldout_prompts,
    is_heldout_caption,
    random_scene,
    scene_dataset,
    sparse_caption,
)

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_file_is_the_builders_output():
    assert MINI_METADATA.read_text() == to_jsonl(build_entries())


@pytest.mark.parametrize("hash_seed", ["1", "2"])
def test_builder_writes_the_same_file_in_any_interpreter(hash_seed):
    """Neither set order (which the hash seed changes) nor the global random state may reach the
    prompts: fresh interpreters with other hash seeds and moved-on global generators write the
    shipped file."""
    script = (
        "import random, sys; random.seed(int(sys.argv[1])); random.random(); "
        "from recakit.toy.geneval_mini import build_entries, to_jsonl; sys.stdout.write(to_jsonl(build_entries()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script, hash_seed], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == MINI_METADATA.read_text()


def test_task_sizes():
    counts = collections.Counter(entry["tag"] for entry in build_entries())
    assert set(counts) == set(TASKS)
    assert counts["single_object"] == len(SHAPES)
    for tag in ("two_object", "colors", "position", "color_attr"):
        assert counts[tag] >= 50, tag
    # Counting prompts carry no colour, so shapes x {2, 3, 4} is every one there is.
    assert counts["counting"] == 3 * len(SHAPES)


def test_no_duplicate_prompts_or_requirements():
    entries = build_entries()
    assert len({entry["prompt"] for entry in entries}) == len(entries)
    assert len({repr(entry["include"]) for entry in entries}) == len(entries)


def test_every_line_is_valid_and_worded_like_geneval():
    for entry in read_metadata(MINI_METADATA, classes=SHAPES):
        assert entry["prompt"] == prompt_for(entry)


def test_wording_examples():
    prompts = heldout_prompts()
    for prompt in (
        "a photo of a ring",
        "a photo of two stars",
        "a photo of four crosses",
        "a photo of an orange circle",
        "a photo of a circle and a square",
    ):
        assert prompt in prompts
    position = [e for e in build_entries() if e["tag"] == "position"][0]
    anchor, mover = position["include"]
    assert position["prompt"] == f"a photo of a {mover['class']} {mover['position'][0]} a {anchor['class']}"


def test_counting_lines_exclude_one_more():
    for entry in build_entries():
        if entry["tag"] == "counting":
            (item,) = entry["include"]
            assert item["count"] in (2, 3, 4)
            assert entry["exclude"] == [{"class": item["class"], "count": item["count"] + 1}]


def test_colour_tasks_cover_the_palette():
    used = {item["color"] for e in build_entries() for item in e["include"] if "color" in item}
    assert used == set(COLORS)


def _broken(change):
    entry = copy.deepcopy(build_entries()[-1])
    change(entry)
    return entry


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: e.update(tag="colour"), "tag"),
        (lambda e: e.pop("prompt"), "keys"),
        (lambda e: e.update(prompt="two stars"), "a photo of"),
        (lambda e: e["include"][0].update(color="gray"), "gray"),
        (lambda e: e["include"][0].update(count=0), "count"),
        (lambda e: e["include"][1].update(position=["behind", 0]), "position"),
        (lambda e: e["include"][1].update(position=["above", 1]), "position"),
        (lambda e: e.update(include=[]), "include"),
        (lambda e: e["include"].__setitem__(0, "circle"), "objects"),
    ],
)
def test_validator_rejects_malformed_lines(change, message):
    with pytest.raises(ValueError, match=message):
        validate_entry(_broken(change))


def test_validator_checks_counting_and_classes():
    counting = next(e for e in build_entries() if e["tag"] == "counting")
    wrong = copy.deepcopy(counting)
    wrong["exclude"][0]["count"] += 1
    with pytest.raises(ValueError, match="exclude"):
        validate_entry(wrong)
    reordered = {
        "tag": counting["tag"],
        "include": counting["include"],
        "prompt": counting["prompt"],
        "exclude": counting["exclude"],
    }
    with pytest.raises(ValueError, match="order"):
        validate_entry(reordered)
    cow = {"tag": "single_object", "include": [{"class": "cow", "count": 1}], "prompt": "a photo of a cow"}
    validate_entry(cow)
    with pytest.raises(ValueError, match="cow"):
        validate_entry(cow, classes=SHAPES)


def test_reader_names_the_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(to_jsonl(build_entries()[:2]) + '{"tag": "single_object"}\n')
    with pytest.raises(ValueError, match="line 3"):
        read_metadata(path)


def test_heldout_check_normalises_text():
    assert is_heldout_caption("a photo of two stars")
    assert is_heldout_caption("  A photo of two  stars. ")
    assert not is_heldout_caption("a photo of two red stars")


def test_training_captions_never_equal_a_prompt():
    for seed in range(3000):
        scene = random_scene(seed)
        assert not is_heldout_caption(dense_caption(scene))
        assert not is_heldout_caption(sparse_caption(scene, random.Random(seed)))


def test_unseen_pairs_stay_out_of_avoiding_datasets():
    assert {color for color, _ in UNSEEN_PAIRS} == set(COLORS)
    assert {shape for _, shape in UNSEEN_PAIRS} == set(SHAPES)
    tasks = collections.Counter(e["tag"] for e in build_entries() if names_unseen_pair(e))
    assert tasks["colors"] == len(UNSEEN_PAIRS) and tasks["color_attr"] > 0
    assert set(tasks) <= {"colors", "color_attr"}
    seen = set()
    for example in scene_dataset(300, seed=1, avoid_pairs=UNSEEN_PAIRS):
        seen |= {(obj.color, obj.shape) for obj in example.scene.objects}
    assert not seen & UNSEEN_PAIRS
    assert len(seen) > 50
    plain = set()
    for example in scene_dataset(300, seed=1):
        plain |= {(obj.color, obj.shape) for obj in example.scene.objects}
    assert plain & UNSEEN_PAIRS
    with pytest.raises(ValueError, match="avoid_pairs"):
        scene_dataset(3, avoid_pairs={("circle", "red")})
