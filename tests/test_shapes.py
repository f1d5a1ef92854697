"""ShapesWorld renderer, captions, scenes from GenEval metadata, and `recakit shapes render`."""

import argparse
import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest

from recakit.bench.geneval import relative_position
from recakit.commands.toy import add_shapes_commands
from recakit.toy.geneval_mini import build_entries
from recakit.toy.shapes import (
    BACKGROUND,
    COLORS,
    GAP,
    SHAPES,
    Scene,
    ShapeObject,
    clear_relation,
    dense_caption,
    is_heldout_caption,
    random_scene,
    relations_between,
    render,
    scene_dataset,
    scene_for_entry,
    sparse_caption,
)


def test_render_is_deterministic_by_seed():
    first = render(random_scene(random.Random(7))).tobytes()
    again = render(random_scene(random.Random(7))).tobytes()
    other = render(random_scene(random.Random(8))).tobytes()
    assert first == again
    assert first != other


def test_render_draws_colours_on_the_background():
    scene = Scene([ShapeObject("square", "red", 0.25, 0.25, 0.3), ShapeObject("circle", "white", 0.75, 0.75, 0.3)])
    pixels = np.asarray(render(scene, size=64))
    assert pixels.shape == (64, 64, 3)
    assert tuple(pixels[16, 16]) == COLORS["red"]
    assert tuple(pixels[48, 48]) == COLORS["white"]
    assert tuple(pixels[2, 62]) == BACKGROUND
    assert render(scene, size=128).size == (128, 128)


def test_ring_has_a_hole_and_semicircle_is_flat():
    ring = np.asarray(render(Scene([ShapeObject("ring", "blue", 0.5, 0.5, 0.6)])))
    assert tuple(ring[32, 32]) == BACKGROUND
    assert tuple(ring[32, 14]) == COLORS["blue"]
    half = np.asarray(render(Scene([ShapeObject("semicircle", "blue", 0.5, 0.5, 0.6)])))
    covered_rows = np.nonzero((half != BACKGROUND).any(axis=(1, 2)))[0]
    assert 16 <= len(covered_rows) <= 22  # half the 38 px width


def test_background_is_none_of_the_colours():
    for name, rgb in COLORS.items():
        assert np.linalg.norm(np.subtract(rgb, BACKGROUND)) > 90, name


def test_random_scenes_keep_objects_apart_and_inside():
    for seed in range(200):
        scene = random_scene(seed)
        assert 1 <= len(scene.objects) <= 4
        for i, a in enumerate(scene.objects):
            x0, y0, x1, y1 = a.box
            assert 0 <= x0 and 0 <= y0 and x1 <= 1 and y1 <= 1
            for b in scene.objects[i + 1 :]:
                gap_x = abs(a.cx - b.cx) - (a.size + b.size) / 2
                gap_y = abs(a.cy - b.cy) - (a.size + b.size) / 2
                assert max(gap_x, gap_y) >= GAP - 1e-9


def test_random_scene_uses_every_shape_and_colour():
    objects = [obj for seed in range(300) for obj in random_scene(seed).objects]
    assert {obj.shape for obj in objects} == set(SHAPES)
    assert {obj.color for obj in objects} == set(COLORS)


def test_scene_round_trips_through_json():
    scene = random_scene(3, n_objects=3)
    restored = Scene.from_dict(json.loads(json.dumps(scene.to_dict())))
    assert restored == scene
    assert render(restored).tobytes() == render(scene).tobytes()


def test_bad_objects_are_refused():
    with pytest.raises(ValueError, match="hexagon"):
        ShapeObject("hexagon", "red", 0.5, 0.5, 0.2)
    with pytest.raises(ValueError, match="gray"):
        ShapeObject("circle", "gray", 0.5, 0.5, 0.2)
    with pytest.raises(ValueError, match="1 to 4"):
        random_scene(0, n_objects=5)


