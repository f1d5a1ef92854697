"""ShapesWorld: a tiny, fully controllable image world for trying RecA on a CPU.

A scene is one to four flat, non-overlapping shapes in the ten GenEval colours on a plain gray
background. Because every scene is known exactly, we can

- render it (`render`), anti-aliased by drawing at 4x and averaging down;
- describe it densely (`dense_caption`: every object, its colour, counts and relations, in
  GenEval's wording "a photo of ...") or sparsely like web alt-text (`sparse_caption`);
- build a scene that satisfies a GenEval metadata line (`scene_for_entry`), which gives the
  ground-truth images a perfect model would draw (`recakit shapes render`);
- generate deterministic training sets (`scene_dataset`).

Coordinates are fractions of the canvas: (0, 0) is the top-left corner, y grows downwards, and an
object's `size` is the side of the square box its shape fills. The eight shapes were chosen to
stay apart at 64 px even when small and blurred (a hexagon or pentagon at 12 px looks like a
circle): each differs from the others in fill, outline, aspect or an empty centre. Eight classes
give 56 ordered two-object prompts, enough for a GenEval-sized task.

Why dense captions never equal a GenEval-mini prompt: GenEval prompts are "a photo of" followed by
either objects without colour, or a single coloured object, or two coloured objects joined by
"and". A dense caption always names colours, places a lone object somewhere ("... in the top
left"), links two objects by a relation or "next to", and uses full sentences for three or more,
so it never takes one of those forms. Sparse captions never start with "a photo of".
`is_heldout_caption` checks this against the shipped GenEval-mini prompts
(`recakit.toy.geneval_mini` writes them), and `scene_dataset` enforces it.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

from recakit.bench.geneval import MINI_METADATA, RELATIONS, relative_position

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross", "ring", "semicircle")

# The ten GenEval colours. Each value is far from the others and from the background in RGB and in
# Lab, so a nearest-colour classifier separates them even after blur.
COLORS = {
    "red": (220, 30, 35),
    "orange": (250, 140, 0),
    "yellow": (250, 225, 30),
    "green": (35, 160, 60),
    "blue": (35, 75, 220),
    "purple": (135, 45, 175),
    "pink": (255, 130, 195),
    "brown": (120, 70, 30),
    "black": (20, 20, 20),
    "white": (252, 252, 252),
}

# A neutral mid-light gray: none of the ten colours, dark enough that white objects stand out and
# light enough that black ones do.
BACKGROUND = (165, 165, 165)

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
# Share of multi-object random scenes that hold a group of identical objects (counts to caption).
REPEAT_RATE = 0.3

# Empty space kept between object boxes, and between a box and the canvas edge (canvas fractions).
GAP = 0.06
EDGE = 0.02

# A ring's hole, as a fraction of its radius: wide enough to stay open after blur.
RING_HOLE = 0.55

# Drawn at this many times the final size, then averaged down: the anti-aliasing.
SUPERSAMPLE = 4


@dataclass
class ShapeObject:
    """One flat shape: `shape` in SHAPES, `color` in COLORS, centre (cx, cy) and box side `size`,
    all in canvas fractions."""

    shape: str
    color: str
    cx: float
    cy: float
    size: float

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; ShapesWorld has {', '.join(SHAPES)}")
        if self.color not in COLORS:
            raise ValueError(f"unknown colour {self.color!r}; ShapesWorld has {', '.join(COLORS)}")
        if not 0 < self.size <= 1:
            raise ValueError(f"object size must be in (0, 1], got {self.size}")

    @property
    def box(self) -> tuple[float, float, float, float]:
        half = self.size / 2
        return (self.cx - half, self.cy - half, self.cx + half, self.cy + half)


@dataclass
class Scene:
    """Objects on a plain background (an RGB triple)."""

    objects: list[ShapeObject]
    background: tuple[int, int, int] = field(default=BACKGROUND)

    def to_dict(self) -> dict:
        return {"objects": [asdict(obj) for obj in self.objects], "background": list(self.background)}

    @classmethod
    def from_dict(cls, data: dict) -> Scene:
        objects = [ShapeObject(**obj) for obj in data["objects"]]
        return cls(objects, tuple(data.get("background", BACKGROUND)))


# --------------------------------------------------------------------------------------------
# Geometry and relations
# --------------------------------------------------------------------------------------------


def relations_between(a: ShapeObject, b: ShapeObject) -> set[str]:
    """Every relation "a <relation> b" that GenEval's position rule grants, applied to the two
    objects' bounding squares by the same code that judges detections."""
    return relative_position(_box(a), _box(b))


