"""Janus-Pro through plain transformers: loading, a tiny offline twin, and its RecA adapter.

- `load_checkpoint` loads a Janus-Pro checkpoint (hub id or local folder), optionally quantized
  with bitsandbytes (`recakit.registry.load_model` calls it for every name no other family
  claims). Offline without the files it says how to fetch them instead of failing deep inside
  the hub client.
- `tiny_janus` builds a few-hundred-thousand-parameter `JanusForConditionalGeneration` and a
  matching `JanusProcessor` entirely in code (no download), so tests, notebooks and benchmarks
  exercise the real transformers classes on a CPU in well under a second per step.
- `JanusAdapter` is the `recakit.adapter.UnifiedAdapter` for Janus: SigLIP + aligner give the
  understanding embeddings, the VQ tokenizer gives the target codes, and the prefixes follow
  Janus's own chat format, with its classifier-free-guidance convention for dropped rows.
- `freeze_for_reca` is Janus's RecA split of trainable and frozen parameters.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from recakit.adapter import ModelNotAvailableError, UnifiedAdapter, cache_argument, drop_flags, left_pad, stay_in_eval
from recakit.decoding import decode_attention
from recakit.images import fit_longest_side, load_images
from recakit.instructions import RECONSTRUCTION_INSTRUCTIONS

#: what Janus-Pro checkpoints are called on the hub
JANUS_PRO_IDS = ("deepseek-community/Janus-Pro-1B", "deepseek-community/Janus-Pro-7B")

#: the question the understanding side answers when captioning (and when mixing image-to-text in)
CAPTION_PROMPT = "Describe this image."

#: the system prompt official Janus puts before every understanding conversation, followed by a
#: blank line (its "deepseek" chat format); image-generation prompts have none
UNDERSTANDING_SYSTEM_PROMPT = (
    "You are a helpful language and vision assistant. "
    "You are able to understand the visual content that the user provides, "
    "and assist the user with a variety of tasks using natural language."
)

# Janus-style chat format: "<|User|>: ...\n\n<|Assistant|>:". Newlines are emitted as
# expressions because Jinja's whitespace control would otherwise swallow them.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|User|>: ' if message['role'] == 'user' else '<|Assistant|>: ' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image_placeholder>' + '\\n' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- eos_token if message['role'] == 'assistant' else '\\n\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|Assistant|>:' -}}{%- endif -%}"
)

#: the token official Janus pads with, looked up by name (its VLChatProcessor's pad_tag): it fills
#: the unconditional row of classifier-free guidance and the left padding of a batch
JANUS_PAD_TOKEN = "<\uff5c\u2581pad\u2581\uff5c>"

SPECIAL_TOKENS = {
    "bos_token": "<bos>",
    "eos_token": "<eos>",
    "pad_token": JANUS_PAD_TOKEN,
    "image_token": "<image_placeholder>",
    "boi_token": "<begin_of_image>",
    "eoi_token": "<end_of_image>",
}
ROLE_TOKENS = ("<|User|>", "<|Assistant|>")

# Words the tiny tokenizer should know as whole pieces besides the instructions: ShapesWorld and
# GenEval vocabulary, so tiny captions and prompts stay short.
TINY_CORPUS_WORDS = (
    "a an the of and with on in at to is are there this that image photo picture scene drawing "
    "one two three four five six left right above below next top bottom middle center corner "
    "red orange yellow green blue purple pink brown black white gray grey background "
    "circle circles square squares triangle triangles star stars diamond diamonds cross crosses "
    "shape shapes object objects colorful geometric abstract simple flat plain small large big "
    "describe every visual detail attribute color colour position size layout reconstruct "
    "dog cat car person bus bird horse cup bottle chair clock apple banana pizza"
)


# -- the tiny offline Janus --------------------------------------------------------------------


def _build_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer trained in code on a small fixed corpus (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = list(RECONSTRUCTION_INSTRUCTIONS) + [CAPTION_PROMPT, UNDERSTANDING_SYSTEM_PROMPT, TINY_CORPUS_WORDS] * 4
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()) + list(ROLE_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=SPECIAL_TOKENS["bos_token"],
        eos_token=SPECIAL_TOKENS["eos_token"],
        pad_token=SPECIAL_TOKENS["pad_token"],
        extra_special_tokens={name: SPECIAL_TOKENS[name] for name in ("image_token", "boi_token", "eoi_token")},
        padding_side="left",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(ROLE_TOKENS)})
    return tokenizer


def _image_processor_class():
    import transformers

    # the default JanusImageProcessor needs torchvision; where it is missing, the PIL twin does the
    # same steps (older transformers releases have only the one class)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        if hasattr(transformers, "JanusImageProcessorPil"):
            return transformers.JanusImageProcessorPil
    return transformers.JanusImageProcessor


TINY_DEFAULTS = {
    "image_size": 32,  # pixels; the vision patch and the VQ downsampling are both `patch_size`
    "patch_size": 8,  # -> (32 / 8)**2 = 16 understanding embeddings and 16 image tokens
    "hidden_size": 64,  # language-model width (every projection into it follows)
    "num_layers": 2,  # language-model depth
    "codebook_size": 128,  # VQ codes
    "vocab_size": 640,  # text tokenizer size
}


def tiny_janus(seed: int = 0, **overrides):
    """A tiny, randomly initialised Janus-Pro twin and its processor, built offline.

    overrides: any of TINY_DEFAULTS (image_size, patch_size, hidden_size, num_layers, codebook_size,
    vocab_size), or `text_config` / `vision_config` / `vq_config` dicts of raw config fields.
    The same seed always gives the same weights."""
    from transformers import (
        JanusConfig,
        JanusForConditionalGeneration,
        JanusProcessor,
        JanusVisionConfig,
        JanusVQVAEConfig,
        LlamaConfig,
    )

    raw = {key: overrides.pop(key, {}) for key in ("text_config", "vision_config", "vq_config")}
    unknown = set(overrides) - set(TINY_DEFAULTS)
    if unknown:
        raise ValueError(
            f"tiny_janus got unknown options {sorted(unknown)}; "
            f"use {sorted(TINY_DEFAULTS)} or text_config / vision_config / vq_config dicts"
        )
    size = {**TINY_DEFAULTS, **overrides}
    image_size, patch_size, hidden = size["image_size"], size["patch_size"], size["hidden_size"]
    levels = math.log2(patch_size)
    if not levels.is_integer() or image_size % patch_size:
        raise ValueError(f"patch_size must be a power of two dividing image_size, got {patch_size} and {image_size}")
    grid = image_size // patch_size

    tokenizer = _build_tokenizer(size["vocab_size"])
    text_config = LlamaConfig(
        **{
            "vocab_size": len(tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": size["num_layers"],
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 512,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            **raw["text_config"],
        }
    )
    vision_config = JanusVisionConfig(
        **{
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "mlp_ratio": 2.0,
            "image_size": image_size,
            "patch_size": patch_size,
            "projection_dim": hidden,
            "num_image_tokens": grid * grid,
            **raw["vision_config"],
        }
    )
    # the VQ downsamples by 2**(levels) = patch_size, so its grid matches the vision grid;
    # 32 base channels is the GroupNorm minimum
    vq_config = JanusVQVAEConfig(
        **{
            "embed_dim": 8,
            "num_embeddings": size["codebook_size"],
            "latent_channels": 32,
            "base_channels": 32,
            "channel_multiplier": [1] * (int(levels) + 1),
            "num_res_blocks": 1,
            "projection_dim": hidden,
            "image_token_embed_dim": hidden,
            "num_patches": grid,
            **raw["vq_config"],
        }
    )
    config = JanusConfig(
        text_config=text_config,
        vision_config=vision_config,
        vq_config=vq_config,
        image_token_id=tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["image_token"]),
    )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = JanusForConditionalGeneration(config)
    model.eval()

    image_processor = _image_processor_class()(
        size={"height": image_size, "width": image_size}, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]
    )
    processor = JanusProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE, num_image_tokens=grid * grid
    )
    return model, processor


# -- loading -----------------------------------------------------------------------------------


def _looks_local(name: str) -> bool:
    """A path rather than a hub id: absolute, relative with ./ or ~, or more than one slash."""
    return (
        name.startswith((".", "/", "~", "\\"))
        or os.path.isabs(name)
        or name.count("/") > 1
        or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name)
    )


#: module-name prefixes that stay in full precision when quantizing: the VQ decoder and both output
#: heads decide which code or word is drawn, and they are a small share of the weights
FULL_PRECISION_MODULES = ("model.vqmodel", "model.generation_head", "lm_head")

#: bitsandbytes' CPU kernel for NF4 repacks a weight in whole 64-wide quantization blocks along its
#: input and 32-row tiles along its output (on CPUs with AVX512-BF16, at the first eval forward)
NF4_BLOCK, NF4_CPU_TILE = 64, 32


def full_precision_layers(model: torch.nn.Module, quantization: str) -> list[str]:
    """Names of the linear layers that quantizing `model` leaves in full precision.

    Besides FULL_PRECISION_MODULES, NF4 keeps the layers its CPU kernel cannot repack, such as
    the generation aligner's first layer, whose input is the 8-wide VQ code embedding (in
    Janus-Pro too): a tiny share of the weights, which quantized would fail on some CPUs only."""
    kept = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        too_narrow = module.in_features % NF4_BLOCK or module.out_features % NF4_CPU_TILE
        if name.startswith(FULL_PRECISION_MODULES) or (quantization == "nf4" and too_narrow):
            kept.append(name)
    return kept


def _quantization_config(source: str, quantization: str, dtype: torch.dtype):
    from transformers import BitsAndBytesConfig, JanusConfig, JanusForConditionalGeneration

    # the layer names and widths come from an empty (meta) model of the checkpoint's config
    with torch.device("meta"):
        skeleton = JanusForConditionalGeneration._from_config(JanusConfig.from_pretrained(source))
    keep = [re.escape(name) for name in full_precision_layers(skeleton, quantization)]  # patterns
    if quantization == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=keep
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=keep)


def claims_checkpoint(name: str) -> bool:
    """Janus is the registry's last family: every name no other family claims is tried as Janus."""
    return True