def test_relations_follow_geneval_rule():
    rng = random.Random(0)
    for _ in range(300):
        a, b = (ShapeObject("circle", "red", rng.random(), rng.random(), rng.uniform(0.1, 0.4)) for _ in range(2))
        assert relations_between(a, b) == relative_position(a.box, b.box)


def test_dense_caption_names_objects_counts_and_relations():
    pair = Scene([ShapeObject("circle", "red", 0.2, 0.5, 0.25), ShapeObject("star", "blue", 0.8, 0.5, 0.25)])
    assert dense_caption(pair) == "a photo of a red circle left of a blue star"
    alone = Scene([ShapeObject("triangle", "orange", 0.2, 0.2, 0.3)])
    assert dense_caption(alone) == "a photo of an orange triangle in the top left"
    many = Scene(
        [
            ShapeObject("circle", "red", 0.2, 0.2, 0.2),
            ShapeObject("circle", "red", 0.8, 0.2, 0.2),
            ShapeObject("cross", "green", 0.5, 0.8, 0.25),
        ]
    )
    caption = dense_caption(many)
    assert caption.startswith("a photo of two red circles and a green cross.")
    assert "the red circles are above the green cross." in caption


def test_dense_caption_does_not_depend_on_drawing_order():
    objects = [
        ShapeObject("star", "blue", 0.8, 0.2, 0.25),
        ShapeObject("circle", "red", 0.2, 0.8, 0.25),
        ShapeObject("square", "red", 0.2, 0.2, 0.2),
    ]
    captions = {dense_caption(Scene(list(order))) for order in itertools.permutations(objects)}
    assert captions == {
        "a photo of a red circle, a red square and a blue star. "
        "the red circle is below the red square. the red square is left of the blue star."
    }
    pair = [ShapeObject("star", "blue", 0.8, 0.5, 0.25), ShapeObject("circle", "red", 0.2, 0.5, 0.25)]
    assert (
        dense_caption(Scene(pair)) == dense_caption(Scene(pair[::-1])) == "a photo of a red circle left of a blue star"
    )


def test_dense_caption_mentions_every_object():
    for seed in range(100):
        scene = random_scene(seed)
        caption = dense_caption(scene)
        for obj in scene.objects:
            assert f"{obj.color} {obj.shape}" in caption


def test_sparse_caption_drops_details_and_is_never_a_photo_prompt():
    scene = random_scene(5, n_objects=3)
    full = sparse_caption(scene, random.Random(0), p_drop=0.0)
    for obj in scene.objects:
        assert obj.shape in full and obj.color in full
    colours_seen = set()
    for seed in range(200):
        caption = sparse_caption(random_scene(seed), random.Random(seed), p_drop=1.0)
        colours_seen |= {c for c in COLORS if c in caption.split()}
        assert not caption.startswith("a photo of")
    assert not colours_seen
    assert sparse_caption(scene, random.Random(9)) == sparse_caption(scene, random.Random(9))
    with pytest.raises(ValueError):
        sparse_caption(scene, random.Random(0), p_drop=1.5)


def test_captions_vary_in_detail():
    captions = {sparse_caption(random_scene(seed), random.Random(seed)) for seed in range(200)}
    assert len(captions) > 100
    assert any(len(c.split()) <= 2 for c in captions)


def _count(scene, shape, color=None):
    return sum(obj.shape == shape and (color is None or obj.color == color) for obj in scene.objects)


@pytest.mark.parametrize("tag", ["single_object", "two_object", "counting", "colors", "position", "color_attr"])
def test_scene_for_entry_satisfies_metadata(tag):
    entries = [entry for entry in build_entries() if entry["tag"] == tag]
    for number, entry in enumerate(entries):
        for sample in range(2):
            scene = scene_for_entry(entry, random.Random(f"{number}-{sample}"))
            expected = sum(item["count"] for item in entry["include"])
            assert len(scene.objects) == expected
            for item in entry["include"]:
                assert _count(scene, item["class"], item.get("color")) == item["count"]
                if "position" in item:
                    relation, target = item["position"]
                    mover = next(o for o in scene.objects if o.shape == item["class"])
                    anchor = next(o for o in scene.objects if o.shape == entry["include"][target]["class"])
                    assert clear_relation(mover, anchor) == relation


