"""Shared test fixtures: a tiny Janus built offline once per session (and a copy whose image
logits matter), small test images, a dataset wrapper that records which examples a training loop
reads, and the slow reference computations that the fast library paths are checked against."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw


def pytest_configure(config):
    # Test models are tiny: one thread is faster than two fighting other processes for the cores
    # (several-fold on a busy 2-core machine, where idle threads spin-wait).
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def janus_tiny():
    """(model, processor) of the tiny offline Janus, shared by the whole session: treat it as
    read-only (tests that train or freeze build their own with recakit.models.janus.tiny_janus)."""
    from recakit.models.janus import tiny_janus

    return tiny_janus(seed=0)


@pytest.fixture(scope="session")
def janus_sensitive():
    """(model, processor) of a tiny Janus whose image head is scaled 100x. A random tiny model's
    image logits are nearly flat (std 0.014 over the codebook), so at temperature 1 the seed
    alone decides the draw and four different prompts give the same image; scaled, their spread
    is that of a trained model's (std 1.4) and the condition decides the draw. Read-only."""
    from recakit.models.janus import tiny_janus

    model, processor = tiny_janus(seed=0)
    head = model.model.generation_head.vision_head
    with torch.no_grad():
        head.weight.mul_(100)
        head.bias.mul_(100)
    return model, processor


def full_forward_image_logits(adapter, prefix, mask, codes):
    """(B, T, V) float32 logits for image codes `codes` (B, T) after a prefix, the slow way: one
    forward over [prefix, codes[:, :-1]] without a cache; position t holds the logits for code t."""
    embeds = torch.cat([prefix, adapter.embed_image_tokens(codes[:, :-1]).to(prefix.dtype)], dim=1)
    mask = torch.cat([mask, mask.new_ones(codes[:, :-1].shape)], dim=1)
    hidden, _ = adapter.forward_generation(embeds, mask, (mask.cumsum(-1) - 1).clamp(min=0))
    return adapter.image_logits(hidden[:, prefix.shape[1] - 1 :]).float()


def cross_entropy_by_hand(logits, targets):
    """Mean over positions of -log softmax(logits)[target], written out: (T, V) logits, (T,) ids."""
    log_probs = logits.float().log_softmax(-1)
    return -log_probs[torch.arange(len(targets)), targets].mean()


@pytest.fixture(params=[False, True], ids=["bnb-cpu-plain", "bnb-cpu-packed"])
def bnb_cpu_packed(request, monkeypatch):
    """Runs the test on each of bitsandbytes' two CPU paths for 4-bit layers -> whether packed.

    On CPUs with AVX512-BF16 a 4-bit layer repacks its weight at its first eval forward and uses
    a fused kernel; elsewhere it dequantizes. The layer asks `has_avx512bf16` when it is built,
    so answering for the CPU makes either kind of machine take both paths. (Where the CPU lacks
    the instructions, the generic kernel multiplies the packed weights as if unpacked: the path
    runs, but its numbers mean nothing, so tests check that it runs, not what it computes.)"""
    import bitsandbytes.nn.modules

    monkeypatch.setattr(bitsandbytes.nn.modules, "has_avx512bf16", lambda: request.param)
    return request.param


def packed_4bit_layers(model) -> int:
    """How many of the model's 4-bit layers hold their weight in bitsandbytes' packed CPU format."""
    return sum(
        getattr(getattr(module.weight, "quant_state", None), "packing_format_for_cpu", False)
        for module in model.modules()
        if type(module).__name__ == "Linear4bit"
    )


def draw_square_image(color, background=(160, 160, 160), size=32, box=(8, 8, 24, 24)) -> Image.Image:
    """A plain RGB image with one filled square: distinct, cheap, deterministic test input."""
    image = Image.new("RGB", (size, size), background)
    ImageDraw.Draw(image).rectangle(box, fill=color)
    return image


@pytest.fixture(scope="session")
def square_images():
    """Four small RGB images that differ in colour and position."""
    return [
        draw_square_image((220, 30, 35)),
        draw_square_image((35, 75, 220), box=(2, 2, 14, 14)),
        draw_square_image((250, 225, 30), box=(16, 4, 30, 18)),
        draw_square_image((20, 20, 20), background=(250, 250, 250), box=(4, 16, 20, 30)),
    ]


@pytest.fixture
def odd_mode_images():
    """One small image per awkward mode, keyed by the mode: transparent, grayscale, palette,
    CMYK and 16-bit."""
    rgba = Image.new("RGBA", (8, 6), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    palette = Image.new("P", (8, 6), 1)
    palette.putpalette([0, 0, 0, 0, 200, 0])
    sixteen = Image.fromarray(np.full((6, 8), 65535 // 2, dtype=np.uint16)).convert("I;16")
    return {
        "RGBA": rgba,
        "LA": Image.new("LA", (8, 6), (10, 255)),
        "L": Image.new("L", (8, 6), 77),
        "P": palette,
        "CMYK": Image.new("CMYK", (8, 6), (0, 255, 255, 0)),
        "I;16": sixteen,
    }


class RecordedReads:
    """A dataset that records the index of every example read from it, in order (`.read`)."""

    def __init__(self, data):
        self.data, self.read = data, []

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        self.read.append(index)
        return self.data[index]


def quick_train_command(model, images, out, *extra) -> list[str]:
    """`recakit train` arguments for a two-step run on the CPU at batch 2 and lr 1e-3, then `extra`."""
    common = ["--steps", "2", "--batch-size", "2", "--lr", "1e-3", "--device", "cpu", "--mixed-precision", "no"]
    return ["train", "--model", str(model), "--images", str(images), "--out", str(out), *common, *extra]