def load_checkpoint(name: str, *, device: torch.device, dtype=None, quantization: str | None = None):
    """Load a Janus-Pro checkpoint -> (model, processor), in eval mode; see recakit.registry.load_model."""
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    from transformers import JanusForConditionalGeneration, JanusProcessor

    local = Path(name).expanduser()
    from_hub = not local.is_dir()
    if from_hub and (_looks_local(name) or local.exists()):
        raise FileNotFoundError(
            f"no model folder at {local}: pass a folder written by save_pretrained, "
            f"or a hub id such as {JANUS_PRO_IDS[0]}"
        )
    source = name if from_hub else str(local)

    options = {"dtype": dtype}
    if quantization is not None:
        options["device_map"] = {"": str(device)}
    if quantization == "int8":
        _say_once(logging.getLogger("bitsandbytes.autograd._functions"), "MatMul8bitLt")
    try:
        if quantization is not None:
            options["quantization_config"] = _quantization_config(source, quantization, dtype)
        model = JanusForConditionalGeneration.from_pretrained(source, **options)
        processor = JanusProcessor.from_pretrained(source)
    except OSError as error:
        if not from_hub:
            raise
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelNotAvailableError(
            f"cannot load {name!r}: it is not in the local Hugging Face cache and could not be downloaded "
            f"({first_line}). On a machine with internet, fetch it with `hf download {name}` (or "
            f"`huggingface-cli download {name} --local-dir DIR`), then run again, or copy DIR here and "
            f"pass the folder instead of the id."
        ) from None
    check_pad_token(processor.tokenizer, name)
    if quantization is None:
        model.to(device)
    model.eval()
    print(
        f"loaded {name} ({quantization or str(dtype).replace('torch.', '')}) on {device}: "
        f"{format_footprint(model.get_memory_footprint())}"
    )
    return model, processor


