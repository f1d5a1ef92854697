"""The one small interface between RecA and a unified multimodal model.

RecA needs four things from a model: its own *understanding* embeddings of an image, the
*generation* tokens of that image (the target), a way to build a generation prefix from either
those embeddings or a text prompt, and the generation stack that turns a prefix into next-token
logits over image codes. Everything else in recakit -- the objective (`recakit.objective`), the
sampler (`recakit.sampling`), the training loop -- talks to a model only through this class, so
the same code serves Janus-Pro (`recakit.models.janus.JanusAdapter`), OpenUni
(`recakit.models.openuni.OpenUniAdapter`) and the ShapesWorld toy (`recakit.toy.model.ToyAdapter`);
`recakit.registry.adapter_for` finds the adapter for a model. The small helpers at the end
(padding, drop flags, eval-mode pinning) are shared by the families.

Conventions every adapter follows:
- A *prefix* is `(inputs_embeds (B, L, D), attention_mask (B, L))`, left-padded, ending with the
  begin-of-image position: the generation stack's output at position L-1 predicts image token 0.
  Rows whose `drop` flag is set get the unconditional prefix (what classifier-free guidance and
  instruction dropout use); all rows of a batch share one length L.
- `position_ids` are derived from the attention mask (`mask.cumsum(-1) - 1`), so a row gives the
  same numbers whether it is padded inside a batch or run alone.
- Image tokens are a LongTensor (B, T), T = `num_image_tokens`, in raster order.
"""

from __future__ import annotations

import inspect
import types

import torch
import torch.nn.functional as F
from PIL import Image


class ModelNotAvailableError(RuntimeError):
    """A checkpoint (or a part of one) is neither cached nor downloadable right now (e.g. offline)."""