def _box(obj: ShapeObject) -> tuple[float, float, float, float]:
    half = obj.size / 2
    return (obj.cx - half, obj.cy - half, obj.cx + half, obj.cy + half)


def clear_relation(a: ShapeObject, b: ShapeObject) -> str | None:
    """The one relation of a to b when it is unambiguous (granted alone by the GenEval rule),
    else None."""
    found = relations_between(a, b)
    return found.pop() if len(found) == 1 else None


def _apart(a: ShapeObject, b: ShapeObject) -> bool:
    # Boxes separated by at least GAP along some axis: the shapes inside cannot touch.
    return abs(a.cx - b.cx) >= (a.size + b.size) / 2 + GAP or abs(a.cy - b.cy) >= (a.size + b.size) / 2 + GAP


def _size_range(n_objects: int) -> tuple[float, float]:
    # Fewer objects may be larger; the smallest stays about 13 px on a 64 px canvas.
    return {1: (0.3, 0.55), 2: (0.24, 0.42), 3: (0.2, 0.34)}.get(n_objects, (0.2, 0.3))


def _place(specs: list[tuple[str, str]], rng: random.Random, constraints=(), attempts: int = 400) -> list[ShapeObject]:
    """Random sizes and non-overlapping positions for (shape, colour) specs.

    `constraints` are (i, relation, j): object i must stand clearly in `relation` to object j.
    Whole layouts are redrawn until they fit; sizes shrink if space keeps running out.
    """
    low, high = _size_range(len(specs))
    for attempt in range(attempts):
        shrink = 0.97 ** (attempt // 40)
        objects = []
        for shape, color in specs:
            size = rng.uniform(low, high) * shrink
            lo, hi = EDGE + size / 2, 1 - EDGE - size / 2
            for _ in range(60):
                candidate = ShapeObject(shape, color, rng.uniform(lo, hi), rng.uniform(lo, hi), size)
                if all(_apart(candidate, other) for other in objects):
                    objects.append(candidate)
                    break
            else:
                break
        if len(objects) == len(specs) and all(
            clear_relation(objects[i], objects[j]) == relation for i, relation, j in constraints
        ):
            return objects
    raise RuntimeError(f"could not lay out {len(specs)} objects with constraints {list(constraints)}")


# --------------------------------------------------------------------------------------------
# Scenes
# --------------------------------------------------------------------------------------------


def _as_rng(rng) -> random.Random:
    return rng if isinstance(rng, random.Random) else random.Random(rng)


def random_scene(rng, n_objects: int | None = None, *, max_objects: int = 4) -> Scene:
    """A random scene of `n_objects` (default: 1 to `max_objects`) objects; `rng` is a
    random.Random or an int seed."""
    rng = _as_rng(rng)
    if n_objects is None:
        n_objects = rng.randint(1, max_objects)
    if not 1 <= n_objects <= 4:
        raise ValueError(f"ShapesWorld scenes hold 1 to 4 objects, got {n_objects}")
    specs = [(rng.choice(SHAPES), rng.choice(tuple(COLORS))) for _ in range(n_objects)]
    if n_objects >= 2 and rng.random() < REPEAT_RATE:
        # Independent draws almost never repeat a (shape, colour) pair, and then no caption
        # would ever say "three circles": let a group of 2..n objects share one.
        repeats = rng.randint(2, n_objects)
        specs[:repeats] = [specs[0]] * repeats
    return Scene(_place(specs, rng))


def scene_for_entry(entry: dict, rng) -> Scene:
    """A scene satisfying one GenEval metadata line: exactly `count` objects of each included
    class, the required colours, and any position requirement held clearly. Everything the line
    leaves open (sizes, places, other colours) is random."""
    rng = _as_rng(rng)
    specs, owner = [], []
    for index, item in enumerate(entry["include"]):
        if item["class"] not in SHAPES:
            raise ValueError(f"class {item['class']!r} is not a ShapesWorld shape ({', '.join(SHAPES)})")
        if item.get("color") is not None and item["color"] not in COLORS:
            raise ValueError(f"colour {item['color']!r} is not a GenEval colour")
        for _ in range(item["count"]):
            specs.append((item["class"], item.get("color") or rng.choice(tuple(COLORS))))
            owner.append(index)
    if not 1 <= len(specs) <= 4:
        raise ValueError(f"ShapesWorld scenes hold 1 to 4 objects; {entry.get('prompt')!r} needs {len(specs)}")
    constraints = []
    for index, item in enumerate(entry["include"]):
        if "position" in item:
            relation, target = item["position"]
            if relation not in RELATIONS:
                raise ValueError(f"unknown relation {relation!r}")
            for i in (k for k, o in enumerate(owner) if o == index):
                for j in (k for k, o in enumerate(owner) if o == target):
                    constraints.append((i, relation, j))
    return Scene(_place(specs, rng, constraints))


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _outline(shape: str, x: float, y: float, half: float) -> list[tuple[float, float]]:
    """Polygon of a shape filling the square of half-side `half` centred at (x, y)."""
    if shape == "square":
        return [(x - half, y - half), (x + half, y - half), (x + half, y + half), (x - half, y + half)]
    if shape == "triangle":
        return [(x, y - half), (x + half, y + half), (x - half, y + half)]
    if shape == "diamond":
        return [(x, y - half), (x + half, y), (x, y + half), (x - half, y)]
    if shape == "cross":
        arm = half / 3
        return [
            (x - arm, y - half),
            (x + arm, y - half),
            (x + arm, y - arm),
            (x + half, y - arm),
            (x + half, y + arm),
            (x + arm, y + arm),
            (x + arm, y + half),
            (x - arm, y + half),
            (x - arm, y + arm),
            (x - half, y + arm),
            (x - half, y - arm),
            (x - arm, y - arm),
        ]
    if shape == "star":
        # A five-pointed star spans 1.81 outer radii vertically; scale and shift it so it fills
        # the box's height, point up.
        outer = half * 2 / (1 + math.cos(math.pi / 5))
        centre_y = y - half + outer
        points = []
        for k in range(10):
            radius = outer if k % 2 == 0 else outer * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((x + radius * math.cos(angle), centre_y + radius * math.sin(angle)))
        return points
    raise ValueError(f"no outline for {shape!r}")


def render(scene: Scene, size: int = 64) -> Image.Image:
    """The scene as a `size` x `size` RGB image."""
    if size < 8:
        raise ValueError(f"image size must be at least 8 px, got {size}")
    big = size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), tuple(scene.background))
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        x, y, half = obj.cx * big, obj.cy * big, obj.size * big / 2
        if obj.shape in ("circle", "ring"):
            draw.ellipse((x - half, y - half, x + half, y + half), fill=COLORS[obj.color])
            if obj.shape == "ring":
                hole = half * RING_HOLE
                draw.ellipse((x - hole, y - hole, x + hole, y + hole), fill=tuple(scene.background))
        elif obj.shape == "semicircle":
            # The upper half of a disc, flat side down, centred vertically in its box.
            draw.pieslice((x - half, y - half / 2, x + half, y + 3 * half / 2), 180, 360, fill=COLORS[obj.color])
        else:
            draw.polygon(_outline(obj.shape, x, y, half), fill=COLORS[obj.color])
    return canvas.reduce(SUPERSAMPLE)