def check_pad_token(tokenizer, name: str = "the checkpoint") -> None:
    """Raise ValueError unless the tokenizer's pad token is the one official Janus pads with.

    recakit pads with `tokenizer.pad_token_id`, official Janus with the id of JANUS_PAD_TOKEN;
    where they differ, the unconditional branch of guidance would not be the one the model was
    trained with."""
    official = tokenizer.get_vocab().get(JANUS_PAD_TOKEN)
    if official is None:
        raise ValueError(
            f"{name}: the tokenizer has no {JANUS_PAD_TOKEN} token, which official Janus pads "
            "with (classifier-free guidance needs it): is this a Janus checkpoint?"
        )
    if tokenizer.pad_token_id != official:
        raise ValueError(
            f"{name}: the tokenizer pads with {tokenizer.pad_token!r} (id {tokenizer.pad_token_id}) "
            f"but official Janus pads with {JANUS_PAD_TOKEN} (id {official}): download the "
            'checkpoint to a folder, set "pad_token" in its tokenizer_config.json to '
            f"{JANUS_PAD_TOKEN!r}, and pass the folder"
        )


def format_footprint(num_bytes: int) -> str:
    gib = num_bytes / 2**30
    return f"{gib:.2f} GiB" if gib >= 0.1 else f"{gib:.4f} GiB ({num_bytes / 2**20:.1f} MiB)"


