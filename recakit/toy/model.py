"""The ShapesWorld toy unified model: a RecA testbed small enough to train on a laptop CPU.

It follows the OpenUni / MetaQuery design, where RecA showed its largest gains: a frozen
*understanding* side turns either an image or a caption into a handful of query states, and the
*generator* reads only those query states. Because the understanding side was trained so that the
query states of an image and of its description agree, the condition RecA feeds the generator
(the image's own query states) lives in the same space as a text prompt's -- the property the
earlier pilots lacked (see docs/toy_study.md).

Parts, all built from the library classes real models use:
- `vq`: the image tokenizer, 64 px images -> 8 x 8 = 64 codes: the learned `PatchTokenizer`.
- `vision`: a small convolutional encoder (64 px -> 4 x 4 = 16 patch embeddings) + an MLP aligner.
- `understanding`: a Llama decoder that reads [bos, image embeddings or caption tokens, Q1..Qk]
  and whose states at the k learnable query positions are "what the model understood".
- `describer`: a small Llama decoder that writes a caption from the query states only, so the
  query states must carry the whole description.
- `connector` + `generator`: an MLP from query states to the generator width, a learned null
  condition (for classifier-free guidance) and begin-of-image vector, and a Llama causal LM over
  the VQ codes fed `inputs_embeds`, so the shared KV-cache sampler drives it like Janus.

`ToyAdapter` exposes all of this through `recakit.adapter.UnifiedAdapter`, so RecA on the toy uses
the very same objective, sampler and training loop as on Janus-Pro.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel

from recakit.adapter import UnifiedAdapter, cache_argument, per_position_cross_entropy

SHIPPED_BASE = Path(__file__).parents[1] / "data" / "toy"
#: the toy models shipped with recakit, by `load_model` name: the base, and the two arms that
#: `recakit reproduce --preset toy` trains from it for seed 0 (each folder's training.json says how)
SHIPPED_MODELS = {
    "toy": SHIPPED_BASE,
    "toy-reca": SHIPPED_BASE.parent / "toy-reca",
    "toy-control": SHIPPED_BASE.parent / "toy-control",
}
IMAGE_SIZE = 64
SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"]
PAD, BOS, EOS, UNK = range(4)
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
# Pixel distance (in [-1, 1] units) beyond which a pixel is not background.
FOREGROUND_DISTANCE = 0.35
EMPTY_PATTERN = 0  # the PatchTokenizer's all-background coverage pattern
TOKEN_CACHE_LIMIT = 100_000  # images whose VQ codes are kept (64 ids each)


# -- processor: word tokenizer + image preprocessing ----------------------------------------------
class ToyProcessor:
    """The toy's "processor": a word-level tokenizer over the ShapesWorld caption vocabulary and
    the image preprocessing (RGB, 64 px, values in [-1, 1])."""

    def __init__(self, words: list[str], image_size: int = IMAGE_SIZE):
        self.vocab = SPECIAL_TOKENS + [w for w in words if w not in SPECIAL_TOKENS]
        self.word_to_id = {word: i for i, word in enumerate(self.vocab)}
        self.image_size = image_size

    @classmethod
    def from_captions(cls, captions, image_size: int = IMAGE_SIZE) -> ToyProcessor:
        words = sorted({word for caption in captions for word in split_words(caption)})
        return cls(words, image_size)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return [self.word_to_id.get(word, UNK) for word in split_words(text)]

    def decode(self, ids) -> str:
        words = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i not in (PAD, BOS):
                words.append(self.vocab[i])
        return " ".join(words).replace(" ,", ",").replace(" .", ".")

    def pixel_values(self, images: list[Image.Image], resolution: int | None = None) -> torch.Tensor:
        """(B, 3, S, S) in [-1, 1]. With `resolution`, each image is first shrunk to that side and
        blown back up, so the encoder sees only that much detail."""
        arrays = []
        for image in images:
            if not isinstance(image, Image.Image):
                raise TypeError(f"expected PIL images, got {type(image).__name__}")
            image = image.convert("RGB")
            if image.size != (self.image_size, self.image_size):
                image = image.resize((self.image_size, self.image_size), Image.BICUBIC)
            if resolution is not None and resolution != self.image_size:
                if resolution < 1:
                    raise ValueError(f"resolution must be positive, got {resolution}")
                image = image.resize((resolution, resolution), Image.BILINEAR)
                image = image.resize((self.image_size, self.image_size), Image.BILINEAR)
            arrays.append(np.asarray(image, dtype=np.float32))
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        return pixels / 127.5 - 1.0

    @staticmethod
    def postprocess(pixels: torch.Tensor) -> list[Image.Image]:
        """(B, 3, S, S) in [-1, 1] -> RGB images."""
        array = ((pixels.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return [Image.fromarray(a.permute(1, 2, 0).cpu().numpy()) for a in array]

    def save_pretrained(self, directory) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"vocab": self.vocab, "image_size": self.image_size}
        (directory / "processor.json").write_text(json.dumps(payload, indent=1))

    @classmethod
    def from_pretrained(cls, directory) -> ToyProcessor:
        payload = json.loads((Path(directory) / "processor.json").read_text())
        return cls(payload["vocab"], payload["image_size"])


def split_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


# -- the patch tokenizer ----------------------------------------------------------------------------
class PatchTokenizer(nn.Module):
    """A product-quantised 8 x 8 patch tokenizer, learned by k-means: each patch becomes one code
    = (coverage pattern, colour). A patch is split into its colour (the nearest of the learned
    colour centroids to its most saturated pixels) and its coverage (how far each pixel sits
    between the background and that colour), and the coverage goes to the nearest of the learned
    coverage patterns. Decoding paints the pattern in the colour over the background.

    Fitting takes seconds where training the JanusVQVAE tokenizer to a usable quality did not fit
    the CPU budget (see docs/toy_study.md); the generator does not care which one made its codes.
    """

    def __init__(self, num_masks: int = 96, num_colors: int = 10, patch: int = 8, image_size: int = IMAGE_SIZE):
        super().__init__()
        self.patch, self.side = patch, image_size // patch
        self.num_masks, self.num_colors = num_masks, num_colors
        self.register_buffer("background", torch.zeros(3))
        self.register_buffer("colors", torch.zeros(num_colors, 3))
        self.register_buffer("masks", torch.zeros(num_masks, patch * patch))

    @property
    def codebook_size(self) -> int:
        return self.num_masks * self.num_colors

    def _patches(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, N, P*P, 3), patches in raster order."""
        b, p = pixels.shape[0], self.patch
        patches = pixels.unfold(2, p, p).unfold(3, p, p)  # B, 3, side, side, p, p
        return patches.permute(0, 2, 3, 4, 5, 1).reshape(b, self.side * self.side, p * p, 3)

    def _color_and_coverage(self, patches: torch.Tensor):
        offset = patches - self.background
        strength = offset.norm(dim=-1)  # B, N, P*P
        # the patch's colour: the mean of its most saturated pixels (edge pixels are blends)
        core = strength >= 0.7 * strength.amax(dim=-1, keepdim=True)
        core_color = (patches * core[..., None]).sum(2) / core.sum(2, keepdim=True).clamp(min=1)
        color_ids = torch.cdist(core_color, self.colors[None].expand(len(patches), -1, -1)).argmin(-1)
        direction = self.colors[color_ids] - self.background  # B, N, 3
        coverage = (offset * direction[:, :, None]).sum(-1) / direction.pow(2).sum(-1, keepdim=True).clamp(min=1e-6)
        empty = strength.amax(dim=-1) < FOREGROUND_DISTANCE
        coverage = torch.where(empty[..., None], torch.zeros_like(coverage), coverage.clamp(0, 1))
        return color_ids, coverage

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        color_ids, coverage = self._color_and_coverage(self._patches(pixels))
        mask_ids = torch.cdist(coverage, self.masks[None].expand(len(coverage), -1, -1)).argmin(-1)
        # an empty pattern paints nothing, so it has one code whatever colour the patch leaned to
        return mask_ids * self.num_colors + color_ids.masked_fill(mask_ids == EMPTY_PATTERN, 0)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        mask_ids, color_ids = codes // self.num_colors, codes % self.num_colors
        coverage = self.masks[mask_ids][..., None]  # B, N, P*P, 1
        colors = self.colors[color_ids][:, :, None]  # B, N, 1, 3
        patches = self.background + coverage * (colors - self.background)
        b, p = codes.shape[0], self.patch
        image = patches.view(b, self.side, self.side, p, p, 3).permute(0, 5, 1, 3, 2, 4)
        return image.reshape(b, 3, self.side * p, self.side * p)

    @torch.no_grad()
    def fit(self, pixels: torch.Tensor, iterations: int = 20, seed: int = 0) -> None:
        """Learn background, colours and coverage patterns from images (B, 3, S, S) in [-1, 1]."""
        generator = torch.Generator().manual_seed(seed)
        border = torch.cat([pixels[:, :, 0], pixels[:, :, -1], pixels[:, :, :, 0], pixels[:, :, :, -1]], dim=-1)
        self.background.copy_(border.permute(0, 2, 1).reshape(-1, 3).median(dim=0).values)
        patches = self._patches(pixels)
        offset = (patches - self.background).norm(dim=-1)
        saturated = patches[offset > 2 * FOREGROUND_DISTANCE]
        self.colors.copy_(_kmeans(saturated, self.num_colors, iterations, generator))
        _, coverage = self._color_and_coverage(patches)
        coverage = coverage.reshape(-1, coverage.shape[-1])
        occupied = coverage[coverage.sum(-1) > 0]
        # pattern EMPTY_PATTERN (0) stays the empty patch, so background always has an exact code
        self.masks.copy_(
            torch.cat(
                [torch.zeros(1, coverage.shape[-1]), _kmeans(occupied, self.num_masks - 1, iterations, generator)]
            )
        )