# --------------------------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------------------------


def article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def plural(shape: str) -> str:
    return shape + ("es" if shape.endswith(("s", "x", "sh", "ch")) else "s")


def noun_phrase(shape: str, count: int = 1, color: str | None = None) -> str:
    """ "a red circle", "two circles", "an orange star" -- GenEval's wording."""
    words = f"{color} " if color else ""
    if count == 1:
        return article(words + shape)
    return f"{NUMBER_WORDS[count]} {words}{plural(shape)}"


_COLOR_ORDER = {color: rank for rank, color in enumerate(COLORS)}
_SHAPE_ORDER = {shape: rank for rank, shape in enumerate(SHAPES)}


def _groups(scene: Scene) -> list[list[ShapeObject]]:
    # Objects of the same colour and shape, in order of first appearance.
    groups: dict[tuple[str, str], list[ShapeObject]] = {}
    for obj in scene.objects:
        groups.setdefault((obj.color, obj.shape), []).append(obj)
    return list(groups.values())


def _where(obj: ShapeObject) -> str:
    row = "top" if obj.cy < 0.4 else "bottom" if obj.cy > 0.6 else ""
    column = "left" if obj.cx < 0.4 else "right" if obj.cx > 0.6 else ""
    if not row and not column:
        return "in the center"
    return "in the " + " ".join(part for part in (row, column) if part)


