"""The RecA objective: regenerate an image from the model's own understanding of it.

For each unlabeled image, the understanding encoder's embeddings (plus a short "describe every
visual detail" instruction) replace the text prompt, and the model is trained with its ordinary
image-generation loss to produce that same image's generation tokens. No captions are needed.

- `reca_loss` computes the loss for a batch of images, optionally mixing in text-to-image and
  image-to-text losses (useful when understanding and generation share parameters, as in Janus).
- `freeze_for_reca` applies the model family's trainable/frozen split (the rule lives with the
  family, see `recakit.registry`).
- `reca_choices` tells which instruction (and dropout) `reca_loss` draws for given sample seeds.
- `text_to_image_loss` is the ordinary text-to-image loss (what the toy's base training and the
  control arm of its reproduction train with, and what `reca_loss(..., t2i=...)` mixes in).
- `image_generation_loss` is the teacher-forced cross-entropy over image tokens after any prefix
  (the text-to-image loss of every training run); a family with a diffusion head (OpenUni) brings
  its own loss through the adapter instead.
- `chunked_image_loss` is the same cross-entropy computed a chunk of positions at a time, for
  large codebooks: Janus's head has 16384 outputs, so for 8 images of 576 tokens the float32
  logits alone take 300 MB, and autograd keeps them (and their softmax) for the backward pass.
  Under activation checkpointing only one chunk's logits ever exist; value and gradient are
  those of the plain loss.

Everything goes through `recakit.registry.adapter_for`, so the same code serves every family.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from recakit.adapter import UnifiedAdapter
from recakit.images import center_crop_square, load_images
from recakit.instructions import DROPPED_INSTRUCTION, RECONSTRUCTION_INSTRUCTIONS
from recakit.registry import adapter_for, family_of

#: positions per chunk of the memory-light loss
DEFAULT_CHUNK_TOKENS = 1024

#: codebooks at least this large use the chunked loss automatically (Janus: 16384; toy: 128)
CHUNKED_LOSS_MIN_CODES = 4096


def sample_choices(rng: random.Random, instruction_dropout: float) -> tuple[str, bool]:
    """One sample's random choices: the instruction it gets, and whether its condition is dropped."""
    instruction = rng.choice(RECONSTRUCTION_INSTRUCTIONS)
    dropped = rng.random() < instruction_dropout
    return instruction, dropped


def _rngs(count: int, keys, stream: str) -> list[random.Random]:
    """One generator per sample: from its own key when given (so a sample's draws do not depend
    on which batch or process it lands in), else from torch's global generator, so
    torch.manual_seed still makes runs repeatable."""
    if keys is None:
        return [random.Random(int(torch.randint(0, 2**62, ()).item())) for _ in range(count)]
    if len(keys) != count:
        raise ValueError(f"sample_seeds has {len(keys)} seeds for {count} samples")
    return [random.Random(f"{stream}:{key}") for key in keys]


def reca_choices(count: int, sample_seeds=None, instruction_dropout: float = 0.1) -> list[tuple[str, bool]]:
    """The (instruction, dropped) pair `reca_loss` draws for each of `count` images: with
    `sample_seeds`, the very draws it makes for images with those seeds."""
    return [sample_choices(rng, instruction_dropout) for rng in _rngs(count, sample_seeds, "reca")]