def test_scene_for_entry_varies_what_is_left_open():
    entry = {
        "tag": "counting",
        "include": [{"class": "star", "count": 3}],
        "exclude": [{"class": "star", "count": 4}],
        "prompt": "a photo of three stars",
    }
    scenes = [scene_for_entry(entry, seed) for seed in range(20)]
    assert len({obj.color for scene in scenes for obj in scene.objects}) > 5
    assert len({round(scene.objects[0].cx, 3) for scene in scenes}) == 20


def test_scene_for_entry_refuses_unknown_classes():
    with pytest.raises(ValueError, match="dog"):
        scene_for_entry(
            {"tag": "single_object", "include": [{"class": "dog", "count": 1}], "prompt": "a photo of a dog"}, 0
        )


def test_scene_dataset_is_deterministic_and_held_out():
    data = scene_dataset(40, seed=3)
    assert len(data) == 40
    first, again = data[5], scene_dataset(40, seed=3)[5]
    assert first.dense == again.dense and first.sparse == again.sparse
    assert first.image.tobytes() == again.image.tobytes()
    assert first.image.size == (64, 64)
    assert scene_dataset(40, seed=4)[5].dense != first.dense or scene_dataset(40, seed=4)[5].scene != first.scene
    for example in data:
        assert not is_heldout_caption(example.dense)
        assert not is_heldout_caption(example.sparse)
    with pytest.raises(IndexError):
        data[40]


def run_command(argv):
    # Only this module's commands: the full CLI would import every other module too.
    parser = argparse.ArgumentParser()
    add_shapes_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


def test_render_command_writes_geneval_layout(tmp_path):
    lines = [json.dumps(entry) for entry in build_entries()[:2]]
    metadata = tmp_path / "metadata.jsonl"
    metadata.write_text("\n".join(lines) + "\n")
    out = tmp_path / "truth"
    argv = ["shapes", "render", "--metadata", str(metadata), "--out", str(out), "--n-per-prompt", "3"]
    assert run_command(argv) == 0
    for number, line in enumerate(lines):
        folder = out / f"{number:05d}"
        assert (folder / "metadata.jsonl").read_text() == line + "\n"
        assert sorted(p.name for p in (folder / "samples").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    first = (out / "00000" / "samples" / "0000.png").read_bytes()
    (out / "00001" / "samples" / "0002.png").unlink()  # as if interrupted
    assert run_command(argv) == 0
    assert (out / "00001" / "samples" / "0002.png").exists()
    assert (out / "00000" / "samples" / "0000.png").read_bytes() == first


def test_sparse_caption_never_miscounts():
    pair = Scene([ShapeObject("star", "red", 0.2, 0.5, 0.25), ShapeObject("star", "red", 0.8, 0.5, 0.25)])
    captions = {sparse_caption(pair, random.Random(seed), p_drop=0.7) for seed in range(100)}
    assert not any(c in ("a star", "star", "a red star", "red star") for c in captions)
    assert {"stars", "two stars", "red stars", "two red stars"} & captions


def test_render_command_defaults_to_geneval_mini_and_names_bad_classes(tmp_path):
    parser = argparse.ArgumentParser()
    add_shapes_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["shapes", "render", "--out", str(tmp_path)])
    assert args.metadata.endswith("geneval_mini.jsonl") and Path(args.metadata).exists()
    metadata = tmp_path / "coco.jsonl"
    metadata.write_text(
        '{"tag": "single_object", "include": [{"class": "dog", "count": 1}], "prompt": "a photo of a dog"}\n'
    )
    with pytest.raises(ValueError, match="dog"):
        run_command(["shapes", "render", "--metadata", str(metadata), "--out", str(tmp_path / "out")])