class _FirstOnly(logging.Filter):
    """Lets the first record containing `marker` through and drops the repeats."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker, self.seen = marker, False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.marker not in record.getMessage():
            return True
        first, self.seen = not self.seen, True
        return first


def _say_once(logger: logging.Logger, marker: str) -> None:
    # bitsandbytes logs its int8 input-cast notice on every layer call; once tells the user enough
    if not any(isinstance(f, _FirstOnly) and f.marker == marker for f in logger.filters):
        logger.addFilter(_FirstOnly(marker))


# -- the adapter -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _user_turn_ids(processor, text: str, with_image: bool, system: str = "") -> tuple[int, ...]:
    """Rendering the chat template costs about a millisecond; RecA reuses a few hundred
    instructions every step, so rendered turns are remembered (per processor). A `system` prompt
    goes before the turn, after BOS, as official Janus writes it."""
    content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": text}]
    rendered = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )
    tokenizer = processor.tokenizer
    if system:
        rendered = system + "\n\n" + rendered.removeprefix(tokenizer.bos_token or "")
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    # some chat templates write the BOS token themselves, others leave it to the tokenizer
    if tokenizer.bos_token_id is not None and (not ids or ids[0] != tokenizer.bos_token_id):
        ids = [tokenizer.bos_token_id] + ids
    return tuple(ids)


class JanusAdapter(UnifiedAdapter):
    """RecA's view of a `JanusForConditionalGeneration` (see recakit.adapter for the contract).

    Prefixes follow Janus's chat format. The RecA prefix is a user turn holding the image
    (begin-of-image, the N understanding embeddings, end-of-image) and a reconstruction
    instruction, then the assistant turn opened with begin-of-image; RecA's instruction dropout
    leaves the instruction empty and keeps the image. A row with its `drop` flag set keeps only
    the first (BOS) and last (begin-of-image) token and turns everything between into pad
    tokens, which is how Janus builds its unconditional branch for classifier-free guidance (and
    what text-to-image dropout trains).
    """

    takes_instructions = True
    shares_language_model = True

    def __init__(self, model, processor):
        if processor is None:
            raise ValueError("JanusAdapter needs the processor returned by load_model / tiny_janus")
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        vq_config = model.config.vq_config
        self.num_image_tokens = vq_config.num_patches**2
        self.codebook_size = vq_config.num_embeddings
        self.num_understanding_tokens = model.config.vision_config.num_image_tokens
        self.image_token_id = model.config.image_token_id
        self.boi_id = self.tokenizer.convert_tokens_to_ids(processor.image_start_token)
        self.eoi_id = self.tokenizer.convert_tokens_to_ids(processor.image_end_token)
        self.pad_id = self.tokenizer.pad_token_id
        self.eos_id = self.tokenizer.eos_token_id
        if self.pad_id is None:
            raise ValueError("the Janus tokenizer has no pad token; classifier-free guidance needs one")
        self._cache_argument = cache_argument(model.model.language_model)

    @property
    def dtype(self) -> torch.dtype:
        # the input embeddings are never quantized, so their dtype is the compute dtype
        return self.model.model.get_input_embeddings().weight.dtype

    # -- pixels --------------------------------------------------------------------------------
    def _pixel_values(self, images: list[Image.Image], resolution: int | None = None) -> torch.Tensor:
        """The processor's pixel values of `images` (shrunk first to `resolution`, see
        understanding_embeddings), on the model's device and in its dtype."""
        if resolution is not None:
            images = [fit_longest_side(image, resolution) for image in images]
        pixels = self.processor.image_processor(images, return_tensors="pt")["pixel_values"]
        return pixels.to(self.device, self.dtype)

    def _understand(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.model.get_image_features(pixels).pooler_output

    @torch.no_grad()
    def _tokenize(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.model.vqmodel.encode(pixels).image_tokens.view(len(pixels), -1)

    def understanding_embeddings(self, images, resolution: int | None = None) -> torch.Tensor:
        """SigLIP + aligner output, (B, N, D).

        `resolution` is an information bottleneck: each image is first shrunk so its longest side
        is `resolution` pixels, then the processor scales it back up to the encoder's native size.
        The encoder thus sees its usual input shape and emits its usual N embeddings, but only the
        detail a `resolution`-pixel image holds, so the generator cannot copy fine texture."""
        return self._understand(self._pixel_values(load_images(images), resolution))

    def image_tokens(self, images) -> torch.Tensor:
        return self._tokenize(self._pixel_values(load_images(images)))

    def reca_views(self, images, resolution: int | None = None):
        """Both RecA views from one preprocessing: SigLIP and the VQ tokenizer take the same pixel
        values (preprocessing can cost as much as a GPU training step), except where `resolution`
        shrinks what SigLIP sees."""
        images = load_images(images)
        pixels = self._pixel_values(images)
        understood = pixels if resolution is None else self._pixel_values(images, resolution)
        return self._tokenize(pixels), self._understand(understood)

    def decode_image_tokens(self, tokens: torch.Tensor) -> list[Image.Image]:
        # one image at a time, so an image's pixels never depend on what else is in the batch;
        # vqmodel.decode is what model.decode_image_tokens wraps, but it stays channels-first,
        # which is the layout processor.postprocess expects
        images = []
        with torch.no_grad():
            for row in tokens.to(self.device):
                pixels = self.model.model.vqmodel.decode(row[None])
                post = self.processor.postprocess(list(pixels.float().cpu()), return_tensors="PIL.Image.Image")
                images.append(post["pixel_values"][0])
        return images

    # -- prefixes ------------------------------------------------------------------------------
    def _chat_ids(self, text: str, with_image: bool, system: str = "") -> list[int]:
        """Token ids of one user turn (the image placeholder if `with_image`, then `text`) and
        the assistant's opening, after the `system` prompt if one is given."""
        return list(_user_turn_ids(self.processor, text, with_image, system))

    def _with_image(self, ids: list[int]) -> list[int]:
        """Expand the single image placeholder into begin-of-image, N placeholders, end-of-image."""
        if ids.count(self.image_token_id) != 1:
            raise ValueError("the chat template must render exactly one image placeholder for one image")
        at = ids.index(self.image_token_id)
        return (
            ids[:at]
            + [self.boi_id]
            + [self.image_token_id] * self.num_understanding_tokens
            + [self.eoi_id]
            + ids[at + 1 :]
        )

    def _unconditional(self, ids: list[int]) -> list[int]:
        return ids[:1] + [self.pad_id] * (len(ids) - 2) + ids[-1:]

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return left_pad(rows, self.pad_id, self.device)

    def _embed(self, ids: torch.Tensor, image_embeddings: torch.Tensor | None) -> torch.Tensor:
        embeds = self.model.model.get_input_embeddings()(ids)
        if image_embeddings is not None and image_embeddings.numel():
            slots = (ids == self.image_token_id).unsqueeze(-1).expand_as(embeds)
            embeds = embeds.masked_scatter(slots, image_embeddings.to(embeds.dtype).reshape(-1))
        return embeds

    _drop_flags = staticmethod(drop_flags)

    def prefix_from_embeddings(self, embeddings, drop=None, instructions=None):
        if instructions is None:
            instructions = [RECONSTRUCTION_INSTRUCTIONS[0]] * len(embeddings)
        if len(instructions) != len(embeddings):
            raise ValueError(f"{len(instructions)} instructions for {len(embeddings)} images")
        flags = self._drop_flags(drop, len(embeddings))
        rows = []
        for instruction, dropped in zip(instructions, flags):
            ids = self._with_image(self._chat_ids(instruction, with_image=True))
            ids = ids + [self.boi_id]
            rows.append(self._unconditional(ids) if dropped else ids)
        ids, mask = self._left_pad(rows)
        kept = embeddings[[not flag for flag in flags]]
        return self._embed(ids, kept), mask

    def prefix_from_text(self, prompts, drop=None):
        flags = self._drop_flags(drop, len(prompts))
        rows = []
        for prompt, dropped in zip(prompts, flags):
            ids = self._chat_ids(prompt, with_image=False) + [self.boi_id]
            rows.append(self._unconditional(ids) if dropped else ids)
        ids, mask = self._left_pad(rows)
        return self._embed(ids, None), mask

    # -- generation stack ----------------------------------------------------------------------
    def forward_generation(self, inputs_embeds, attention_mask, position_ids, past_key_values=None):
        """The Llama stack on embeddings. A cache is kept (and returned) only when one is passed
        in, so training forwards do not pay for one."""
        output = self.model.model.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=past_key_values is not None,
            **{self._cache_argument: past_key_values},
        )
        cache = getattr(output, self._cache_argument, None)
        return output.last_hidden_state, cache

    def embed_image_tokens(self, tokens):
        return self.model.prepare_embeddings_for_image_generation(tokens)

    def image_logits(self, hidden):
        return self.model.model.generation_head(hidden)

    # -- understanding side: image-to-text -----------------------------------------------------
    def _caption_prefix(self, images, resolution=None):
        embeddings = self.understanding_embeddings(images, resolution)
        ids = self._with_image(self._chat_ids(CAPTION_PROMPT, with_image=True, system=UNDERSTANDING_SYSTEM_PROMPT))
        return ids, embeddings

    def caption_loss(self, images, captions) -> torch.Tensor:
        """Teacher-forced cross-entropy of each caption (then end-of-sentence) after the
        understanding system prompt, the image and CAPTION_PROMPT; the mean over tokens of each
        caption, then over captions."""
        images = load_images(images)
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        prompt, embeddings = self._caption_prefix(images)
        rows, targets = [], []
        for caption in captions:
            answer = self.tokenizer(" " + caption.strip(), add_special_tokens=False)["input_ids"] + [self.eos_id]
            rows.append(prompt + answer)
            targets.append(answer)
        ids, mask = self._left_pad(rows)
        labels = torch.full_like(ids, -100)
        for i, answer in enumerate(targets):
            labels[i, ids.shape[1] - len(answer) :] = torch.tensor(answer, device=ids.device)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        hidden, _ = self.forward_generation(self._embed(ids, embeddings), mask, position_ids)
        logits = self.model.lm_head(hidden[:, :-1]).float()
        per_token = F.cross_entropy(logits.transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none")
        counted = (labels[:, 1:] != -100).float()
        return ((per_token * counted).sum(-1) / counted.sum(-1)).mean()

    @torch.no_grad()
    def caption(self, images, max_new_tokens: int = 32) -> list[str]:
        """Greedy image-to-text with the language-model head and a KV cache."""
        from transformers import DynamicCache

        images = load_images(images)
        prompt, embeddings = self._caption_prefix(images)
        ids, mask = self._left_pad([prompt] * len(images))
        inputs = self._embed(ids, embeddings)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        answers = [[] for _ in images]
        finished = torch.zeros(len(images), dtype=torch.bool, device=self.device)
        with decode_attention():
            for _ in range(max_new_tokens):
                hidden, cache = self.forward_generation(inputs, mask, position_ids, cache)
                next_ids = self.model.lm_head(hidden[:, -1]).argmax(-1)
                for i, token in enumerate(next_ids.tolist()):
                    if not finished[i] and token != self.eos_id:
                        answers[i].append(token)
                finished |= next_ids == self.eos_id
                if finished.all():
                    break
                inputs = self.model.model.get_input_embeddings()(next_ids[:, None])
                position_ids = position_ids[:, -1:] + 1
                mask = torch.cat([mask, mask.new_ones(len(images), 1)], dim=1)
        return [self.tokenizer.decode(answer, skip_special_tokens=True).strip() for answer in answers]


# -- the family's entry in recakit.registry ------------------------------------------------------


def claims_model(model) -> bool:
    from transformers import JanusForConditionalGeneration

    return isinstance(model, JanusForConditionalGeneration)


def make_adapter(model, processor) -> JanusAdapter:
    return JanusAdapter(model, processor)


def freeze_for_reca(model, *, train_aligner: bool = False) -> dict:
    """Janus's RecA split: freeze the understanding encoder (and, unless `train_aligner`, its
    aligner) and the VQ tokenizer, keep them in eval mode for good, and train the rest (language
    model, generation embeddings, generation aligner and head).

    Returns {"trainable": n, "frozen": m} parameter counts. A quantized model (load_model with
    quantization=...) also reports "quantized": its 4/8-bit weights cannot take gradients, so they
    stay frozen; train them through LoRA adapters (peft) added after this call."""
    for parameter in model.parameters():
        parameter.requires_grad_(parameter.is_floating_point())
    frozen = [model.model.vision_model, model.model.vqmodel]
    if not train_aligner:
        frozen.append(model.model.aligner)
    for module in frozen:
        for parameter in module.parameters():
            parameter.requires_grad_(False)
        stay_in_eval(module)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    counts = {"trainable": trainable, "frozen": total - trainable}
    quantized = sum(p.numel() for p in model.parameters() if not p.is_floating_point())
    if quantized:
        counts["quantized"] = quantized
        warnings.warn(
            f"{quantized:,} quantized weights cannot be trained directly and stay frozen; "
            "add LoRA adapters (peft) to train those layers",
            stacklevel=2,
        )
    return counts
