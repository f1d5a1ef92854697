"""GenEval-mini: the GenEval benchmark over ShapesWorld's shapes, in GenEval's own file format.

`build_entries()` makes the prompt set deterministically; the shipped
`recakit/data/geneval_mini.jsonl` is exactly its output (rewrite it with
`python -m recakit.toy.geneval_mini`). Lines follow the official `evaluation_metadata.jsonl`: keys
`tag`, `include` (items `class`, `count`, then `color` or `position` when needed), `exclude` for
counting, and `prompt`, with the same wording ("a photo of two stars", "a photo of a ring right of
a square", "a photo of an orange circle and a blue star").

Tasks and sizes (8 shapes, 10 colours):
- single_object: each shape once (8);
- two_object: every ordered pair of different shapes (56);
- counting: every shape at 2, 3 and 4 (24) -- all that exist, since GenEval counting prompts carry
  no colour and a ShapesWorld scene holds at most 4 objects;
- colors: every shape in every colour (80);
- position: 100 of the 224 (shape, relation, other shape) triples;
- color_attr: 100 pairs of differently coloured, different shapes.

Held out from training: these prompts must never be a training caption.
`is_heldout_caption(text)` (owned by `recakit.toy.shapes`, which reads the shipped file) tells
whether a text is one of them; the ShapesWorld captions are
built so that none is (see `recakit.toy.shapes`), and `recakit.toy.shapes.scene_dataset` checks every
caption it hands out. For a stricter, compositional hold-out, `UNSEEN_PAIRS` lists ten
(colour, shape) objects (every colour and every shape at least once) that
`scene_dataset(..., avoid_pairs=UNSEEN_PAIRS)` never draws; `names_unseen_pair(entry)` picks out
the prompts that ask for one, so their scores measure generalisation to new combinations.
"""

from __future__ import annotations

import json
import random
from itertools import permutations
from pathlib import Path

from recakit.bench.geneval import COLORS as GENEVAL_COLORS
from recakit.bench.geneval import MINI_METADATA, RELATIONS
from recakit.toy.shapes import SHAPES, noun_phrase

# Sizes of the sampled tasks, as in GenEval (100 position and 100 colour-attribute prompts).
POSITION_PROMPTS = 100
COLOR_ATTR_PROMPTS = 100
SEED = 0


# One per colour, the shapes in turn: red circle, orange square, ..., white square.
UNSEEN_PAIRS = frozenset((color, SHAPES[k % len(SHAPES)]) for k, color in enumerate(GENEVAL_COLORS))


def names_unseen_pair(entry: dict) -> bool:
    """True when the line asks for a (colour, shape) object of UNSEEN_PAIRS."""
    return any((item.get("color"), item["class"]) in UNSEEN_PAIRS for item in entry["include"])


def prompt_for(entry: dict) -> str:
    """The GenEval wording of an entry's requirements."""
    include, tag = entry["include"], entry["tag"]
    if tag == "position":
        anchor, mover = include
        return f"a photo of {noun_phrase(mover['class'])} {mover['position'][0]} {noun_phrase(anchor['class'])}"
    phrases = [noun_phrase(item["class"], item["count"], item.get("color")) for item in include]
    return "a photo of " + " and ".join(phrases)


def _entry(tag: str, include: list[dict], exclude: list[dict] | None = None) -> dict:
    entry = {"tag": tag, "include": include}
    if exclude is not None:
        entry["exclude"] = exclude
    entry["prompt"] = prompt_for(entry)
    return entry


def build_entries() -> list[dict]:
    """The GenEval-mini metadata lines, the same on every call."""
    rng = random.Random(SEED)
    entries = [_entry("single_object", [{"class": shape, "count": 1}]) for shape in SHAPES]
    entries += [
        _entry("two_object", [{"class": a, "count": 1}, {"class": b, "count": 1}]) for a, b in permutations(SHAPES, 2)
    ]
    entries += [
        _entry("counting", [{"class": shape, "count": n}], [{"class": shape, "count": n + 1}])
        for shape in SHAPES
        for n in (2, 3, 4)
    ]
    entries += [
        _entry("colors", [{"class": shape, "count": 1, "color": color}]) for shape in SHAPES for color in GENEVAL_COLORS
    ]
    triples = [(anchor, relation, mover) for anchor, mover in permutations(SHAPES, 2) for relation in RELATIONS]
    for anchor, relation, mover in rng.sample(triples, POSITION_PROMPTS):
        entries.append(
            _entry("position", [{"class": anchor, "count": 1}, {"class": mover, "count": 1, "position": [relation, 0]}])
        )
    pairs = [(sa, ca, sb, cb) for sa, sb in permutations(SHAPES, 2) for ca, cb in permutations(GENEVAL_COLORS, 2)]
    for sa, ca, sb, cb in rng.sample(pairs, COLOR_ATTR_PROMPTS):
        entries.append(
            _entry("color_attr", [{"class": sa, "count": 1, "color": ca}, {"class": sb, "count": 1, "color": cb}])
        )
    return entries


def to_jsonl(entries: list[dict]) -> str:
    return "".join(json.dumps(entry) + "\n" for entry in entries)


def write_geneval_mini(path: str | Path = MINI_METADATA) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_jsonl(build_entries()))
    return path


if __name__ == "__main__":
    written = write_geneval_mini()
    print(f"wrote {len(build_entries())} prompts to {written}")
