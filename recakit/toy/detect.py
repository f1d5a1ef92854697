"""A GenEval detector for ShapesWorld images, by plain image analysis (no training, numpy only).

GenEval scores real images with Mask2Former and CLIP; for ShapesWorld we know exactly what the
world holds, so a classical detector is both faster and more reliable, and it lets the toy
reproduction run the same GenEval rules (`recakit.bench.geneval.judge`) on a CPU.

For each image:
1. the background colour is the median of the border pixels, and a pixel is foreground when its
   colour is far enough from it -- far enough to ignore anti-aliasing fringes, blur and the noise
   of images that went through a VQ tokenizer or came out of a model;
2. foreground pixels are grouped into connected components, and specks are dropped;
3. each component is measured against its own contrast (a soft mask from 0 = background to 1 =
   object colour), so a pale pink shape and a black one of the same outline look the same;
4. its shape is the class of the nearest of many reference components (every shape rendered at
   several sizes and offsets, sharp, blurred and with outlines roughened the way a VQ decoder
   roughens them), compared on scale-free geometry: aspect, fill of the box, solidity (fill of
   the convex hull), an empty centre (rings), where the mass sits vertically and how full the
   top and bottom bands are (triangles, semicircles), and the outline's radius seen from the box
   centre in 16 directions (shapes are never rotated, so that curve separates stars, crosses,
   squares and diamonds);
5. its colour is the nearest palette colour, in CIE Lab, to the median of its core pixels (the
   component shrunk by one pixel, so edge pixels mixed with the background do not count);
6. its score falls from 1 as its geometry strays from every reference: a blob that is no shape
   scores low (a bar, a stroke, an L: near 0; two shapes run together: below 0.9, never sure),
   so GenEval's 0.3 and 0.9 thresholds keep meaning "some evidence" and "sure".
"""

from __future__ import annotations

import math
import random
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

from recakit.toy.shapes import COLORS, SHAPES, Scene, ShapeObject, render

# Scale-free measures of a component, then its radial profile (see `shape_features`).
SCALAR_FEATURES = ("log_aspect", "fill", "solidity", "centre", "mass_y", "top_fill", "bottom_fill")
PROFILE_BINS = 16

# How far each feature may stray before a match counts as poor: about what blur and pixelation
# move it by on small shapes. Distances are measured in these units.
SCALAR_TOLERANCE = np.array([0.12, 0.07, 0.07, 0.3, 0.04, 0.12, 0.12])
PROFILE_TOLERANCE = 0.08

# Score = exp(-(max(distance - FREE, 0) / FALLOFF)^2): within FREE of a reference is a sure match.
FREE = 0.9
FALLOFF = 0.5

# A pixel whose RGB distance to the background exceeds this is foreground. The palette colour
# closest to the background (pink) is about 100 away, so this sits at half of it.
FOREGROUND_DISTANCE = 48.0

REFERENCE_SIZES = (0.18, 0.22, 0.27, 0.33, 0.42, 0.55, 0.7)
REFERENCE_BLURS = (0, 0.7, 1.4)
# Roughened copies of each reference (see `roughen`), and how far their pixels move.
REFERENCE_ROUGHENED = 4
ROUGHEN_AMPLITUDE = 1.2

# Components smaller than this fraction of the image are specks, not objects (the smallest
# rendered shape covers about 1.5 % of the image).
MIN_AREA_FRACTION = 0.004


