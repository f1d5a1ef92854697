"""Where a toy model's understanding side keeps shape and colour (docs/toy_study.md, measurement 21).

Linear probes, trained on frozen features of 2000 one-object scenes and scored on 500 others:
- vision cells: the encoder cell an object is centred in -> its shape, its colour (what stage 1a
  teaches);
- image query states: all query states of the scene, flattened -> the object's shape, its colour
  (what the generator would read from the image during RecA).
A stage 1 whose captions lose shape (`recakit.toy.train_base.shape_check`) can have lost it in the
encoder or between the encoder and the query states; the two probes tell which.

    python benchmarks/toy_understanding_probes.py                       # the shipped base
    python benchmarks/toy_understanding_probes.py --model DIR [DIR ...] # saved toy folders
"""

import argparse
import json
import random

import torch
import torch.nn.functional as F

from recakit.toy.model import load_toy
from recakit.toy.shapes import COLORS, SHAPES, random_scene, render
from recakit.toy.train_base import object_map


@torch.no_grad()
def features(model, processor, scenes, batch_size: int = 128):
    """(vision cells (N, cells, width), image query states (N, k, D)) of the rendered scenes."""
    cells, states = [], []
    for start in range(0, len(scenes), batch_size):
        pixels = processor.pixel_values([render(scene) for scene in scenes[start : start + batch_size]])
        cells.append(model.vision(pixels))
        states.append(model.understand_vision_cells(cells[-1]))
    return torch.cat(cells), torch.cat(states)


def probe_accuracy(train_x, train_y, test_x, test_y, steps: int = 600) -> float:
    torch.manual_seed(0)
    head = torch.nn.Linear(train_x.shape[-1], max(len(SHAPES), len(COLORS)))
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = F.cross_entropy(head(train_x), train_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return round(float((head(test_x).argmax(-1) == test_y).float().mean()), 3)


def labels(scenes):
    objects = [scene.objects[0] for scene in scenes]
    return (
        torch.tensor([SHAPES.index(o.shape) for o in objects]),
        torch.tensor([list(COLORS).index(o.color) for o in objects]),
    )


def centre_cells(cells, scenes):
    """Each scene's cell holding its object's centre, as `object_map` assigns it."""
    index = torch.stack([(object_map(scene)[:, 0] >= 0).nonzero()[0, 0] for scene in scenes])
    return cells[torch.arange(len(scenes)), index]


def understanding_probes(model, processor, n_train: int = 2000, n_test: int = 500, seed: int = 123) -> dict:
    rng = random.Random(seed)
    train = [random_scene(rng, n_objects=1) for _ in range(n_train)]
    test = [random_scene(rng, n_objects=1) for _ in range(n_test)]
    (train_cells, train_states), (test_cells, test_states) = (features(model, processor, s) for s in (train, test))
    (train_shape, train_colour), (test_shape, test_colour) = labels(train), labels(test)
    inputs = {
        "vision cell": (centre_cells(train_cells, train), centre_cells(test_cells, test)),
        "image query states": (train_states.flatten(1), test_states.flatten(1)),
    }
    return {
        f"{name} -> {target}": probe_accuracy(x, y, x_test, y_test)
        for name, (x, x_test) in inputs.items()
        for target, y, y_test in (("shape", train_shape, test_shape), ("colour", train_colour, test_colour))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="*", default=[None], help="saved toy folders (default: the shipped base)")
    args = parser.parse_args()
    for path in args.model:
        model, processor = load_toy(path)
        print(json.dumps({"model": path or "shipped", **understanding_probes(model, processor)}))


if __name__ == "__main__":
    main()
