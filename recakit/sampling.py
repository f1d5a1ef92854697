"""Our own image sampler: text -> image, image -> (understanding) -> image, image -> text.

The loop is written out instead of calling `generate(generation_mode="image")`, for three reasons:
it works for every `recakit.adapter.UnifiedAdapter` (Janus and the toy alike); it runs the
conditional and unconditional rows of classifier-free guidance in one batch with a KV cache; and
every image gets its own seeded random generator, so image i depends only on (prompt i, seed i),
never on batch size or on which other prompts share its batch.

Guidance: logits = uncond + cfg_scale * (cond - uncond). At cfg_scale = 1 that is the conditional
logits, so the unconditional rows are skipped altogether. Temperature 0 means greedy decoding.

A family with a diffusion head (OpenUni) has its own denoising sampler (`adapter.sample_images`);
generate_images and reconstruct hand it the same prefixes and per-image seeds.
"""

from __future__ import annotations

import torch
from PIL import Image
from tqdm.auto import tqdm

from recakit.decoding import (
    DEFAULT_BATCH_SIZE,
    decode_attention,
    draw,
    evaluating,
    guided_logits,
    prefix_batches,
    row_noise,
)
from recakit.decoding import seeds as _seeds
from recakit.fast import fast_sample_image_tokens
from recakit.images import load_images
from recakit.instructions import RECONSTRUCTION_INSTRUCTIONS
from recakit.registry import adapter_for


def _check_options(cfg_scale, temperature, top_k, batch_size):
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be a positive number of codes or None, got {top_k}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if cfg_scale < 0:
        raise ValueError(f"cfg_scale must be >= 0 (1 means no guidance), got {cfg_scale}")


@torch.no_grad()
def sample_image_tokens(
    adapter,
    build_prefix,
    count: int,
    *,
    cfg_scale: float,
    seeds: list[int],
    temperature: float,
    top_k: int | None,
    batch_size: int | None,
    progress: bool = True,
    desc: str = "sampling",
    fast: bool | str = False,
) -> torch.Tensor:
    """The sampling loop shared by generate_images and reconstruct -> (count, T) image codes.

    build_prefix as in `recakit.decoding.prefix_batches`. `fast` (True or a mode name) hands the
    same job to `recakit.fast.fast_sample_image_tokens` (static KV cache, captured step)."""
    if fast:
        return fast_sample_image_tokens(
            adapter,
            build_prefix,
            count,
            cfg_scale=cfg_scale,
            seeds=seeds,
            temperature=temperature,
            top_k=top_k,
            batch_size=batch_size,
            progress=progress,
            desc=desc,
            mode="auto" if fast is True else fast,
        )
    from transformers import DynamicCache

    batch_size = batch_size or DEFAULT_BATCH_SIZE
    guided = cfg_scale != 1
    steps = adapter.num_image_tokens
    device = adapter.device
    results = []
    with (
        evaluating(adapter.model),
        decode_attention(),
        tqdm(total=count * steps, desc=desc, unit="token", disable=not progress) as bar,
    ):
        for inputs, mask, generators in prefix_batches(build_prefix, count, batch_size, guided, seeds, device):
            rows = len(generators)
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
            cache = DynamicCache()
            codes = torch.empty((rows, steps), dtype=torch.long, device=device)
            for step in range(steps):
                hidden, cache = adapter.forward_generation(inputs, mask, position_ids, cache)
                logits = guided_logits(adapter, hidden[:, -1], rows, cfg_scale)
                noise = row_noise(generators, logits.shape[-1], logits.device) if temperature else None
                codes[:, step] = draw(logits, noise, temperature, top_k)
                fed = torch.cat([codes[:, step], codes[:, step]]) if guided else codes[:, step]
                inputs = adapter.embed_image_tokens(fed[:, None]).to(inputs.dtype)
                position_ids = position_ids[:, -1:] + 1
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
                bar.update(rows)
            results.append(codes)
    return torch.cat(results)


def _check_prompts(prompts) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts given: pass a list with at least one prompt")
    for prompt in prompts:
        if not isinstance(prompt, str):
            raise ValueError(f"prompts must be strings, got {type(prompt).__name__}")
    return prompts


def generate_image_tokens(
    model,
    processor,
    prompts,
    *,
    cfg_scale: float = 5.0,
    seed=0,
    temperature: float = 1.0,
    top_k: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    fast: bool | str = False,
) -> torch.Tensor:
    """Text -> (len(prompts), T) generation codes; see generate_images."""
    prompts = _check_prompts(prompts)
    _check_options(cfg_scale, temperature, top_k, batch_size)
    seeds = _seeds(seed, len(prompts))
    adapter = adapter_for(model, processor)

    def build_prefix(indices, drop):
        return adapter.prefix_from_text([prompts[i] for i in indices], torch.tensor(drop))

    return sample_image_tokens(
        adapter,
        build_prefix,
        len(prompts),
        cfg_scale=cfg_scale,
        seeds=seeds,
        temperature=temperature,
        top_k=top_k,
        batch_size=batch_size,
        progress=progress,
        desc="generating",
        fast=fast,
    )