def _kmeans(points: torch.Tensor, k: int, iterations: int, generator: torch.Generator) -> torch.Tensor:
    """Plain k-means with farthest-point initialisation, on at most 50k points."""
    if len(points) > 50_000:
        points = points[torch.randperm(len(points), generator=generator)[:50_000]]
    centres = [points[torch.randint(len(points), (1,), generator=generator)].squeeze(0)]
    distance = (points - centres[0]).pow(2).sum(-1)
    for _ in range(k - 1):
        centres.append(points[distance.argmax()])
        distance = torch.minimum(distance, (points - centres[-1]).pow(2).sum(-1))
    centres = torch.stack(centres)
    for _ in range(iterations):
        assignment = torch.cdist(points, centres).argmin(-1)
        for j in range(k):
            members = points[assignment == j]
            if len(members):
                centres[j] = members.mean(0)
    return centres


# -- the generator's view of patch codes ----------------------------------------------------------
class FactoredCodeEmbedding(nn.Module):
    """A patch code (pattern, colour) embedded as pattern vector + colour vector: what the
    generator learns about "red" is shared by every pattern, instead of 640 separate red codes.
    The empty pattern has no colour, so it gets the pattern vector alone."""

    def __init__(self, num_masks: int, num_colors: int, width: int):
        super().__init__()
        self.num_colors = num_colors
        self.pattern = nn.Embedding(num_masks, width)
        self.color = nn.Embedding(num_colors, width)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        patterns = codes // self.num_colors
        colored = (patterns != EMPTY_PATTERN).unsqueeze(-1).to(self.color.weight.dtype)
        return self.pattern(patterns) + colored * self.color(codes % self.num_colors)