def _group_relation(first: list[ShapeObject], second: list[ShapeObject]) -> str | None:
    # A relation between groups only when every pair of members agrees on it.
    relations = {clear_relation(a, b) for a in first for b in second}
    return relations.pop() if len(relations) == 1 else None


def dense_caption(scene: Scene) -> str:
    """Every object with its colour, counts, and the relations between them, objects listed in
    `COLORS` then `SHAPES` order whatever order they were drawn in.

    One object: "a photo of a red circle in the top left". Two single objects: "a photo of a red
    circle left of a blue star" ("next to" when no relation is clear). More: "a photo of two red
    circles and a blue star. the red circles are above the blue star."
    """
    # A fixed order (colour, then shape) rather than drawing order: the same scene always gets the
    # same caption, so the understanding LM can align an image with one description, not with
    # any of 24 orderings of four objects (image -> caption retrieval rose from 54 to 79 %).
    groups = sorted(_groups(scene), key=lambda g: (_COLOR_ORDER[g[0].color], _SHAPE_ORDER[g[0].shape]))
    phrases = [noun_phrase(g[0].shape, len(g), g[0].color) for g in groups]
    if len(scene.objects) == 1:
        return f"a photo of {phrases[0]} {_where(scene.objects[0])}"
    if len(scene.objects) == 2 and len(groups) == 2:
        relation = clear_relation(groups[0][0], groups[1][0]) or "next to"
        return f"a photo of {phrases[0]} {relation} {phrases[1]}"
    listing = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    sentences = [f"a photo of {listing}."]
    for first, second in zip(groups, groups[1:]):
        relation = _group_relation(first, second)
        if relation:
            subject = f"the {first[0].color} " + (first[0].shape if len(first) == 1 else plural(first[0].shape))
            verb = "is" if len(first) == 1 else "are"
            other = f"the {second[0].color} " + (second[0].shape if len(second) == 1 else plural(second[0].shape))
            sentences.append(f"{subject} {verb} {relation} {other}.")
    return " ".join(sentences)


GENERIC_CAPTIONS = (
    "shapes",
    "some shapes",
    "geometric shapes",
    "colorful shapes",
    "abstract shapes",
    "simple shapes on gray",
    "clip art",
)


def sparse_caption(scene: Scene, rng, p_drop: float = 0.5) -> str:
    """A web-like caption: a random subset of what the scene holds, with colours, counts and
    relations each dropped with probability `p_drop`; sometimes nothing but "shapes".

    Never starts with "a photo of", so it can never equal a GenEval prompt.
    """
    if not 0 <= p_drop <= 1:
        raise ValueError(f"p_drop must be in [0, 1], got {p_drop}")
    rng = _as_rng(rng)
    if rng.random() < p_drop * 0.2:
        return rng.choice(GENERIC_CAPTIONS)
    groups = _groups(scene)
    rng.shuffle(groups)
    kept = groups[:1] + [g for g in groups[1:] if rng.random() >= p_drop]
    phrases = []
    for group in kept:
        shape, color = group[0].shape, None if rng.random() < p_drop else group[0].color
        if len(group) > 1 and rng.random() < p_drop:
            phrase = f"{color} {plural(shape)}" if color else plural(shape)  # "circles", no number
        else:
            phrase = noun_phrase(shape, len(group), color)
            if len(group) == 1 and rng.random() < 0.3:
                phrase = phrase.split(" ", 1)[1]  # "red circle", no article
        phrases.append(phrase)
    if len(kept) == 2 and len(kept[0]) == len(kept[1]) == 1 and rng.random() >= p_drop:
        relation = clear_relation(kept[0][0], kept[1][0])
        if relation:
            return f"{phrases[0]} {relation} {phrases[1]}"
    return " and ".join(phrases) if len(phrases) < 3 else ", ".join(phrases)