def generate_images(
    model,
    processor,
    prompts,
    *,
    cfg_scale: float | None = None,
    seed=0,
    temperature: float = 1.0,
    top_k: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    fast: bool | str = False,
    steps: int | None = None,
) -> list[Image.Image]:
    """One image per prompt.

    seed: an int (image i gets seed + i) or one seed per prompt. cfg_scale: classifier-free
    guidance (1 = none; default the family's own: 5 for Janus and the toy, 4.5 for OpenUni).
    temperature: 0 = greedy. top_k: keep only the k likeliest codes.
    batch_size: prompts sampled together (default 8); it changes speed, never the images.
    fast: True for the static-cache sampler of recakit.fast (a CUDA graph on GPUs), or one of
    its modes ("eager", "graph", "compile"); same seeds, same images.
    steps: denoising steps of a diffusion family (OpenUni, default 20); temperature, top_k and
    fast belong to token samplers and steps to diffusion ones."""
    prompts = _check_prompts(prompts)
    adapter = adapter_for(model, processor)
    cfg_scale = adapter.default_cfg_scale if cfg_scale is None else cfg_scale
    _check_options(cfg_scale, temperature, top_k, batch_size)

    def build_prefix(indices, drop):
        return adapter.prefix_from_text([prompts[i] for i in indices], torch.tensor(drop))

    return _sample_images(
        adapter,
        build_prefix,
        len(prompts),
        cfg_scale=cfg_scale,
        seeds=_seeds(seed, len(prompts)),
        temperature=temperature,
        top_k=top_k,
        batch_size=batch_size,
        progress=progress,
        desc="generating",
        fast=fast,
        steps=steps,
    )


def _sample_images(
    adapter,
    build_prefix,
    count: int,
    *,
    cfg_scale: float,
    seeds: list[int],
    temperature: float,
    top_k: int | None,
    batch_size: int | None,
    progress: bool,
    desc: str,
    fast: bool | str,
    steps: int | None,
) -> list[Image.Image]:
    """Images from prefixes: the family's own denoising sampler where it has one, else image
    codes drawn token by token and decoded."""
    name = type(adapter).__name__
    if adapter.sample_images is not None:
        if temperature != 1.0 or top_k is not None or fast:
            raise ValueError(f"temperature, top_k and fast are options of token samplers; {name} denoises")
        return adapter.sample_images(
            build_prefix,
            count,
            cfg_scale=cfg_scale,
            seeds=seeds,
            steps=steps,
            batch_size=batch_size,
            progress=progress,
            desc=desc,
        )
    if steps is not None:
        raise ValueError(f"steps is for diffusion samplers; {name} draws one step per image token")
    tokens = sample_image_tokens(
        adapter,
        build_prefix,
        count,
        cfg_scale=cfg_scale,
        seeds=seeds,
        temperature=temperature,
        top_k=top_k,
        batch_size=batch_size,
        progress=progress,
        desc=desc,
        fast=fast,
    )
    return adapter.decode_image_tokens(tokens)


def reconstruct(
    model,
    processor,
    images,
    *,
    cfg_scale: float | None = None,
    seed=0,
    temperature: float = 1.0,
    top_k: int | None = None,
    batch_size: int | None = None,
    instruction: str | None = None,
    resolution: int | None = None,
    progress: bool = True,
    fast: bool | str = False,
    steps: int | None = None,
) -> list[Image.Image]:
    """RecA at inference: each image -> the model's understanding embeddings -> a generated image.

    The prefix is the one RecA trains on, with `instruction` (default: the first of
    RECONSTRUCTION_INSTRUCTIONS, so results are repeatable). `resolution` is the understanding
    encoder's input side, as in reca_loss. Other options as in generate_images."""
    images = load_images(images)
    if not images:
        raise ValueError("no images given: pass a list with at least one image")
    adapter = adapter_for(model, processor)
    cfg_scale = adapter.default_cfg_scale if cfg_scale is None else cfg_scale
    _check_options(cfg_scale, temperature, top_k, batch_size)
    seeds = _seeds(seed, len(images))
    instruction = RECONSTRUCTION_INSTRUCTIONS[0] if instruction is None else instruction

    def build_prefix(indices, drop):
        # guided batches list each image twice; encode it once
        unique = sorted(set(indices))
        embeddings = adapter.understanding_embeddings([images[i] for i in unique], resolution)
        rows = embeddings[[unique.index(i) for i in indices]]
        return adapter.prefix_from_embeddings(rows, torch.tensor(drop), [instruction] * len(indices))

    return _sample_images(
        adapter,
        build_prefix,
        len(images),
        cfg_scale=cfg_scale,
        seeds=seeds,
        temperature=temperature,
        top_k=top_k,
        batch_size=batch_size,
        progress=progress,
        desc="reconstructing",
        fast=fast,
        steps=steps,
    )


def caption(model, processor, images, max_new_tokens: int = 32) -> list[str]:
    """Greedy image -> text on the understanding side, one caption per image."""
    images = load_images(images)
    if not images:
        raise ValueError("no images given: pass a list with at least one image")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    adapter = adapter_for(model, processor)
    if not hasattr(adapter, "caption"):
        raise TypeError(f"{type(adapter).__name__} cannot caption: give it a caption(images, max_new_tokens) method")
    with torch.no_grad(), evaluating(adapter.model):
        return adapter.caption(images, max_new_tokens=max_new_tokens)