class FactoredCodeHead(nn.Module):
    """Next-code logits as pattern logit + colour logit, flattened in the tokenizer's code order
    (pattern-major), so the sampler and the loss still see one distribution over every code.

    The empty pattern is one code, (empty, colour 0), scored by its pattern logit alone; its other
    colours are ruled out. Were it scored empty + colour 0 like the rest, the four patches in five
    that are background would train colour 0 up, and every object would come out in colour 0."""

    def __init__(self, width: int, num_masks: int, num_colors: int):
        super().__init__()
        self.pattern = nn.Linear(width, num_masks, bias=False)
        self.color = nn.Linear(width, num_colors, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        pattern, color = self.pattern(hidden), self.color(hidden)
        logits = pattern[..., :, None] + color[..., None, :]
        empty = torch.full_like(color, torch.finfo(color.dtype).min)
        empty[..., 0] = pattern[..., EMPTY_PATTERN]
        is_empty = torch.arange(pattern.shape[-1], device=hidden.device) == EMPTY_PATTERN
        return torch.where(is_empty[:, None], empty[..., None, :], logits).flatten(-2)

    def token_loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-position cross-entropy of the codes `targets` under forward(hidden), computed
        from the pattern and colour logits alone, never the patterns x colours table: with 1024
        patterns that table is 12 288 logits per position and dominated the generator's step.

        log p(pattern m, colour c) = a_m + b_c - log Z, where
        Z = e^{a_empty} + (sum over non-empty m of e^{a_m}) * (sum over c of e^{b_c})."""
        pattern, color = self.pattern(hidden).float(), self.color(hidden).float()
        num_colors = color.shape[-1]
        target_pattern, target_color = targets.div(num_colors, rounding_mode="floor"), targets % num_colors
        is_empty = torch.arange(pattern.shape[-1], device=pattern.device) == EMPTY_PATTERN
        objects = pattern.masked_fill(is_empty, float("-inf")).logsumexp(-1) + color.logsumexp(-1)
        log_z = torch.logaddexp(pattern[..., EMPTY_PATTERN], objects)
        picked = pattern.gather(-1, target_pattern[..., None])[..., 0]
        picked_color = color.gather(-1, target_color[..., None])[..., 0]
        # (empty, colour 0) is scored by the pattern alone; other colours of empty are ruled out
        empty_color = torch.where(target_color == 0, 0.0, torch.finfo(color.dtype).min)
        picked = picked + torch.where(target_pattern == EMPTY_PATTERN, empty_color, picked_color)
        return log_z - picked


def code_loss(head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-position cross-entropy of image codes under a generator head (the factored head's
    exact shortcut where it has one)."""
    if isinstance(head, FactoredCodeHead):
        return head.token_loss(hidden, targets)
    return per_position_cross_entropy(head(hidden), targets)


# -- the vision encoder ---------------------------------------------------------------------------
class ConvImageEncoder(nn.Module):
    """Stride-2 convolution blocks (64 px -> 4 x 4) plus a learned position per cell: 16 patch
    embeddings for the understanding LM. A SigLIP ViT of the same width (patch 16 or 8) learned to
    tell the shapes apart far too slowly for a CPU budget: a probe classifying the shape of single
    objects reached 47 % / 52 % held-out accuracy after 400 steps, this encoder 100 % after 300."""

    def __init__(self, channels=(32, 64, 128, 128), image_size: int = IMAGE_SIZE):
        super().__init__()
        layers, width = [], 3
        for out in channels:
            layers += [
                nn.Conv2d(width, out, 3, stride=2, padding=1),
                nn.GroupNorm(8, out),
                nn.GELU(),
                nn.Conv2d(out, out, 3, padding=1),
                nn.GroupNorm(8, out),
                nn.GELU(),
            ]
            width = out
        self.layers = nn.Sequential(*layers)
        side = image_size // 2 ** len(channels)
        self.position = nn.Parameter(torch.zeros(side * side, width))
        self.hidden_size = width

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, cells, width)."""
        return self.layers(pixels).flatten(2).transpose(1, 2) + self.position


# -- the model ------------------------------------------------------------------------------------
def default_config(vocab_size: int, num_queries: int = 16) -> dict:
    """Sizes of every part, as plain dicts (stored in config.json beside the weights)."""
    width, gen_width = 128, 128
    tokenizer = dict(num_masks=640, num_colors=12)
    # the understanding LM and the describer are the same small Llama; only the describer ties
    # its output head to its input embedding
    small_lm = dict(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=3 * width,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
    )
    return {
        "num_queries": num_queries,
        "tokenizer": "patch",
        "patch_tokenizer": tokenizer,
        "generator_head": "factored",  # pattern + colour logits (FactoredCodeHead); "plain": one per code
        "vq": dict(num_patches=8),  # codes per side
        "vision": dict(channels=[32, 64, 128, width], image_size=IMAGE_SIZE),
        "understanding": dict(small_lm, tie_word_embeddings=False),
        "describer": dict(small_lm, tie_word_embeddings=True),
        "generator": dict(
            vocab_size=tokenizer["num_masks"] * tokenizer["num_colors"],
            hidden_size=gen_width,
            intermediate_size=3 * gen_width,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=128,
            tie_word_embeddings=False,
        ),
    }


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))


class ToyUnifiedModel(nn.Module):
    """Frozen-understanding / query-conditioned-generator unified model (see module docstring)."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        if config.get("tokenizer") != "patch":
            raise ValueError(
                f'the toy tokenizes images with its PatchTokenizer (config "tokenizer": "patch"), '
                f"not {config.get('tokenizer')!r}"
            )
        self.vq = PatchTokenizer(**config["patch_tokenizer"])
        attention = {"attn_implementation": "sdpa"}
        self.vision = ConvImageEncoder(**config["vision"])
        understanding_config = LlamaConfig(**config["understanding"], **attention)
        width = understanding_config.hidden_size
        self.aligner = _mlp(self.vision.hidden_size, width)
        self.understanding = LlamaModel(understanding_config)
        self.queries = nn.Parameter(torch.randn(config["num_queries"], width) * 0.02)
        self.describer = LlamaForCausalLM(LlamaConfig(**config["describer"], **attention))
        generator_config = LlamaConfig(**config["generator"], **attention)
        gen_width = generator_config.hidden_size
        self.connector = nn.Sequential(nn.LayerNorm(width), _mlp(width, gen_width))
        self.null_condition = nn.Parameter(torch.randn(config["num_queries"], gen_width) * 0.02)
        self.begin_of_image = nn.Parameter(torch.randn(gen_width) * 0.02)
        self.generator = LlamaForCausalLM(generator_config)
        if config.get("generator_head") == "factored":
            tokenizer = config["patch_tokenizer"]
            self.generator.model.embed_tokens = FactoredCodeEmbedding(
                tokenizer["num_masks"], tokenizer["num_colors"], gen_width
            )
            self.generator.lm_head = FactoredCodeHead(gen_width, tokenizer["num_masks"], tokenizer["num_colors"])
        self.codebook_size = self.generator.config.vocab_size
        self.tokens_per_side = config["vq"]["num_patches"]
        self._token_cache: dict[bytes, torch.Tensor] = {}

    # The VQ tokenizer, the vision encoder and the understanding LM are never trained by RecA;
    # keeping them in eval mode makes model.train() unable to change their behaviour.
    def train(self, mode: bool = True):
        super().train(mode)
        for frozen in (self.vq, self.vision, self.understanding):
            if not any(p.requires_grad for p in frozen.parameters()):
                frozen.eval()
        return self

    @property
    def device(self) -> torch.device:
        return self.queries.device

    # -- VQ tokenizer --
    @torch.no_grad()
    def encode_image_tokens(self, pixels: torch.Tensor, cache: bool = True) -> torch.Tensor:
        """VQ codes (B, 64). Once the tokenizer is frozen, codes are cached by pixel content:
        RecA and its control re-read the same images every epoch, and encoding them again would
        cost more than the generator's own training step on a CPU. Callers whose images never
        repeat pass `cache=False`: hashing an image costs a quarter of encoding it."""
        if not cache or any(p.requires_grad for p in self.vq.parameters()):
            return self.vq.encode(pixels)
        keys = [hashlib.sha1(row.detach().cpu().numpy().tobytes()).digest() for row in pixels]
        missing = sorted({i for i, key in enumerate(keys) if key not in self._token_cache})
        if missing:
            if len(self._token_cache) > TOKEN_CACHE_LIMIT:
                self._token_cache.clear()
            codes = self.vq.encode(pixels[missing])
            self._token_cache.update({keys[i]: row.cpu() for i, row in zip(missing, codes)})
        return torch.stack([self._token_cache[key] for key in keys]).to(pixels.device)

    @torch.no_grad()
    def decode_image_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.vq.decode(tokens.to(self.device))

    # -- understanding side --
    def _query_states(self, prompt_embeds: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        """Run [prompt (left-padded, starting with bos), Q1..Qk] and return the k query states."""
        batch = prompt_embeds.shape[0]
        queries = self.queries.unsqueeze(0).expand(batch, -1, -1)
        embeds = torch.cat([prompt_embeds, queries], dim=1)
        mask = torch.cat([prompt_mask, prompt_mask.new_ones(batch, queries.shape[1])], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        hidden = self.understanding(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).last_hidden_state
        return hidden[:, -queries.shape[1] :]

    def understand_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, 64, 64) -> query states (B, k, D)."""
        return self.understand_vision_cells(self.vision(pixels))

    def understand_vision_cells(self, cells: torch.Tensor) -> torch.Tensor:
        """Vision encoder output (B, cells, width) -> query states (B, k, D). Stage 1b, whose
        encoder is fixed, encodes its scenes once and calls this every step."""
        patches = self.aligner(cells)
        bos = self.understanding.embed_tokens(torch.full((patches.shape[0], 1), BOS, device=cells.device))
        embeds = torch.cat([bos, patches], dim=1)
        return self._query_states(embeds, torch.ones(embeds.shape[:2], dtype=torch.long, device=cells.device))

    def understand_text(self, token_lists: list[list[int]]) -> torch.Tensor:
        """Token id lists -> query states (B, k, D); rows are left-padded so padding never moves
        a row's query positions."""
        length = 1 + max(len(tokens) for tokens in token_lists)
        ids = torch.full((len(token_lists), length), PAD, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, tokens in enumerate(token_lists):
            sequence = [BOS] + list(tokens)
            ids[row, length - len(sequence) :] = torch.tensor(sequence)
            mask[row, length - len(sequence) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        return self._query_states(self.understanding.embed_tokens(ids), mask)

    def describe_loss(self, states: torch.Tensor, token_lists: list[list[int]], per_row: bool = False) -> torch.Tensor:
        """Teacher-forced caption loss of a decoder that sees only the query states: the mean over
        every caption token, or with `per_row` each row's sum over its tokens (B,), for callers
        that split one batch into several calls and still want the mean over all of it."""
        length = 2 + max(len(tokens) for tokens in token_lists)
        ids = torch.full((len(token_lists), length), PAD, dtype=torch.long)
        for row, tokens in enumerate(token_lists):
            sequence = [BOS] + list(tokens) + [EOS]
            ids[row, : len(sequence)] = torch.tensor(sequence)
        ids = ids.to(self.device)
        mask = torch.cat(
            [torch.ones(states.shape[:2], dtype=torch.long, device=self.device), (ids != PAD).long()], dim=1
        )
        embeds = torch.cat([states, self.describer.model.embed_tokens(ids)], dim=1)
        logits = self.describer(inputs_embeds=embeds, attention_mask=mask).logits
        # the state at caption position i predicts token i + 1
        predictions = logits[:, states.shape[1] : -1]
        targets = ids[:, 1:]
        if per_row:
            return F.cross_entropy(predictions.transpose(1, 2), targets, ignore_index=PAD, reduction="none").sum(1)
        return F.cross_entropy(predictions.reshape(-1, predictions.shape[-1]), targets.reshape(-1), ignore_index=PAD)

    @torch.no_grad()
    def describe(self, states: torch.Tensor, max_new_tokens: int = 32) -> list[list[int]]:
        """Greedy caption ids from query states (no cache: captions are a dozen words)."""
        ids = torch.full((states.shape[0], 1), BOS, dtype=torch.long, device=self.device)
        finished = torch.zeros(states.shape[0], dtype=torch.bool, device=self.device)
        for _ in range(max_new_tokens):
            embeds = torch.cat([states, self.describer.model.embed_tokens(ids)], dim=1)
            next_ids = self.describer(inputs_embeds=embeds).logits[:, -1].argmax(-1)
            next_ids = torch.where(finished, torch.full_like(next_ids, PAD), next_ids)
            ids = torch.cat([ids, next_ids[:, None]], dim=1)
            finished |= next_ids == EOS
            if finished.all():
                break
        return [row[1:].tolist() for row in ids]

    # -- generation side --
    def condition_prefix(self, states: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Query states (B, k, D) -> generator prefix (B, k + 1, D_gen) ending with begin-of-image;
        dropped rows get the learned null condition (classifier-free guidance)."""
        condition = self.connector(states)
        if drop is not None:
            drop = drop.to(condition.device).bool().view(-1, 1, 1)
            condition = torch.where(drop, self.null_condition.unsqueeze(0).expand_as(condition), condition)
        begin = self.begin_of_image.view(1, 1, -1).expand(condition.shape[0], 1, -1)
        return torch.cat([condition, begin], dim=1)

    def generation_loss(self, prefix: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy of image tokens (B, T) after a prefix (B, L, D)."""
        embeds = torch.cat([prefix, self.generator.model.embed_tokens(tokens[:, :-1])], dim=1)
        hidden = self.generator.model(inputs_embeds=embeds).last_hidden_state[:, prefix.shape[1] - 1 :]
        return code_loss(self.generator.lm_head, hidden, tokens).mean()

    # -- RecA plumbing --
    def freeze_for_reca(self, train_aligner: bool = False, train_understanding: bool = False) -> dict:
        """RecA on the toy trains the connector, null condition, begin-of-image and generator; the
        VQ tokenizer, vision encoder and understanding LM stay frozen (the OpenUni recipe), unless
        `train_aligner` (the vision -> LM aligner) or `train_understanding` (the whole
        understanding side) is asked for. Returns {"trainable": n, "frozen": m} parameter counts."""
        generation_side = ("connector.", "null_condition", "begin_of_image", "generator.")
        understanding_side = ("vision.", "aligner.", "understanding.", "queries", "describer.")
        for name, parameter in self.named_parameters():
            trainable = (
                name.startswith(generation_side)
                or (train_aligner and name.startswith("aligner."))
                or (train_understanding and name.startswith(understanding_side))
            )
            parameter.requires_grad_(trainable)
        self.train(self.training)
        counts = {"trainable": 0, "frozen": 0}
        for parameter in self.parameters():
            counts["trainable" if parameter.requires_grad else "frozen"] += parameter.numel()
        return counts

    def reca_adapter(self, processor) -> ToyAdapter:
        return ToyAdapter(self, processor)

    # -- persistence --
    def save_pretrained(self, directory, processor: ToyProcessor | None = None) -> None:
        """config.json + fp16 model.safetensors (+ processor.json when given)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(self.config, indent=1))
        tensors = {
            name: value.detach().to(torch.float16).contiguous().cpu() for name, value in self.state_dict().items()
        }
        save_file(tensors, str(directory / "model.safetensors"))
        if processor is not None:
            processor.save_pretrained(directory)

    @classmethod
    def from_pretrained(cls, directory, device=None) -> ToyUnifiedModel:
        directory = Path(directory)
        config_path = directory / "config.json"
        if not config_path.exists():
            raise FileNotFoundError(f"no toy model in {directory} (config.json missing)")
        model = cls(json.loads(config_path.read_text()))
        state = {name: value.float() for name, value in load_file(str(directory / "model.safetensors")).items()}
        model.load_state_dict(state)
        model.freeze_for_reca()
        return model.to(device or "cpu").eval()


# -- the UnifiedAdapter ---------------------------------------------------------------------------
class ToyAdapter(UnifiedAdapter):
    """recakit's model interface for `ToyUnifiedModel`. The understanding embeddings RecA feeds
    the generator are the frozen LM's query states; the text prefix is the query states of the
    prompt, so both conditions pass through the same connector."""

    def __init__(self, model: ToyUnifiedModel, processor: ToyProcessor):
        if processor is None:
            raise ValueError("the toy model needs its ToyProcessor (load both with recakit.toy.model.load_toy)")
        self.model = model
        self.processor = processor
        self.num_image_tokens = model.tokens_per_side**2
        self.codebook_size = model.codebook_size
        self._cache_argument = cache_argument(model.generator.model)

    def _pixels(self, images, resolution=None) -> torch.Tensor:
        return self.processor.pixel_values(list(images), resolution).to(self.device)

    def understanding_embeddings(self, images, resolution=None):
        return self.model.understand_images(self._pixels(images, resolution))

    def image_tokens(self, images):
        return self.model.encode_image_tokens(self._pixels(images))

    def decode_image_tokens(self, tokens):
        return self.processor.postprocess(self.model.decode_image_tokens(tokens))

    def _prefix(self, states, drop):
        prefix = self.model.condition_prefix(states, drop)
        return prefix, torch.ones(prefix.shape[:2], dtype=torch.long, device=prefix.device)

    def prefix_from_embeddings(self, embeddings, drop=None, instructions=None):
        # The query design needs no instruction: the query states already say "this image".
        return self._prefix(embeddings, drop)

    def prefix_from_text(self, prompts, drop=None):
        states = self.model.understand_text([self.processor.encode(prompt) for prompt in prompts])
        return self._prefix(states, drop)

    def forward_generation(self, inputs_embeds, attention_mask, position_ids, past_key_values=None):
        output = self.model.generator.model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            **{self._cache_argument: past_key_values},
        )
        return output.last_hidden_state, getattr(output, self._cache_argument)

    def embed_image_tokens(self, tokens):
        return self.model.generator.model.embed_tokens(tokens)

    def image_logits(self, hidden):
        return self.model.generator.lm_head(hidden)

    def image_token_loss(self, hidden, targets):
        return code_loss(self.model.generator.lm_head, hidden, targets)

    def caption_loss(self, images, captions):
        states = self.understanding_embeddings(images)
        return self.model.describe_loss(states, [self.processor.encode(c) for c in captions])

    def caption(self, images, max_new_tokens: int = 32) -> list[str]:
        """Greedy captions written from the image's query states."""
        with torch.no_grad():
            states = self.understanding_embeddings(images)
        return [self.processor.decode(ids) for ids in self.model.describe(states, max_new_tokens)]


# -- loading ------------------------------------------------------------------------------------
def load_toy(path=None, device=None):
    """(model, processor) of a saved toy model: a folder or a name of `SHIPPED_MODELS`; the shipped
    ShapesWorld base by default."""
    directory = SHIPPED_MODELS[path] if path in SHIPPED_MODELS else Path(path) if path is not None else SHIPPED_BASE
    model = ToyUnifiedModel.from_pretrained(directory, device)
    return model, ToyProcessor.from_pretrained(directory)


# -- the family's entry in recakit.registry ------------------------------------------------------


def claims_checkpoint(name: str) -> bool:
    """A name of SHIPPED_MODELS, or a folder of a saved toy (one with processor.json)."""
    return name in SHIPPED_MODELS or (Path(name).expanduser() / "processor.json").is_file()


def load_checkpoint(name: str, *, device: torch.device, dtype=None, quantization: str | None = None):
    """The toy loads in float32 whatever `dtype` and `quantization` say."""
    return load_toy(name if name in SHIPPED_MODELS else Path(name).expanduser(), device=device)


def claims_model(model) -> bool:
    return isinstance(model, ToyUnifiedModel)
