"""Helpers both image-token samplers share (`recakit.sampling`, plain; `recakit.fast`, static cache).

- `seeds` turns a user's `seed` argument into one seed per image;
- `prefix_batches` cuts the rows into batches, with the unconditional copies of classifier-free
  guidance in the same batch, and gives every row its own seeded generator;
- `guided_logits` applies guidance: logits = uncond + cfg_scale * (cond - uncond);
- `row_noise` and `draw`: the one top-k / Gumbel-max draw. Each row's uniform noise comes from
  that row's own generator, so its draw is the same whatever rows share its batch;
- `evaluating` and `decode_attention`: the modes sampling runs in.

Only the adapter contract is assumed (`recakit.adapter.UnifiedAdapter`), so the model families
may use these too.
"""

from __future__ import annotations

from contextlib import contextmanager
from numbers import Integral

import torch

#: images sampled together when batch_size is None
DEFAULT_BATCH_SIZE = 8


def seeds(seed, count: int) -> list[int]:
    """An int (image i gets seed + i) or one seed per image -> one int seed per image."""
    if isinstance(seed, bool) or not isinstance(seed, (Integral, list, tuple)):
        raise ValueError(f"seed must be an int or a list of ints, got {type(seed).__name__}")
    if isinstance(seed, Integral):
        return [int(seed) + i for i in range(count)]
    if len(seed) != count:
        raise ValueError(f"got {len(seed)} seeds for {count} images; pass one seed per image or a single int")
    return [int(value) for value in seed]


def decode_attention():
    """Attention kernels for token-by-token decoding with a growing cache: every SDPA backend
    but cuDNN's. cuDNN plans each new key length on the CPU (1.7 ms a layer per step on an H200,
    torch 2.11), half of the plain loop's step at Janus-Pro-1B size, whose GPU work is 3 ms."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


@contextmanager
def evaluating(model: torch.nn.Module):
    """Eval mode for the duration (no dropout while sampling, e.g. right after training), then
    back to whatever mode the model was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def prefix_batches(build_prefix, count: int, batch_size: int, guided: bool, seeds: list[int], device):
    """Yield (inputs_embeds, attention_mask, generators) per batch of rows: with guidance the
    unconditional copies of the rows follow the conditional ones in the same batch, and each row
    gets its own generator seeded from its seed, so no draw depends on the batch.

    build_prefix(indices, drop) -> (inputs_embeds, attention_mask) for the rows `indices` (which
    may repeat), with row r unconditional where drop[r] is set."""
    for start in range(0, count, batch_size):
        indices = list(range(start, min(start + batch_size, count)))
        rows = len(indices)
        if guided:
            inputs, mask = build_prefix(indices + indices, [False] * rows + [True] * rows)
        else:
            inputs, mask = build_prefix(indices, [False] * rows)
        yield inputs, mask, [torch.Generator(device=device).manual_seed(seeds[i]) for i in indices]


def guided_logits(adapter, hidden: torch.Tensor, rows: int, cfg_scale: float) -> torch.Tensor:
    """float32 next-code logits of the `rows` conditional rows of `hidden`, guided by the
    unconditional rows after them where cfg_scale != 1."""
    logits = adapter.image_logits(hidden).float()
    if cfg_scale == 1:
        return logits
    conditional, unconditional = logits[:rows], logits[rows:]
    return unconditional + cfg_scale * (conditional - unconditional)


def row_noise(generators: list[torch.Generator], size: int, device) -> torch.Tensor:
    """(rows, size) float32 uniform noise, row r drawn from generators[r]."""
    return torch.stack(
        [torch.rand(size, generator=generator, device=device, dtype=torch.float32) for generator in generators]
    )


def draw(logits: torch.Tensor, noise: torch.Tensor | None, temperature: float, top_k: int | None) -> torch.Tensor:
    """One code per row: keep the `top_k` likeliest codes, then Gumbel-max on the uniform `noise`
    (rows, V) at `temperature`; temperature 0 is greedy and needs no noise."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth_best = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if temperature == 0:
        return logits.argmax(-1)
    gumbel = -torch.log(-torch.log(noise))
    return torch.argmax(logits / temperature + gumbel, dim=-1)
