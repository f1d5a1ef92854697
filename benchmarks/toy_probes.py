"""Probe what a toy model's generator reads from its condition (docs/toy_study.md, "four measurements").

Three numbers per model, on held-out ShapesWorld scenes:
- the teacher-forced loss per image code under the null condition, the image's own query states,
  its dense caption's query states, and that caption with every colour word swapped: a generator
  that uses its condition scores the true condition well below the null one;
- for prompts "a photo of a {colour} circle" and "{colour} circle", the share of the drawn
  foreground patches in the named colour (chance is about one in ten);
- the colour histogram of the drawn foreground patches (a colour that takes most of it is a prior
  the generator paints with whatever the prompt says).

    python benchmarks/toy_probes.py                          # the shipped base
    python benchmarks/toy_probes.py --model runs/toy/model   # any saved toy folder
"""

import argparse
import json
import random
import re

import torch

from recakit.sampling import generate_image_tokens
from recakit.toy.model import EMPTY_PATTERN, load_toy
from recakit.toy.shapes import COLORS, scene_dataset
from recakit.toy.train_base import SPARSE_DROP

PROBE_COLOURS = ("red", "blue", "yellow", "green", "white", "black")
PROMPT_FORMS = ("a photo of a {colour} circle", "{colour} circle")


def swap_colours(text: str, rng: random.Random) -> str:
    names = list(COLORS)
    return re.sub(
        r"\b(" + "|".join(names) + r")\b", lambda match: rng.choice([n for n in names if n != match.group(1)]), text
    )


@torch.no_grad()
def condition_losses(model, processor, n_scenes: int = 256, seed: int = 777) -> dict:
    data = scene_dataset(n_scenes, seed=seed, p_drop=SPARSE_DROP)
    examples = [data[i] for i in range(n_scenes)]
    pixels = processor.pixel_values([e.image for e in examples])
    codes = model.encode_image_tokens(pixels)
    rng = random.Random(0)
    image_states = model.understand_images(pixels)
    conditions = {
        "null": (image_states, torch.ones(n_scenes)),  # the states are replaced by the null condition
        "image": (image_states, None),
        "dense caption": (model.understand_text([processor.encode(e.dense) for e in examples]), None),
        "dense, colours swapped": (
            model.understand_text([processor.encode(swap_colours(e.dense, rng)) for e in examples]),
            None,
        ),
    }
    return {
        name: round(float(model.generation_loss(model.condition_prefix(states, drop), codes)), 4)
        for name, (states, drop) in conditions.items()
    }


def tokenizer_rgb(model) -> torch.Tensor:
    """The patch tokenizer's colours in 0..255 RGB."""
    return (model.vq.colors + 1) * 127.5


def colour_ids(model) -> dict[str, int]:
    """Each probe colour's nearest colour in the model's patch tokenizer."""
    centroids = tokenizer_rgb(model)
    return {
        name: int(torch.cdist(torch.tensor([COLORS[name]], dtype=torch.float), centroids).argmin())
        for name in PROBE_COLOURS
    }


def prompted_colour_share(model, processor, images_per_prompt: int = 16, cfg_scale: float = 3.0) -> dict:
    ids, num_colors = colour_ids(model), model.vq.num_colors
    shares, histogram = {}, torch.zeros(num_colors, dtype=torch.long)
    for form in PROMPT_FORMS:
        shares[form] = {}
        for colour in PROBE_COLOURS:
            codes = generate_image_tokens(
                model,
                processor,
                [form.format(colour=colour)] * images_per_prompt,
                cfg_scale=cfg_scale,
                seed=list(range(images_per_prompt)),
                progress=False,
            )
            foreground = codes // num_colors != EMPTY_PATTERN
            drawn = codes % num_colors
            shares[form][colour] = round(float((drawn == ids[colour])[foreground].float().mean()), 3)
            histogram += torch.bincount(drawn[foreground], minlength=num_colors)
    rgb = tokenizer_rgb(model).round().int().tolist()
    total = max(1, int(histogram.sum()))
    return {
        "share in the named colour": shares,
        "foreground share per tokenizer colour (RGB)": {
            ",".join(map(str, c)): round(float(n) / total, 3) for c, n in zip(rgb, histogram)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a saved toy folder (default: the shipped base)")
    parser.add_argument("--out", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    model, processor = load_toy(args.model)
    report = {
        "teacher-forced loss per code": condition_losses(model, processor),
        **prompted_colour_share(model, processor),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