# --------------------------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------------------------


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (..., 3) in 0-255 -> CIE Lab (D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


COLOR_NAMES = tuple(COLORS)
PALETTE_LAB = rgb_to_lab(np.array([COLORS[name] for name in COLOR_NAMES]))


def nearest_color(rgb) -> str:
    distances = np.linalg.norm(PALETTE_LAB - rgb_to_lab(np.asarray(rgb, dtype=np.float64)), axis=-1)
    return COLOR_NAMES[int(np.argmin(distances))]


# --------------------------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------------------------


def _shift(array: np.ndarray, dy: int, dx: int, fill) -> np.ndarray:
    """array moved by (dy, dx), the uncovered border set to `fill`."""
    out = np.full_like(array, fill)
    h, w = array.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = array[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def connected_components(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a boolean mask, as (N, 2) arrays of (y, x) pixel indices.

    Works on horizontal runs of pixels: a run joins every run of the row above that it touches
    (diagonal contact included), and a small union-find merges the groups.
    """
    runs = []  # (y, x_start, x_stop)
    parent = []

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    steps = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    start_rows, starts = np.nonzero(steps == 1)
    stops = np.nonzero(steps == -1)[1]
    previous_row, current_row, current_y = [], [], -1
    for y, start, stop in zip(start_rows.tolist(), starts.tolist(), stops.tolist()):
        if y != current_y:
            previous_row = current_row if y == current_y + 1 else []
            current_row, current_y = [], y
        index = len(runs)
        runs.append((y, start, stop))
        parent.append(index)
        for above in previous_row:
            _, above_start, above_stop = runs[above]
            if above_start <= stop and start <= above_stop:
                parent[root(above)] = root(index)
        current_row.append(index)
    groups: dict[int, list[tuple[int, int, int]]] = {}
    for index, run in enumerate(runs):
        groups.setdefault(root(index), []).append(run)
    components = []
    for group in sorted(groups.values()):
        ys = np.concatenate([np.full(stop - start, y) for y, start, stop in group])
        xs = np.concatenate([np.arange(start, stop) for _, start, stop in group])
        components.append(np.stack([ys, xs], axis=1))
    return components


def _erode(mask: np.ndarray) -> np.ndarray:
    eroded = mask.copy()
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        eroded &= _shift(mask, dy, dx, False)
    return eroded


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def _hull_area(mask: np.ndarray) -> float:
    """Area of the convex hull of a mask's pixel squares (monotone chain over row ends)."""
    points = set()
    for y in range(mask.shape[0]):
        xs = np.nonzero(mask[y])[0]
        if len(xs):
            for x in (xs[0], xs[-1] + 1):
                points.add((float(x), float(y)))
                points.add((float(x), float(y + 1)))
    points = sorted(points)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in points:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(points):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    area = 0.0
    for (x0, y0), (x1, y1) in zip(hull, hull[1:] + hull[:1]):
        area += x0 * y1 - x1 * y0
    return abs(area) / 2


RAY_ANGLES = 64
_ANGLES = np.arange(RAY_ANGLES) * 2 * math.pi / RAY_ANGLES


def radial_profile(weights: np.ndarray, centre_y: float, centre_x: float) -> np.ndarray:
    """Outline radius in RAY_ANGLES directions (0 = right, then clockwise on screen): along each
    ray from the centre, the farthest point where the soft mask `weights` (bilinearly sampled)
    is still at least one half. Sub-pixel, so even 13-pixel shapes give a clean profile."""
    h, w = weights.shape
    steps = np.arange(0, math.hypot(h, w) / 2 + 1, 0.25)
    ys = centre_y + np.sin(_ANGLES)[:, None] * steps[None, :]
    xs = centre_x + np.cos(_ANGLES)[:, None] * steps[None, :]
    padded = np.pad(weights, 1)
    ys, xs = np.clip(ys + 1, 0, h + 0.999), np.clip(xs + 1, 0, w + 0.999)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    y1, x1 = np.minimum(y0 + 1, h + 1), np.minimum(x0 + 1, w + 1)
    sampled = (
        padded[y0, x0] * (1 - fy) * (1 - fx)
        + padded[y0, x1] * (1 - fy) * fx
        + padded[y1, x0] * fy * (1 - fx)
        + padded[y1, x1] * fy * fx
    )
    inside = sampled >= 0.5
    last = np.where(inside.any(axis=1), steps.size - 1 - np.argmax(inside[:, ::-1], axis=1), 0)
    return steps[last]


def shape_features(weights: np.ndarray) -> np.ndarray:
    """The FEATURES of one component, from its soft mask (1 = object colour, 0 = background)
    cropped to its box."""
    mask = weights >= 0.5
    h, w = mask.shape
    area = max(float(mask.sum()), 1.0)
    ys, xs = np.nonzero(mask)
    centre_y, centre_x = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.mgrid[0:h, 0:w]
    central = np.hypot((yy - centre_y) / (h / 2), (xx - centre_x) / (w / 2)) < 0.3
    # The outline seen from the box centre, relative to its mean radius, in PROFILE_BINS
    # directions: shapes here are never rotated, so this one curve tells most of them apart.
    band = max(1, round(h / 5))
    radius = radial_profile(weights, centre_y, centre_x)
    profile = radius.reshape(PROFILE_BINS, -1).mean(axis=1) / max(radius.mean(), 1e-6)
    scalars = [
        math.log(h / w),
        area / (h * w),
        area / max(_hull_area(mask), area),
        mask[central].mean() if central.any() else 1.0,
        (ys.mean() - centre_y) / h if len(ys) else 0.0,
        # How full the top and bottom fifths are: a semicircle's flat base or a triangle's, which
        # a lumpy blob of the same outline lacks.
        mask[:band].mean(),
        mask[-band:].mean(),
    ]
    return np.concatenate([scalars, profile])


def roughen(
    image: Image.Image, rng: np.random.Generator, amplitude: float = ROUGHEN_AMPLITUDE, grid: int = 8
) -> Image.Image:
    """The image with its pixels moved by a smooth random field (`amplitude` px on a `grid` x
    `grid` lattice): outlines come out wavy and stepped, as from a VQ decoder working in
    8-pixel codes."""
    pixels = np.asarray(image)
    h, w = pixels.shape[:2]
    lattice = rng.normal(0, amplitude, (2, grid + 1, grid + 1))
    ys, xs = np.linspace(0, grid, h), np.linspace(0, grid, w)
    y0, x0 = np.minimum(ys.astype(int), grid - 1), np.minimum(xs.astype(int), grid - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]

    def upsampled(field):
        return (
            field[y0][:, x0] * (1 - fy) * (1 - fx)
            + field[y0 + 1][:, x0] * fy * (1 - fx)
            + field[y0][:, x0 + 1] * (1 - fy) * fx
            + field[y0 + 1][:, x0 + 1] * fy * fx
        )

    yy, xx = np.mgrid[0:h, 0:w]
    source_y = np.clip(np.round(yy + upsampled(lattice[0])).astype(int), 0, h - 1)
    source_x = np.clip(np.round(xx + upsampled(lattice[1])).astype(int), 0, w - 1)
    return Image.fromarray(pixels[source_y, source_x])


@lru_cache(maxsize=1)
def reference_features() -> tuple[np.ndarray, np.ndarray]:
    """(features (R, F), shape index (R,)) of every shape rendered at many sizes and sub-pixel
    offsets, sharp, blurred and roughened: the examples a component is matched against."""
    rng, field_rng = random.Random(0), np.random.default_rng(0)
    features, classes = [], []
    for index, shape in enumerate(SHAPES):
        for size in REFERENCE_SIZES:
            for _ in range(2):
                obj = ShapeObject(
                    shape, rng.choice(COLOR_NAMES), 0.5 + rng.uniform(-0.02, 0.02), 0.5 + rng.uniform(-0.02, 0.02), size
                )
                clean = render(Scene([obj]), 64)
                variants = [clean.filter(ImageFilter.GaussianBlur(blur)) if blur else clean for blur in REFERENCE_BLURS]
                variants += [roughen(clean, field_rng) for _ in range(REFERENCE_ROUGHENED)]
                for image in variants:
                    for _, weights, _ in _components(np.asarray(image, dtype=np.float64)):
                        features.append(shape_features(weights))
                        classes.append(index)
    return np.array(features), np.array(classes)


def _components(pixels: np.ndarray):
    """(component pixels, soft mask cropped to its box, (y0, x0, y1, x1)) for each object-sized
    foreground component of an RGB array."""
    h, w, _ = pixels.shape
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    distance = np.linalg.norm(pixels - background, axis=-1)
    mask = distance > FOREGROUND_DISTANCE
    noise = float(np.median(distance[~mask])) if (~mask).any() else 0.0
    for component in connected_components(mask):
        if len(component) < MIN_AREA_FRACTION * h * w:
            continue
        # Each object is measured against its own contrast, so a pale pink shape and a black
        # one of the same outline give the same mask.
        contrast = float(np.percentile(distance[component[:, 0], component[:, 1]], 90))
        y0, x0 = component.min(axis=0)
        y1, x1 = component.max(axis=0) + 1
        weights = np.zeros((y1 - y0, x1 - x0))
        weights[component[:, 0] - y0, component[:, 1] - x0] = np.clip(
            (distance[component[:, 0], component[:, 1]] - noise) / max(contrast - noise, 1e-6), 0, 1
        )
        yield component, weights, (y0, x0, y1, x1)


class ShapesDetector:
    """GenEval detector for ShapesWorld: `detect(images)` -> per image a list of
    {"class", "score", "box": [x0, y0, x1, y1], "color"}, most confident first."""

    def __init__(self):
        self.references, self.reference_classes = reference_features()

    def nearest(self, weights: np.ndarray) -> tuple[str, float]:
        """(shape of the nearest reference, distance to it in tolerance units) for one
        component's cropped soft mask."""
        gaps = self.references - shape_features(weights)
        n = len(SCALAR_FEATURES)
        # The measures and the profile count equally, however many profile bins there are.
        scalar_part = np.mean((gaps[:, :n] / SCALAR_TOLERANCE) ** 2, axis=1)
        profile_part = np.mean((gaps[:, n:] / PROFILE_TOLERANCE) ** 2, axis=1)
        distances = np.sqrt((scalar_part + profile_part) / 2)
        best = int(np.argmin(distances))
        return SHAPES[self.reference_classes[best]], float(distances[best])

    def classify(self, weights: np.ndarray) -> tuple[str, float]:
        """(shape, score in [0, 1]) of one component's cropped soft mask."""
        shape, distance = self.nearest(weights)
        return shape, math.exp(-((max(distance - FREE, 0.0) / FALLOFF) ** 2))

    def detect_one(self, image: Image.Image) -> list[dict]:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
        detections = []
        for component, weights, (y0, x0, y1, x1) in _components(pixels):
            shape, score = self.classify(weights)
            whole = np.zeros(pixels.shape[:2], dtype=bool)
            whole[component[:, 0], component[:, 1]] = True
            core = _erode(whole)
            if core.sum() < 3:
                core = whole
            color = nearest_color(np.median(pixels[core], axis=0))
            detections.append(
                {
                    "class": shape,
                    "score": round(score, 4),
                    "box": [float(x0), float(y0), float(x1), float(y1)],
                    "color": color,
                }
            )
        detections.sort(key=lambda d: d["score"], reverse=True)
        return detections

    def detect(self, images: list[Image.Image]) -> list[list[dict]]:
        return [self.detect_one(image) for image in images]
