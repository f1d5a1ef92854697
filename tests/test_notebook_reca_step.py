"""Notebook 02's hand-written RecA step builds exactly what `reca_loss` builds: its own code cells
(section 3) run here on the tiny Janus, whose dropped rows keep their image, with non-square
images, and on the toy, whose dropped rows get the unconditional prefix."""

import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from recakit import reca_loss, tiny_janus
from recakit.objective import reca_choices
from recakit.training import sample_seeds

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _hand_written_step_cells() -> list[str]:
    """The code cells of notebook 02 that choose the first batch and compute the loss by hand."""
    sys.path.insert(0, str(NOTEBOOKS))
    from build import read_cells

    sources = [
        cell.source for cell in read_cells(NOTEBOOKS / "src" / "02_reca_finetuning.py") if cell.cell_type == "code"
    ]
    first = next(i for i, source in enumerate(sources) if "reca_choices(" in source)
    assert "loss by hand" in sources[first + 1]
    return sources[first : first + 2]


def _seed_with_a_dropped_row(batch_size: int) -> int:
    return next(
        seed
        for seed in range(100)
        if any(dropped for _, dropped in reca_choices(batch_size, sample_seeds(batch_size, 0, seed)))
    )


def _run(namespace: dict) -> dict:
    for source in _hand_written_step_cells():
        exec(compile(source, "nb02", "exec"), namespace)
    return namespace


def _non_square_images(count: int) -> list[Image.Image]:
    generator = torch.Generator().manual_seed(0)
    sizes = [(48, 32), (32, 56), (40, 40), (64, 36)]
    return [
        Image.fromarray(
            torch.randint(0, 256, (sizes[i % 4][1], sizes[i % 4][0], 3), generator=generator, dtype=torch.uint8).numpy()
        )
        for i in range(count)
    ]


def test_the_hand_written_step_is_reca_loss_on_janus():
    model, processor = tiny_janus(seed=0)
    batch_size = 4
    seed = _seed_with_a_dropped_row(batch_size)
    data = _non_square_images(batch_size)
    ns = _run(
        {
            "model": model,
            "processor": processor,
            "data": data,
            "DATA_DIR": "images",
            "BATCH_SIZE": batch_size,
            "SEED": seed,
            "RESOLUTION": None,
        }
    )
    assert any(ns["dropped"]) and not ns["drop"].any()  # Janus keeps the image of a dropped row
    assert {image.size[0] == image.size[1] for image in ns["images"]} == {True}
    expected = reca_loss(model, processor, [data[i] for i in _batch(ns)], sample_seeds=ns["seeds"])
    assert ns["loss"].item() == pytest.approx(expected.item(), abs=1e-6)


def test_the_hand_written_step_is_reca_loss_on_the_toy():
    from recakit import load_model
    from recakit.toy.shapes import scene_dataset

    model, processor = load_model("toy", device="cpu")
    batch_size = 8
    seed = _seed_with_a_dropped_row(batch_size)
    data = scene_dataset(batch_size, seed=0)
    ns = _run(
        {
            "model": model,
            "processor": processor,
            "data": data,
            "DATA_DIR": "",
            "BATCH_SIZE": batch_size,
            "SEED": seed,
            "RESOLUTION": 32,
        }
    )
    assert ns["drop"].any()  # the toy's dropped row gets the unconditional prefix
    expected = reca_loss(model, processor, [data[i].image for i in _batch(ns)], resolution=32, sample_seeds=ns["seeds"])
    assert ns["loss"].item() == pytest.approx(expected.item(), abs=1e-6)


def _batch(ns: dict) -> list[int]:
    from recakit.training import batch_indices

    return batch_indices(len(ns["data"]), ns["BATCH_SIZE"], 0, ns["SEED"])
