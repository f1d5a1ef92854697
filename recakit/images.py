"""Turn whatever a user hands us into plain 8-bit RGB PIL images.

Every model in recakit expects 8-bit RGB, but real folders hold PNGs with alpha, grayscale scans,
palette GIFs, CMYK JPEGs and 16-bit TIFFs. Converting them all in one place means the objective,
the sampler and the benchmarks never see an odd mode, and a broken file fails early with its
name in the message instead of deep inside a processor.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: the background transparent pixels are composited onto
WHITE = (255, 255, 255)


def load_images(items) -> list[Image.Image]:
    """Paths or PIL images (or one of either) -> list of 8-bit RGB PIL images.

    Transparent images (RGBA, LA, palette with transparency) are composited on white; grayscale,
    palette, CMYK and 16/32-bit images are converted. An unreadable file raises ValueError naming it.
    """
    if isinstance(items, (str, os.PathLike, Image.Image)):
        items = [items]
    return [to_rgb(_open(item)) for item in items]


def _open(item) -> Image.Image:
    if isinstance(item, Image.Image):
        return item
    if not isinstance(item, (str, os.PathLike)):
        raise ValueError(f"expected an image path or a PIL image, got {type(item).__name__}")
    path = Path(item)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an image file: pass the image files in it")
    if not path.is_file():
        raise ValueError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            # cameras store portrait photos sideways plus an EXIF rotation tag; apply it
            return ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"cannot read {path} as an image ({error})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """One PIL image of any common mode -> 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        # palette images may carry transparency; go through RGBA so it is composited, not dropped
        image = image.convert("RGBA")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image), image.mode)).convert("RGB")
    if image.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """High-bit-depth single-channel pixels -> 0..255.

    "I;16" files span 0..65535. Mode "I" and "F" have no fixed range (a 16-bit PNG often opens
    as "I"), so their range is read from the pixels: 0..1 floats, 8-bit, 16-bit, else the maximum."""
    values = values.astype(np.float64)
    peak = float(values.max(initial=0.0))
    if mode.startswith("I;16"):
        top = 65535.0
    elif mode == "F" and peak <= 1.0:
        top = 1.0
    elif peak <= 255:
        top = 255.0
    elif peak <= 65535:
        top = 65535.0
    else:
        top = peak
    return np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)


def fit_longest_side(image: Image.Image, side: int) -> Image.Image:
    """Resize so the longest side is `side`, keeping the aspect ratio (bicubic)."""
    if side < 1:
        raise ValueError(f"image side must be a positive number of pixels, got {side}")
    width, height = image.size
    scale = side / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if new_size == image.size:
        return image
    return image.resize(new_size, Image.Resampling.BICUBIC)


def center_crop_square(image: Image.Image) -> Image.Image:
    """The largest centred square of `image` (the image itself when already square).

    Training targets are cropped rather than padded or stretched: the models generate square
    images, and a letterboxed target would teach them to draw bars."""
    width, height = image.size
    side = min(width, height)
    if width == height:
        return image
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def read_pairs(path) -> list[tuple[Path, str]]:
    """Captioned images from a JSON-lines file, one {"image": PATH, "caption": TEXT} per line;
    a relative PATH is taken from the file's folder. Every image must exist."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs file {path} does not exist")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {number}: not JSON ({error.msg})") from None
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("image"), str)
            or not isinstance(record.get("caption"), str)
            or not record["caption"].strip()
        ):
            raise ValueError(
                f'{path}, line {number}: expected {{"image": PATH, "caption": TEXT}} with a non-empty caption'
            )
        image = path.parent / record["image"]
        if not image.is_file():
            raise FileNotFoundError(f"{path}, line {number}: image {image} does not exist")
        pairs.append((image, record["caption"]))
    if not pairs:
        raise ValueError(f"no pairs in {path}")
    return pairs


def image_files(folder) -> list[Path]:
    """The image files under `folder` (recursively), in a stable sorted order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files
