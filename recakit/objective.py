"""The RecA objective: regenerate an image from the model's own understanding of it.

For each unlabeled image, the understanding encoder's embeddings (plus a short "describe every
visual detail" instruction) replace the text prompt, and the model is trained with its ordinary
image-generation loss to produce that same image's generation tokens. No captions are needed.

- `reca_loss` computes the loss for a batch of images, optionally mixing in text-to-image and
  image-to-text losses (useful when understanding and generation share parameters, as in Janus).
- `freeze_for_reca` applies the default trainable/frozen split: the understanding encoder and the
  VQ tokenizer are frozen (and kept in eval mode), the language model and generation modules train.
- `reca_choices` tells which instruction (and dropout) `reca_loss` draws for given sample seeds.
- `image_generation_loss` is the teacher-forced cross-entropy over image tokens after any prefix;
  a family with a diffusion head (OpenUni) brings its own loss through the adapter instead.

Everything goes through `recakit.adapter.adapter_for`, so the same code serves Janus and the toy.
"""
from __future__ import annotations

import random
import types
import warnings

import torch

from recakit.adapter import adapter_for
from recakit.images import center_crop_square, load_images

#: How a reconstruction request opens; each is followed by one of the SUBJECTS below.
REQUESTS = (
    "Describe", "Analyse", "Catalogue", "List", "Detail", "Document", "Examine and describe",
    "Inspect and report on", "Give a full account of", "Write out", "Spell out", "Go through",
    "Take stock of", "Break down", "Itemise", "Survey", "Record", "Explain", "Set out", "Point out",
    "Walk me through", "Tell me about", "Provide an inventory of", "Summarise, leaving nothing out,",
)

#: What the request asks about: the image as a whole, its objects, their attributes and layout.
SUBJECTS = (
    "every visual detail of this image",
    "all the objects in this picture and where each one sits",
    "the colours, shapes and sizes of everything in this image",
    "the layout of this scene, from the background to the foreground",
    "each element of this image and its position relative to the others",
    "what this picture shows, part by part",
    "the visual attributes of every object you can see here",
    "the composition of this image: what is where, and how large",
    "the textures, colours and lighting in this picture",
    "the number of things in this image and what each of them looks like",
    "the scene in this image as precisely as you can",
    "everything visible in this picture, the background included",
    "the arrangement of objects in this image, left to right and top to bottom",
    "the content of this image in enough detail to redraw it",
    "the style, palette and subject matter of this picture",
    "the fine details of this image that a quick glance would miss",
)

#: Instructions shown next to the understanding embeddings, in the describe / analyse / catalogue
#: style of the published recipe; one is drawn at random per sample so the model learns that the
#: embeddings, not the wording, carry the content. Their number is kept at 48 x 2**k (here
#: 24 x 16 = 384): `random.choice` then consumes a generator exactly as over 48 items, so the
#: dropout draw after it is the one the toy's reproduction numbers were measured with.
RECONSTRUCTION_INSTRUCTIONS = tuple(f"{request} {subject}." for request in REQUESTS for subject in SUBJECTS)


#: what a RecA row whose instruction is dropped says beside the image: nothing
DROPPED_INSTRUCTION = ""


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


def image_generation_loss(adapter, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                          targets: torch.Tensor) -> torch.Tensor:
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
    from recakit.fast import chunked_image_loss, use_chunked_loss

    if use_chunked_loss(adapter):  # large codebooks: never hold all the float32 logits at once
        return chunked_image_loss(adapter, hidden[:, prefix_length - 1:], targets)
    return adapter.image_token_loss(hidden[:, prefix_length - 1:], targets).mean()


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


def reca_loss(model, processor, images, *, instruction_dropout: float = 0.1, resolution: int | None = None,
              t2i=None, t2i_weight: float = 1.0, i2t=None, i2t_weight: float = 1.0,
              sample_seeds=None) -> torch.Tensor:
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
    with torch.no_grad():
        targets = adapter.generation_targets(images)
    embeddings = adapter.understanding_embeddings(images, resolution)
    prefix, mask = adapter.prefix_from_embeddings(embeddings, drop, instructions)
    loss = _generation_loss(adapter, prefix, mask, targets, seeds)

    if t2i is not None:
        t2i_images, prompts = _check_pairs("t2i", t2i)
        # the text-to-image pairs are not the RecA images, so their draws hang off the whole seed list
        t2i_keys = None if seeds is None else [f"{seeds}:{j}" for j in range(len(prompts))]
        t2i_drop = torch.tensor([rng.random() < instruction_dropout
                                 for rng in _rngs(len(prompts), t2i_keys, "t2i")])
        with torch.no_grad():
            t2i_targets = adapter.generation_targets(t2i_images)
        prefix, mask = adapter.prefix_from_text(prompts, t2i_drop)
        loss = loss + t2i_weight * _generation_loss(adapter, prefix, mask, t2i_targets, t2i_keys)

    if i2t is not None:
        i2t_images, captions = _check_pairs("i2t", i2t)
        loss = loss + i2t_weight * adapter.caption_loss(i2t_images, captions)
    return loss


def _stay_in_eval(module: torch.nn.Module) -> None:
    """Keep `module` in eval mode even when the whole model is switched with model.train()
    (nn.Module.train calls each child's own `train`, so an instance attribute overrides it)."""
    module.eval()
    # a bound method (not a closure) so copy.deepcopy rebinds it to the copy
    module.train = types.MethodType(_train_stays_off, module)


def _train_stays_off(module, mode: bool = True):
    return torch.nn.Module.train(module, False)


def freeze_for_reca(model, *, train_aligner: bool = False) -> dict:
    """The default RecA split: freeze the understanding encoder (and, unless `train_aligner`, its
    aligner) and the VQ tokenizer, keep them in eval mode for good, and train the rest (language
    model, generation embeddings, generation aligner and head). Models that know their own policy
    (the toy) provide `model.freeze_for_reca`.

    Returns {"trainable": n, "frozen": m} parameter counts. A quantized model (load_model with
    quantization=...) also reports "quantized": its 4/8-bit weights cannot take gradients, so they
    stay frozen; train them through LoRA adapters (peft) added after this call."""
    if hasattr(model, "freeze_for_reca"):
        return model.freeze_for_reca(train_aligner=train_aligner)
    from transformers import JanusForConditionalGeneration

    if not isinstance(model, JanusForConditionalGeneration):
        raise TypeError(f"freeze_for_reca does not know {type(model).__name__}; "
                        "give the model a freeze_for_reca(train_aligner=...) method")
    for parameter in model.parameters():
        parameter.requires_grad_(parameter.is_floating_point())
    frozen = [model.model.vision_model, model.model.vqmodel]
    if not train_aligner:
        frozen.append(model.model.aligner)
    for module in frozen:
        for parameter in module.parameters():
            parameter.requires_grad_(False)
        _stay_in_eval(module)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    counts = {"trainable": trainable, "frozen": total - trainable}
    quantized = sum(p.numel() for p in model.parameters() if not p.is_floating_point())
    if quantized:
        counts["quantized"] = quantized
        warnings.warn(f"{quantized:,} quantized weights cannot be trained directly and stay frozen; "
                      "add LoRA adapters (peft) to train those layers", stacklevel=2)
    return counts