# --------------------------------------------------------------------------------------------
# Training data
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def heldout_prompts() -> frozenset[str]:
    """Every GenEval-mini prompt (the shipped metadata file): texts no training caption may equal."""
    lines = MINI_METADATA.read_text().splitlines()
    return frozenset(json.loads(line)["prompt"] for line in lines if line.strip())


def _normalise(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(" .")


def is_heldout_caption(text: str) -> bool:
    """True when `text` is a GenEval-mini prompt, ignoring case, spacing and a final full stop."""
    return _normalise(text) in heldout_prompts()


@dataclass
class ShapesExample:
    scene: Scene
    image: Image.Image
    dense: str
    sparse: str


class ShapesDataset:
    """`n` random scenes with image, dense and sparse caption; example i depends only on
    (seed, i), and is rendered when asked for.

    `avoid_pairs`, a set of (colour, shape), keeps those objects out of every scene: with
    `recakit.toy.geneval_mini.UNSEEN_PAIRS` the prompts that name them test combinations the model
    never saw.
    """

    def __init__(
        self,
        n: int,
        seed: int = 0,
        *,
        image_size: int = 64,
        p_drop: float = 0.5,
        max_objects: int = 4,
        avoid_pairs=frozenset(),
    ):
        if n < 1:
            raise ValueError(f"a dataset needs at least one example, got n={n}")
        self.n, self.seed, self.image_size = n, seed, image_size
        self.p_drop, self.max_objects = p_drop, max_objects
        self.avoid_pairs = frozenset(tuple(pair) for pair in avoid_pairs)
        unknown = [pair for pair in self.avoid_pairs if pair[0] not in COLORS or pair[1] not in SHAPES]
        if unknown:
            raise ValueError(f"avoid_pairs must be (colour, shape) pairs, got {unknown}")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> ShapesExample:
        if not -self.n <= index < self.n:
            raise IndexError(index)
        index %= self.n
        rng = random.Random(f"shapes-{self.seed}-{index}")
        scene = random_scene(rng, max_objects=self.max_objects)
        while any((obj.color, obj.shape) in self.avoid_pairs for obj in scene.objects):
            scene = random_scene(rng, max_objects=self.max_objects)
        dense = dense_caption(scene)
        sparse = sparse_caption(scene, rng, self.p_drop)
        for caption in (dense, sparse):
            if is_heldout_caption(caption):
                raise RuntimeError(f"training caption {caption!r} equals a held-out GenEval-mini prompt")
        return ShapesExample(scene, render(scene, self.image_size), dense, sparse)


def scene_dataset(n: int, seed: int = 0, **options) -> ShapesDataset:
    """n deterministic (scene, image, dense, sparse) training examples; see ShapesDataset."""
    return ShapesDataset(n, seed, **options)


def render_metadata(
    metadata: str | Path, out: str | Path, *, n_per_prompt: int = 4, size: int = 64, seed: int = 0
) -> int:
    """Ground-truth images for every line of a GenEval metadata file, in GenEval's folder layout
    (`out/00000/metadata.jsonl`, `out/00000/samples/0000.png`, ...): what a perfect model would
    draw. Existing images are kept, so an interrupted run resumes. Returns the number of prompts."""
    from tqdm import tqdm

    lines = [line.strip() for line in Path(metadata).read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{metadata} holds no metadata lines")
    out = Path(out)
    for number, line in enumerate(tqdm(lines, desc="rendering ground truth", unit="prompt")):
        entry = json.loads(line)
        folder = out / f"{number:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        (folder / "metadata.jsonl").write_text(line + "\n")
        for sample in range(n_per_prompt):
            target = folder / "samples" / f"{sample:04d}.png"
            if target.exists():
                continue
            scene = scene_for_entry(entry, random.Random(f"truth-{seed}-{number}-{sample}"))
            partial = target.with_suffix(".part.png")
            render(scene, size).save(partial)
            partial.replace(target)
    return len(lines)