def image_generation_loss(
    adapter, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Teacher-forced cross-entropy of image tokens `targets` (B, T) after a prefix.

    The prefix's last position predicts token 0 and image token t predicts token t+1, so the
    model sees [prefix, targets[:, :-1]]. Returns the mean over tokens of each image, then over
    images (equal here, as every image has T tokens)."""
    targets = targets.to(inputs_embeds.device)
    image_embeds = adapter.embed_image_tokens(targets[:, :-1]).to(inputs_embeds.dtype)
    embeds = torch.cat([inputs_embeds, image_embeds], dim=1)
    mask = torch.cat([attention_mask, attention_mask.new_ones(targets[:, :-1].shape)], dim=1)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    hidden, _ = adapter.forward_generation(embeds, mask, position_ids)
    prefix_length = inputs_embeds.shape[1]
    if use_chunked_loss(adapter):  # large codebooks: never hold all the float32 logits at once
        return chunked_image_loss(adapter, hidden[:, prefix_length - 1 :], targets)
    return adapter.image_token_loss(hidden[:, prefix_length - 1 :], targets).mean()


def chunked_image_loss(
    adapter, hidden: torch.Tensor, targets: torch.Tensor, chunk_tokens: int = DEFAULT_CHUNK_TOKENS
) -> torch.Tensor:
    """Mean cross-entropy of `adapter.image_logits(hidden)` (float32) against `targets`.

    hidden (..., D) and targets (...) are flattened to positions; each chunk of `chunk_tokens`
    positions is run through the head under checkpointing, so its logits are dropped after the
    forward pass and recomputed in the backward pass."""
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
    hidden = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1).to(hidden.device)
    if hidden.shape[0] != targets.shape[0]:
        raise ValueError(f"{hidden.shape[0]} hidden positions for {targets.shape[0]} targets")

    def chunk_loss_sum(chunk_hidden, chunk_targets):
        logits = adapter.image_logits(chunk_hidden).float()
        return F.cross_entropy(logits, chunk_targets, reduction="sum")

    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk_tokens):
        stop = start + chunk_tokens
        total = total + checkpoint(chunk_loss_sum, hidden[start:stop], targets[start:stop], use_reentrant=False)
    return total / targets.shape[0]


def use_chunked_loss(adapter) -> bool:
    """Whether `image_generation_loss` should take the chunked path: only where the full logits
    are large, since chunking costs a second pass through the head, and the adapter has no
    cheaper exact loss of its own."""
    own_loss = type(adapter).image_token_loss is not UnifiedAdapter.image_token_loss
    return adapter.codebook_size >= CHUNKED_LOSS_MIN_CODES and torch.is_grad_enabled() and not own_loss


def training_images(items) -> list:
    """Paths or PIL images -> the square RGB images every training loss sees."""
    # centre-cropped here, before both the generation tokenizer and the understanding encoder
    return [center_crop_square(image) for image in load_images(items)]


def _generation_loss(adapter, inputs_embeds, attention_mask, targets, noise_keys) -> torch.Tensor:
    """The generation loss after a prefix: the family's own where it has one (a flow-matching
    head draws each row's noise and timestep from a seed of that row), else image_generation_loss."""
    if adapter.generation_loss is None:
        return image_generation_loss(adapter, inputs_embeds, attention_mask, targets)
    noise_seeds = [rng.getrandbits(63) for rng in _rngs(len(targets), noise_keys, "noise")]
    return adapter.generation_loss(inputs_embeds, attention_mask, targets, noise_seeds)


def text_dropout(count: int, dropout: float, sample_seeds=None) -> torch.Tensor:
    """(count,) bools: which text-to-image rows get the null condition (the dropout classifier-free
    guidance needs), each drawn from its own sample seed when given."""
    return torch.tensor([rng.random() < dropout for rng in _rngs(count, sample_seeds, "t2i")])


def text_to_image_loss(model, processor, images, prompts: list[str], drop=None, noise_keys=None) -> torch.Tensor:
    """The generation loss of `images` after the text prefix of `prompts`, rows flagged in `drop`
    unconditional: the ordinary text-to-image training loss of every family. `noise_keys` seed the
    per-row draws of a diffusion family's loss (see _generation_loss)."""
    adapter = adapter_for(model, processor)
    with torch.no_grad():
        targets = adapter.generation_targets(images)
    prefix, mask = adapter.prefix_from_text(prompts, drop)
    return _generation_loss(adapter, prefix, mask, targets, noise_keys)


def _check_pairs(name: str, pair) -> tuple[list, list]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{name} must be an (images, texts) pair")
    images, texts = pair
    images = training_images(images)
    texts = [texts] if isinstance(texts, str) else list(texts)
    if len(images) != len(texts):
        raise ValueError(f"{name} has {len(images)} images but {len(texts)} texts")
    if not images:
        raise ValueError(f"{name} is empty; pass None to leave it out")
    return images, texts


def reca_loss(
    model,
    processor,
    images,
    *,
    instruction_dropout: float = 0.1,
    resolution: int | None = None,
    t2i=None,
    t2i_weight: float = 1.0,
    i2t=None,
    i2t_weight: float = 1.0,
    sample_seeds=None,
) -> torch.Tensor:
    """The RecA loss for a batch of images (paths or PIL images), a scalar tensor.

    Every image (RecA, text-to-image and image-to-text alike) is first centre-cropped to a square.
    Each is encoded by the model's understanding encoder (at `resolution`, see the adapter) and
    paired with a randomly drawn instruction; with probability `instruction_dropout` the
    instruction is dropped (the image embeddings stay; a family whose prefix has no instruction,
    like the toy, gets the unconditional prefix instead), and its generation tokens are predicted
    with the normal image-generation loss. Optional mixing:
      t2i=(images, prompts): text-to-image loss (same dropout), weighted by t2i_weight;
      i2t=(images, captions): image-to-text caption loss, weighted by i2t_weight.
    sample_seeds: one int per image; every random choice of image j then depends only on its
    seed, so a batch gives the same loss in one process or split across ranks."""
    if not 0.0 <= instruction_dropout <= 1.0:
        raise ValueError(f"instruction_dropout is a probability, got {instruction_dropout}")
    adapter = adapter_for(model, processor)
    images = training_images(images)
    if not images:
        raise ValueError("reca_loss needs at least one image")

    seeds = None if sample_seeds is None else [int(seed) for seed in sample_seeds]
    choices = reca_choices(len(images), seeds, instruction_dropout)
    if adapter.takes_instructions:
        # upstream's recipe: dropout blanks the instruction and keeps the image embeddings; the
        # fully unconditional prefix is left to text-to-image dropout and guidance
        instructions = [DROPPED_INSTRUCTION if dropped else instruction for instruction, dropped in choices]
        drop = torch.zeros(len(choices), dtype=torch.bool)
    else:
        instructions = [instruction for instruction, _ in choices]
        drop = torch.tensor([dropped for _, dropped in choices])
    targets, embeddings = adapter.reca_views(images, resolution)
    prefix, mask = adapter.prefix_from_embeddings(embeddings, drop, instructions)
    loss = _generation_loss(adapter, prefix, mask, targets, seeds)

    if t2i is not None:
        t2i_images, prompts = _check_pairs("t2i", t2i)
        # the text-to-image pairs are not the RecA images, so their draws hang off the whole seed list
        t2i_keys = None if seeds is None else [f"{seeds}:{j}" for j in range(len(prompts))]
        t2i_drop = text_dropout(len(prompts), instruction_dropout, t2i_keys)
        loss = loss + t2i_weight * text_to_image_loss(adapter, None, t2i_images, prompts, t2i_drop, t2i_keys)

    if i2t is not None:
        i2t_images, captions = _check_pairs("i2t", i2t)
        loss = loss + i2t_weight * adapter.caption_loss(i2t_images, captions)
    return loss


def freeze_for_reca(model, *, train_aligner: bool = False) -> dict:
    """The family's RecA split of trainable and frozen parameters (for Janus: the understanding
    encoder, unless `train_aligner` its aligner, and the VQ tokenizer frozen and kept in eval mode
    for good; the language model and generation modules train). A model that knows its own policy
    provides `model.freeze_for_reca(train_aligner=...)`.

    Returns {"trainable": n, "frozen": m} parameter counts. A quantized model (load_model with
    quantization=...) also reports "quantized": its 4/8-bit weights cannot take gradients, so they
    stay frozen; train them through LoRA adapters (peft) added after this call."""
    if hasattr(model, "freeze_for_reca"):
        return model.freeze_for_reca(train_aligner=train_aligner)
    return family_of(model).freeze_for_reca(model, train_aligner=train_aligner)


def reca_loss_fn(processor, *, i2t_pairs=None, i2t_weight: float = 1.0, **reca_options):
    """A `loss_fn` for `train` whose examples are image paths (or PIL images): it returns
    `recakit.objective.reca_loss(model, processor, examples, sample_seeds=..., **reca_options)`.

    `i2t_pairs` [(image, caption), ...] mixes image-to-text in, one pair per RecA image (upstream's
    1:1 for models whose understanding and generation share parameters), weighted by `i2t_weight`.
    Image j's pair is drawn from its own sample seed, so a batch gets the same pairs in one process,
    in micro-batches or across ranks."""
    if i2t_pairs is not None and not i2t_pairs:
        raise ValueError("i2t_pairs is empty")
    if i2t_weight < 0:
        raise ValueError(f"i2t_weight scales a loss and cannot be negative; got {i2t_weight}")

    def loss_fn(model, examples, seeds):
        if i2t_pairs is None:
            return reca_loss(model, processor, examples, sample_seeds=seeds, **reca_options)
        drawn = [i2t_pairs[rng.randrange(len(i2t_pairs))] for rng in _rngs(len(examples), seeds, "i2t-pair")]
        return reca_loss(
            model,
            processor,
            examples,
            sample_seeds=seeds,
            i2t_weight=i2t_weight,
            i2t=([image for image, _ in drawn], [caption for _, caption in drawn]),
            **reca_options,
        )

    return loss_fn