class UnifiedAdapter:
    """Base class: subclasses wrap one model family. Methods raise until implemented."""

    #: the wrapped model and processor (the processor may be None for models that need none)
    model: torch.nn.Module
    processor: object

    #: image tokens per generated image, and the size of the generation codebook
    num_image_tokens: int
    codebook_size: int

    #: whether the RecA prefix carries instruction text beside the understanding embeddings. If
    #: so, RecA's instruction dropout blanks only that text and the image stays; if not (the toy),
    #: there is nothing but the image to drop, so a dropped row gets the unconditional prefix.
    takes_instructions: bool = False

    #: whether understanding and generation share the language model, so that RecA alone would
    #: let the understanding side drift and image-to-text pairs should be mixed in
    shares_language_model: bool = False

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- understanding side -------------------------------------------------------------------
    def understanding_embeddings(self, images: list[Image.Image], resolution: int | None = None) -> torch.Tensor:
        """(B, N, D): the model's own understanding of each image, the condition RecA feeds the
        generator. `resolution` is the side length the understanding encoder sees (the
        information-bottleneck knob); None means the encoder's native size."""
        raise NotImplementedError

    def image_tokens(self, images: list[Image.Image]) -> torch.Tensor:
        """(B, T) generation-codebook ids of each image; computed without gradient."""
        raise NotImplementedError

    def decode_image_tokens(self, tokens: torch.Tensor) -> list[Image.Image]:
        """Generation-codebook ids (B, T) -> RGB images."""
        raise NotImplementedError

    # -- generation prefixes ------------------------------------------------------------------
    def prefix_from_embeddings(
        self, embeddings: torch.Tensor, drop: torch.Tensor | None = None, instructions: list[str] | None = None
    ):
        """RecA's prefix: understanding embeddings (B, N, D) (plus a reconstruction instruction
        per row, where the family uses one) -> (inputs_embeds, attention_mask)."""
        raise NotImplementedError

    def prefix_from_text(self, prompts: list[str], drop: torch.Tensor | None = None):
        """Text-to-image prefix for each prompt -> (inputs_embeds, attention_mask)."""
        raise NotImplementedError

    # -- generation stack ---------------------------------------------------------------------
    def forward_generation(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past_key_values=None,
    ):
        """Run the generation transformer -> (hidden (B, L, D), past_key_values)."""
        raise NotImplementedError

    def embed_image_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) image ids -> (B, T, D) input embeddings for the generation transformer."""
        raise NotImplementedError

    def image_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, D) hidden states -> (B, T, codebook_size) next-image-token logits."""
        raise NotImplementedError

    def image_token_loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, T, D) hidden states, (B, T) image ids -> (B, T) cross-entropy per position, in
        float32. Here through the full logits; a family whose head has a cheaper exact form (the
        toy's factored head) overrides it."""
        return per_position_cross_entropy(self.image_logits(hidden), targets)

    # -- families whose generator is not next-token prediction -------------------------------
    #: A diffusion or flow-matching family (OpenUni) sets these two to methods of its own; for
    #: token families they stay None and recakit uses the token machinery above.
    #: generation_loss(inputs_embeds, attention_mask, targets, noise_seeds) -> scalar: the
    #: family's training loss after a prefix, `targets` from `generation_targets`, and one seed
    #: per row for every random draw of that row (noise, timestep), or None for torch's own.
    generation_loss = None
    #: sample_images(build_prefix, count, *, cfg_scale, seeds, steps, batch_size, progress, desc)
    #: -> PIL images; `build_prefix` as in recakit.decoding.prefix_batches.
    sample_images = None

    #: classifier-free guidance scale the family samples with when the caller gives none
    default_cfg_scale: float = 5.0

    def generation_targets(self, images: list[Image.Image]) -> torch.Tensor:
        """What the generation loss regenerates for each image, computed without gradient: the
        image tokens here; a diffusion family returns its autoencoder latents."""
        return self.image_tokens(images)

    def reca_views(self, images: list[Image.Image], resolution: int | None = None):
        """RecA's two views of the same images -> (generation_targets, computed without gradient;
        understanding_embeddings at `resolution`). A family whose tokenizer and encoder share a
        preprocessing step overrides this to run it once."""
        with torch.no_grad():
            targets = self.generation_targets(images)
        return targets, self.understanding_embeddings(images, resolution)

    # -- understanding loss, for mixing image-to-text into RecA -------------------------------
    def caption_loss(self, images: list[Image.Image], captions: list[str]) -> torch.Tensor:
        """Teacher-forced image-to-text cross-entropy (keeps shared parameters able to describe)."""
        raise NotImplementedError

    def caption(self, images: list[Image.Image], max_new_tokens: int = 32) -> list[str]:
        """Greedy image-to-text on the understanding side (what `recakit.sampling.caption` shows)."""
        raise NotImplementedError


def per_position_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(..., V) logits, (...) ids -> (...) cross-entropy, computed in float32."""
    return F.cross_entropy(logits.float().flatten(0, -2), targets.flatten(), reduction="none").view(targets.shape)


def left_pad(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id rows of any lengths -> (ids, attention_mask), both (B, L), padded on the left."""
    length = max(len(row) for row in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, length - len(row) :] = torch.tensor(row)
        mask[i, length - len(row) :] = 1
    return ids.to(device), mask.to(device)


def drop_flags(drop, rows: int) -> list[bool]:
    """A prefix builder's `drop` argument (None, or one flag per row) -> one bool per row."""
    if drop is None:
        return [False] * rows
    flags = [bool(flag) for flag in torch.as_tensor(drop).reshape(-1).tolist()]
    if len(flags) != rows:
        raise ValueError(f"drop has {len(flags)} flags for {rows} rows")
    return flags


def cache_argument(module) -> str:
    """transformers renamed `past_key_values` to `cache`; the keyword `module.forward` takes."""
    parameters = inspect.signature(module.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def stay_in_eval(module: torch.nn.Module) -> None:
    """Keep `module` in eval mode even when the whole model is switched with model.train()
    (nn.Module.train calls each child's own `train`, so an instance attribute overrides it)."""
    module.eval()
    # a bound method (not a closure) so copy.deepcopy rebinds it to the copy
    module.train = types.MethodType(_train_stays_off, module)


def _train_stays_off(module, mode: bool = True):
    return torch.nn.Module.train(module, False)
