"""GPU speed and memory of recakit's fast paths against the plain ones, measured in one run.

Builds a Janus-Pro-1B-size model from its configuration with random weights (no download), then
measures, each against the plain path on the same card in the same run:

1. sampling: the plain KV-cache loop (recakit.sampling) vs the static-cache, graph-captured
   sampler (recakit.fast), 576-token images with classifier-free guidance, at batch 1 and 16;
2. a RecA training step at equal batch: plain (full float32 logits, foreach AdamW, eager) vs
   fast (chunked cross-entropy, fused AdamW, compiled decoder layers and encoders); tokens/s, model-FLOPs
   utilisation and peak memory;
3. the 16 GB presets (recakit.memory_presets): Janus-Pro-1B full fine-tuning and Janus-Pro-7B-size
   NF4 + LoRA, peak memory of real optimizer steps;
4. quantized inference: bf16 vs NF4 vs INT8 weight footprint and seconds per image;
5. OpenUni-L (InternVL3-2B + SANA 1.6B + DC-AE, random weights from their configurations, needs
   diffusers): one RecA step under the `openuni-l-reca-80gb` preset and one 512 px image at 20
   steps, time and peak memory. Not yet run on a GPU.

Every figure goes into one JSON file (see benchmarks/README.md for the keys); it is rewritten
after each section, so an interrupted run keeps what it measured. A section that fails or needs
what this machine lacks (CUDA, bitsandbytes) leaves its figures null with the reason beside them.

    python benchmarks/gpu.py --out benchmarks/results/gpu.json          # on a GPU
    python benchmarks/gpu.py --tiny --out /tmp/gpu_tiny.json            # the same code, tiny, on a CPU

recakit modules are imported inside the functions that use them, so the script needs only torch,
transformers, PIL and tqdm (plus peft and bitsandbytes for the sections that use them).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import gc
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

#: model sizes: keyword overrides of recakit.models.janus.tiny_janus
SIZES = {
    "tiny": {},
    "tiny-large": {"hidden_size": 96, "num_layers": 3},  # stands in for the 7B on a CPU
    "1b": {
        "image_size": 384,
        "patch_size": 16,
        "hidden_size": 2048,
        "num_layers": 24,
        "codebook_size": 16384,
        "text_config": {
            "intermediate_size": 5632,
            "num_attention_heads": 16,
            "num_key_value_heads": 16,
            "vocab_size": 102400,
            "max_position_embeddings": 4096,
        },
        "vision_config": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "mlp_ratio": 4.0},
        "vq_config": {
            "base_channels": 128,
            "channel_multiplier": [1, 1, 2, 2, 4],
            "num_res_blocks": 2,
            "latent_channels": 256,
        },
    },
}
SIZES["7b"] = {
    **SIZES["1b"],
    "hidden_size": 4096,
    "num_layers": 30,
    "text_config": {
        **SIZES["1b"]["text_config"],
        "intermediate_size": 11008,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
    },
}

#: dense bf16 tensor-core peak, FLOP/s, for the model-FLOPs utilisation
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}

PROMPTS = [
    "a red apple on a wooden table",
    "two dogs playing in the snow",
    "a blue car left of a tree",
    "a lighthouse at sunset",
    "three yellow stars",
    "a cat sleeping on a sofa",
    "a bowl of ramen",
    "a purple umbrella in the rain",
    "an old map of an island",
    "a green frog on a leaf",
    "a city skyline at night",
    "a plate of sushi",
    "a white horse in a field",
    "a red bus",
    "a watercolor of mountains",
    "a robot reading a book",
]

#: keys every result file has, null when not measured
REQUIRED_KEYS = (
    "device",
    "torch",
    "transformers",
    "sampling_speedup_b1",
    "sampling_speedup_b16",
    "train_speedup",
    "train_mfu",
    "full_ft_1b_peak_gib",
    "qlora_7b_peak_gib",
    "nf4_gib",
    "int8_gib",
    "bf16_gib",
    "openuni_l_reca_step_s",
    "openuni_l_reca_peak_gib",
    "openuni_l_image_s",
    "openuni_l_image_peak_gib",
)
OPENUNI_KEYS = REQUIRED_KEYS[-4:]

GIB = 2**30


# -- the machine --------------------------------------------------------------------------------


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def start_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / GIB, 3) if device.type == "cuda" else None


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for chip, flops in PEAK_BF16_FLOPS.items() if chip in name), None)


def timed(function, device: torch.device):
    """(seconds, result) of one call, with the device's queue drained on both sides."""
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - start, result


# -- models -------------------------------------------------------------------------------------


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_model(size: str, device: torch.device, dtype: torch.dtype):
    """A Janus of the given size with random weights, created directly on `device` in `dtype`."""
    from recakit.models.janus import tiny_janus

    with torch.device(device), default_dtype(dtype):
        model, processor = tiny_janus(seed=0, **copy.deepcopy(SIZES[size]))
    return model.to(device=device, dtype=dtype).eval(), processor


def quantize_linears(model, kind: str, dtype: torch.dtype) -> int:
    """Replace the model's linear layers by bitsandbytes NF4 or INT8 layers in place -> how many.

    The same split as recakit.registry.load_model (`full_precision_layers`). Done in memory so that
    no checkpoint has to be written first."""
    import logging

    import bitsandbytes as bnb

    from recakit.models.janus import full_precision_layers

    # its int8 layers log a dtype-cast notice on every call
    logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
    keep = set(full_precision_layers(model, kind))
    replaced = 0
    for name, module in list(model.named_modules()):
        if not isinstance(module, torch.nn.Linear) or name in keep:
            continue
        device = module.weight.device
        if kind == "nf4":
            layer = bnb.nn.Linear4bit(
                module.in_features,
                module.out_features,
                bias=module.bias is not None,
                compute_dtype=dtype,
                quant_type="nf4",
                device="meta",
            )
            layer.weight = bnb.nn.Params4bit(module.weight.data, requires_grad=False, quant_type="nf4")
        else:
            layer = bnb.nn.Linear8bitLt(
                module.in_features,
                module.out_features,
                bias=module.bias is not None,
                has_fp16_weights=False,
                device="meta",
            )
            # Int8Params quantizes only on its way from the CPU to the device
            layer.weight = bnb.nn.Int8Params(module.weight.data.cpu(), requires_grad=False, has_fp16_weights=False)
        if module.bias is not None:
            layer.bias = torch.nn.Parameter(module.bias.data, requires_grad=False)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, layer.to(device))  # .to quantizes the weight
        replaced += 1
    gc.collect()
    return replaced


def release() -> None:
    """Give freed GPU memory back (callers drop their references first)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# -- sampling -----------------------------------------------------------------------------------


def text_prefix_builder(adapter, prompts):
    def build_prefix(indices, drop):
        return adapter.prefix_from_text([prompts[i] for i in indices], torch.tensor(drop))

    return build_prefix


def with_tokens(adapter, count: int):
    """The adapter cut to `count` image tokens per image (warm-ups and per-token timings)."""
    short = copy.copy(adapter)
    short.num_image_tokens = count
    return short


def sampling_section(args, device, dtype, out: dict) -> None:
    from recakit.fast import fast_sample_image_tokens
    from recakit.registry import adapter_for
    from recakit.sampling import sample_image_tokens

    model, processor = build_model(args.size, device, dtype)
    adapter = adapter_for(model, processor)
    details = out["details"].setdefault("sampling", {"image_tokens": adapter.num_image_tokens, "cfg_scale": 5.0})
    for batch in args.sample_batches:
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
        options = {
            "cfg_scale": 5.0,
            "seeds": list(range(batch)),
            "temperature": 1.0,
            "top_k": None,
            "batch_size": batch,
            "progress": False,
        }
        build_prefix = text_prefix_builder(adapter, prompts)
        # defaults bind this batch's prefix, size and options into each sampler
        samplers = {
            "plain": lambda a, prefix=build_prefix, rows=batch, kw=options: sample_image_tokens(a, prefix, rows, **kw)
        }
        for mode in args.sample_modes:
            samplers[mode] = lambda a, mode=mode, prefix=build_prefix, rows=batch, kw=options: fast_sample_image_tokens(
                a, prefix, rows, mode=mode, **kw
            )
        codes, figures = {}, {}
        for name, sampler in samplers.items():
            try:
                sampler(with_tokens(adapter, 4))  # warm-up: kernels, cuBLAS handles, compilation
                start_peak(device)
                seconds, codes[name] = timed(functools.partial(sampler, adapter), device)
                figures[name] = {
                    "s_per_batch": round(seconds, 4),
                    "s_per_image": round(seconds / batch, 4),
                    "ms_per_token_step": round(1000 * seconds / adapter.num_image_tokens, 3),
                    "peak_gib": peak_gib(device),
                }
            except Exception as error:  # noqa: BLE001 -- one mode failing must not lose the others
                figures[name] = {"error": repr(error), "traceback": traceback.format_exc()[-2000:]}
        for name in args.sample_modes:
            if name in codes and "plain" in codes:
                figures[name]["speedup"] = round(figures["plain"]["s_per_image"] / figures[name]["s_per_image"], 3)
                figures[name]["same_codes_fraction"] = round((codes[name] == codes["plain"]).float().mean().item(), 4)
                figures[name]["first_token_same_fraction"] = round(
                    (codes[name][:, 0] == codes["plain"][:, 0]).float().mean().item(), 4
                )
        details[f"b{batch}"] = figures
        best = [figures[m]["speedup"] for m in args.sample_modes if "speedup" in figures.get(m, {})]
        if batch in (1, 16):
            key = f"sampling_speedup_b{batch}"
            out[key] = max(best) if best else None
            if not best:
                out["reasons"][key] = "no fast sampling mode finished; see details.sampling"
    del model, adapter, samplers, build_prefix
    release()


# -- training -----------------------------------------------------------------------------------


def random_pixels(processor, count: int, side: int, seed: int, device, dtype):
    """Preprocessed random images: the data pipeline is not what is measured."""
    from PIL import Image

    generator = torch.Generator().manual_seed(seed)
    images = [
        Image.fromarray(torch.randint(0, 256, (side, side, 3), generator=generator, dtype=torch.uint8).numpy())
        for _ in range(count)
    ]
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    return pixels.to(device, dtype)


def reca_step_loss(adapter, pixels):
    """reca_loss's computation on preprocessed pixels: VQ targets, understanding embeddings,
    RecA prefix, image-token cross-entropy (through recakit.objective.image_generation_loss)
    -> (loss, tokens in the sequence)."""
    from recakit.instructions import RECONSTRUCTION_INSTRUCTIONS
    from recakit.objective import image_generation_loss

    model = adapter.model
    rows = len(pixels)
    with torch.no_grad():
        targets = model.model.vqmodel.encode(pixels).image_tokens.view(rows, -1)
    embeddings = model.model.get_image_features(pixels).pooler_output
    instructions = [RECONSTRUCTION_INSTRUCTIONS[i % len(RECONSTRUCTION_INSTRUCTIONS)] for i in range(rows)]
    prefix, mask = adapter.prefix_from_embeddings(embeddings, torch.zeros(rows, dtype=torch.bool), instructions)
    loss = image_generation_loss(adapter, prefix, mask, targets)
    return loss, mask.shape[1] + targets.shape[1] - 1


@contextlib.contextmanager
def chunked_loss(enabled: bool):
    """Force image_generation_loss onto the chunked (True) or the full-logits (False) path."""
    from recakit import objective

    previous = objective.CHUNKED_LOSS_MIN_CODES
    objective.CHUNKED_LOSS_MIN_CODES = 0 if enabled else sys.maxsize
    try:
        yield
    finally:
        objective.CHUNKED_LOSS_MIN_CODES = previous


def run_steps(adapter, optimizer, pixels, micro_batch: int, warmup: int, repeats: int, device):
    """Optimizer steps over `pixels` in micro-batches -> figures of the timed steps."""

    def one_step():
        total = 0.0
        for start in range(0, len(pixels), micro_batch):
            chunk = pixels[start : start + micro_batch]
            loss, tokens = reca_step_loss(adapter, chunk)
            (loss * len(chunk) / len(pixels)).backward()
            total += loss.detach() * len(chunk) / len(pixels)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return total, tokens

    for _ in range(warmup):
        one_step()
    start_peak(device)
    seconds = []
    for _ in range(repeats):
        elapsed, (loss, tokens) = timed(one_step, device)
        seconds.append(elapsed)
    step_s = sorted(seconds)[len(seconds) // 2]
    return {
        "batch": len(pixels),
        "micro_batch": micro_batch,
        "seq": tokens,
        "step_s": round(step_s, 4),
        "tokens_per_s": round(len(pixels) * tokens / step_s, 1),
        "peak_gib": peak_gib(device),
        "loss": round(float(loss), 4),
    }


def compiled_modules(model) -> list[torch.nn.Module]:
    """What the fast training path compiles: each decoder layer and each SigLIP layer (layers of a
    stack share their code, so one graph serves them all and compiling stays short) and the frozen
    VQ encoder, which runs forward only."""
    return [*model.model.language_model.layers, *model.model.vision_model.encoder.layers, model.model.vqmodel.encoder]


def mfu(figures: dict, llm_parameters: int, flops: float | None):
    return None if flops is None else round(6 * llm_parameters * figures["tokens_per_s"] / flops, 4)


def train_section(args, device, dtype, out: dict) -> None:
    from recakit.objective import freeze_for_reca
    from recakit.registry import adapter_for

    details = out["details"].setdefault("train", {})
    flops = peak_flops(device)
    if flops is None:
        out["reasons"]["train_mfu"] = f"no bf16 peak FLOP/s known for {device_name(device)}"
    for path in ("plain", "fast"):
        model, processor = build_model(args.size, device, dtype)
        freeze_for_reca(model)
        model.train()
        adapter = adapter_for(model, processor)
        llm_parameters = sum(p.numel() for p in model.model.language_model.parameters())
        trainable = [p for p in model.parameters() if p.requires_grad]
        pixels = random_pixels(processor, args.train_batch, processor.image_processor.size["height"], 1, device, dtype)
        if path == "plain":
            optimizer = torch.optim.AdamW(trainable, lr=1e-5, betas=(0.9, 0.95))
        else:
            optimizer = torch.optim.AdamW(trainable, lr=1e-5, betas=(0.9, 0.95), fused=device.type == "cuda")
            if args.train_compile:
                for module in compiled_modules(model):
                    module.compile()
        try:
            with chunked_loss(path == "fast"):
                figures = run_steps(adapter, optimizer, pixels, args.train_batch, args.warmup, args.repeats, device)
            figures["mfu"] = mfu(figures, llm_parameters, flops)
            figures["compiled"] = path == "fast" and args.train_compile
        except Exception as error:  # noqa: BLE001
            figures = {"error": repr(error), "traceback": traceback.format_exc()[-2000:]}
            if path == "fast" and args.train_compile:
                # keep a fast figure without compilation rather than none at all
                for module in compiled_modules(model):
                    module._compiled_call_impl = None  # what nn.Module.compile set
                try:
                    with chunked_loss(True):
                        retry = run_steps(
                            adapter, optimizer, pixels, args.train_batch, args.warmup, args.repeats, device
                        )
                    figures = {
                        **retry,
                        "mfu": mfu(retry, llm_parameters, flops),
                        "compiled": False,
                        "compile_error": figures["error"],
                        "compile_traceback": figures["traceback"],
                    }
                except Exception as second:  # noqa: BLE001
                    figures["uncompiled_error"] = repr(second)
        details[path] = figures
        del model, adapter, optimizer, trainable, pixels
        release()
    plain, fast = details["plain"], details["fast"]
    if "tokens_per_s" in plain and "tokens_per_s" in fast:
        out["train_speedup"] = round(fast["tokens_per_s"] / plain["tokens_per_s"], 3)
        out["train_mfu"], out["train_mfu_plain"] = fast["mfu"], plain["mfu"]
        out["train_tokens_per_s"], out["train_tokens_per_s_plain"] = fast["tokens_per_s"], plain["tokens_per_s"]
        out["train_peak_gib"], out["train_peak_gib_plain"] = fast["peak_gib"], plain["peak_gib"]
    else:
        out["reasons"]["train_speedup"] = "a training path failed; see details.train"


# -- 16 GB presets ------------------------------------------------------------------------------


def bitsandbytes_missing() -> str | None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        return f"bitsandbytes is not installed ({error})"
    return None


def preset_step(preset, model, processor, device, dtype, args) -> dict:
    """Two optimizer steps (each `args.preset_micro_steps` micro-batches) under `preset` -> figures."""
    from recakit.lora import add_lora
    from recakit.objective import freeze_for_reca
    from recakit.registry import adapter_for

    freeze_for_reca(model)
    preset.prepare_model(model)
    if preset.lora is not None:
        model = add_lora(model, preset.lora_config(model))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = preset.make_optimizer(trainable)
    adapter = adapter_for(model, processor)
    side = processor.image_processor.size["height"]
    pixels = random_pixels(processor, preset.micro_batch * args.preset_micro_steps, side, 2, device, dtype)
    with chunked_loss(True):
        figures = run_steps(adapter, optimizer, pixels, preset.micro_batch, 1, 1, device)
    figures.update(
        preset=preset.name,
        optimizer=type(optimizer).__name__,
        trainable_m=round(sum(p.numel() for p in trainable) / 1e6, 2),
        budget_gib=preset.memory_budget_gib,
    )
    del model, adapter, optimizer, trainable, pixels
    release()
    return figures


def presets_section(args, device, dtype, out: dict) -> None:
    import dataclasses

    from recakit.memory_presets import get_preset

    details = out["details"].setdefault("presets", {})
    missing = bitsandbytes_missing()
    for key, name, size in (
        ("full_ft_1b_peak_gib", "janus-pro-1b-full-16gb", args.size),
        ("qlora_7b_peak_gib", "janus-pro-7b-qlora-16gb", args.large_size),
    ):
        preset = get_preset(name)
        if device.type != "cuda":
            out["reasons"][key] = "peak GPU memory needs CUDA; on the CPU the step runs for the code path only"
            # paged 8-bit optimizers are CUDA-only: the CPU run checks everything else
            preset = dataclasses.replace(preset, optimizer="adamw")
        if missing and (preset.optimizer.endswith("8bit") or preset.quantization):
            out["reasons"][key] = missing
            continue
        try:
            model, processor = build_model(size, device, dtype)
            if preset.quantization:
                quantize_linears(model, preset.quantization, dtype)
            start_peak(device)
            figures = preset_step(preset, model, processor, device, dtype, args)
            figures["model_size"] = size
            del model
        except Exception as error:  # noqa: BLE001
            figures = {"error": repr(error), "traceback": traceback.format_exc()[-2000:]}
            out["reasons"][key] = f"failed: {error!r}"
        details[name] = figures
        if device.type == "cuda" and "peak_gib" in figures:
            out[key] = figures["peak_gib"]
        release()


# -- quantized inference ------------------------------------------------------------------------


def quantized_section(args, device, dtype, out: dict) -> None:
    from recakit.registry import adapter_for
    from recakit.sampling import sample_image_tokens

    # the "bf16" row is the unquantized model in the run's dtype (float32 in a CPU run)
    details = out["details"].setdefault(
        "quantized", {"tokens_timed": args.quant_tokens, "unquantized_dtype": str(dtype).replace("torch.", "")}
    )
    missing = bitsandbytes_missing()
    for kind in ("bf16", "nf4", "int8"):
        if kind != "bf16" and missing:
            out["reasons"][f"{kind}_gib"] = missing
            continue
        try:
            model, processor = build_model(args.size, device, dtype)
            if kind != "bf16":
                quantize_linears(model, kind, dtype)
            adapter = adapter_for(model, processor)
            build_prefix = text_prefix_builder(adapter, PROMPTS[:1])
            options = {
                "cfg_scale": 5.0,
                "seeds": [0],
                "temperature": 1.0,
                "top_k": None,
                "batch_size": 1,
                "progress": False,
            }
            sample_image_tokens(with_tokens(adapter, 2), build_prefix, 1, **options)
            tokens = min(args.quant_tokens, adapter.num_image_tokens)
            seconds, _ = timed(
                lambda a=adapter, n=tokens, prefix=build_prefix, kw=options: sample_image_tokens(
                    with_tokens(a, n), prefix, 1, **kw
                ),
                device,
            )
            figures = {
                "footprint_gib": round(model.get_memory_footprint() / GIB, 3),
                "allocated_gib": (
                    round(torch.cuda.memory_allocated(device) / GIB, 3) if device.type == "cuda" else None
                ),
                "ms_per_token_step": round(1000 * seconds / tokens, 3),
                # per-step time times the image's tokens: the plain loop's steps all cost alike
                "s_per_image": round(seconds / tokens * adapter.num_image_tokens, 3),
            }
            out[f"{kind}_gib"] = figures["footprint_gib"]
            out[f"{kind}_s_per_image"] = figures["s_per_image"]
            del model, adapter
            release()
        except Exception as error:  # noqa: BLE001
            figures = {"error": repr(error), "traceback": traceback.format_exc()[-2000:]}
            out["reasons"][f"{kind}_gib"] = f"failed: {error!r}"
        details[kind] = figures


# -- OpenUni-L -------------------------------------------------------------------------------------

#: OpenUni-L's parts as their released configurations give them (no download): InternVL3-2B-hf
#: (InternViT-300M at 448 px + Qwen2.5-1.5B, untied head), SANA 1600M 512px, the DC-AE f32c32
OPENUNI_L = {
    "vision": {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "image_size": [448, 448],
        "patch_size": [14, 14],
    },
    "text": {
        "vocab_size": 151674,
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "rope_theta": 1e6,
        "tie_word_embeddings": False,
    },
    "sana": {
        "in_channels": 32,
        "out_channels": 32,
        "num_attention_heads": 70,
        "attention_head_dim": 32,
        "num_layers": 20,
        "num_cross_attention_heads": 20,
        "cross_attention_head_dim": 112,
        "cross_attention_dim": 2240,
        "caption_channels": 2304,
        "mlp_ratio": 2.5,
        "sample_size": 16,
        "patch_size": 1,
        "norm_elementwise_affine": False,
        "norm_eps": 1e-6,
    },
    "dc_ae": {
        "latent_channels": 32,
        "encoder_block_types": ("ResBlock",) * 3 + ("EfficientViTBlock",) * 3,
        "decoder_block_types": ("ResBlock",) * 3 + ("EfficientViTBlock",) * 3,
        "upsample_block_type": "interpolate",
        "downsample_block_type": "Conv",
        "scaling_factor": 0.41407,
    },
}
OPENUNI_PROMPT = "a red circle on the left of a blue square"


def build_openuni(size: str, device: torch.device, dtype: torch.dtype):
    """OpenUni-L ("l") or the tiny OpenUni ("tiny") with random weights, created on `device` in
    `dtype` -> (model, tokenizer). The L build reads prompts with the tiny tokenizer (a few hundred
    ids of the full vocabulary): its sequence lengths are those of the real prompts' order."""
    from recakit.models.openuni import IMAGE_CONTEXT, OpenUniModel, _tiny_tokenizer, connector_config, tiny_openuni

    if size == "tiny":
        model, tokenizer = tiny_openuni(seed=0)
        return model.to(device=device, dtype=dtype).eval(), tokenizer
    from diffusers import (
        AutoencoderDC,
        DPMSolverMultistepScheduler,
        FlowMatchEulerDiscreteScheduler,
        SanaTransformer2DModel,
    )
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLVisionConfig, Qwen2Config

    tokenizer = _tiny_tokenizer(320)
    config = InternVLConfig(
        vision_config=InternVLVisionConfig(**OPENUNI_L["vision"]),
        text_config=Qwen2Config(**OPENUNI_L["text"], pad_token_id=tokenizer.pad_token_id),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_CONTEXT),
        image_seq_length=256,
        tie_word_embeddings=False,
    )
    # the schedulers hold small CPU tensors: made outside the device context
    train_scheduler = FlowMatchEulerDiscreteScheduler()
    test_scheduler = DPMSolverMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )
    torch.manual_seed(0)
    with torch.device(device), default_dtype(dtype):
        model = OpenUniModel(
            InternVLForConditionalGeneration(config),
            SanaTransformer2DModel(**OPENUNI_L["sana"]),
            AutoencoderDC(**OPENUNI_L["dc_ae"]),
            train_scheduler,
            test_scheduler,
            connector_config(1536, 8960, 24),
            num_queries=256,
            image_size=512,
            vit_size=448,
        )
    return model.to(device=device, dtype=dtype).eval(), tokenizer


def random_images(count: int, side: int, seed: int):
    from PIL import Image

    generator = torch.Generator().manual_seed(seed)
    return [
        Image.fromarray(torch.randint(0, 256, (side, side, 3), generator=generator, dtype=torch.uint8).numpy())
        for _ in range(count)
    ]


def openuni_reca_step(model, tokenizer, preset, images, device, repeats: int) -> dict:
    """Optimizer steps of `preset` over `images` in its micro-batches, through recakit.reca_loss
    (bf16 autocast on a GPU over the preset's float32 weights, as `recakit train` runs it): one
    untimed step, whose loss is that of the initial weights, then `repeats` timed ones."""
    from recakit.objective import freeze_for_reca, reca_loss

    counts = freeze_for_reca(model)
    preset.prepare_model(model)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = preset.make_optimizer(trainable)
    seeds = list(range(len(images)))

    def one_step():
        total = 0.0
        for start in range(0, len(images), preset.micro_batch):
            chunk = slice(start, start + preset.micro_batch)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = reca_loss(model, tokenizer, images[chunk], sample_seeds=seeds[chunk], instruction_dropout=0.0)
            share = len(images[chunk]) / len(images)
            (loss * share).backward()
            total += loss.detach().float() * share
        if preset.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(trainable, preset.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(total)

    first_loss = one_step()
    start_peak(device)
    seconds = [timed(one_step, device)[0] for _ in range(repeats)]
    name = type(optimizer).__name__ + (" (fused)" if optimizer.defaults.get("fused") else "")
    return {
        "preset": preset.name,
        "optimizer": name,
        "images": len(images),
        "micro_batch": preset.micro_batch,
        "side": model.image_size,
        "step_s": round(sorted(seconds)[len(seconds) // 2], 4),
        "peak_gib": peak_gib(device),
        "first_loss": round(first_loss, 6),
        "trainable": counts["trainable"],
        "frozen": counts["frozen"],
        "budget_gib": preset.memory_budget_gib,
    }


def openuni_section(args, device, dtype, out: dict) -> None:
    """One RecA step of OpenUni-L under the 80 GB preset and one 512 px image at 20 steps."""
    import hashlib

    import numpy as np

    from recakit.memory_presets import get_preset
    from recakit.sampling import generate_images

    try:
        import diffusers  # noqa: F401
    except ImportError as error:
        for key in OPENUNI_KEYS:
            out["reasons"][key] = f"diffusers cannot be imported ({error})"
        return
    size = "tiny" if args.tiny else "l"
    details = out["details"].setdefault("openuni", {"model_size": size})
    preset = get_preset("openuni-l-reca-80gb")
    if device.type != "cuda":
        for key in ("openuni_l_reca_peak_gib", "openuni_l_image_peak_gib"):
            out["reasons"][key] = "peak GPU memory needs CUDA; on the CPU the step runs for the code path only"
    try:
        model, tokenizer = build_openuni(size, device, preset.torch_dtype)
        images = random_images(preset.micro_batch * args.preset_micro_steps, model.image_size, 3)
        start_peak(device)
        figures = openuni_reca_step(model, tokenizer, preset, images, device, args.repeats)
        details["reca"] = figures
        out["openuni_l_reca_step_s"], out["openuni_l_reca_peak_gib"] = figures["step_s"], figures["peak_gib"]
    except Exception as error:  # noqa: BLE001 -- the sampling figure is still worth having
        details["reca"] = {"error": repr(error), "traceback": traceback.format_exc()[-2000:]}
        out["reasons"]["openuni_l_reca_step_s"] = f"failed: {error!r}"
    model = tokenizer = None
    release()
    try:
        # inference weights in the run's dtype (bf16 on a GPU), as load_model gives them
        model, tokenizer = build_openuni(size, device, dtype)
        options = {"cfg_scale": 4.5, "steps": 20, "progress": False}
        generate_images(model, tokenizer, [OPENUNI_PROMPT], seed=[1], **{**options, "steps": 2})  # warm-up
        start_peak(device)
        seconds, sampled = timed(
            lambda: generate_images(model, tokenizer, [OPENUNI_PROMPT], seed=[0], **options), device
        )
        pixels = np.asarray(sampled[0])
        details["sample"] = {
            **options,
            "prompt": OPENUNI_PROMPT,
            "seed": 0,
            "side": sampled[0].size[0],
            "s_per_image": round(seconds, 4),
            "peak_gib": peak_gib(device),
            "sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
        }
        out["openuni_l_image_s"], out["openuni_l_image_peak_gib"] = details["sample"]["s_per_image"], peak_gib(device)
    except Exception as error:  # noqa: BLE001
        details["sample"] = {"error": repr(error), "traceback": traceback.format_exc()[-2000:]}
        out["reasons"]["openuni_l_image_s"] = f"failed: {error!r}"
    model = tokenizer = None
    release()


# -- the run ------------------------------------------------------------------------------------

SECTIONS = {
    "sampling": sampling_section,
    "quantized": quantized_section,
    "train": train_section,
    "presets": presets_section,
    "openuni": openuni_section,
}


def write(out: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(out, indent=1) + "\n")
    partial.replace(path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="the tiny Janus on whatever device is present (seconds on a CPU; checks the code)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="result JSON (default benchmarks/results/gpu_<device>_<time>.json)"
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}"
    )
    parser.add_argument("--device", default=None, help="default cuda if available, else cpu")
    parser.add_argument("--sample-batches", default="1,16", help="sampling batch sizes")
    parser.add_argument(
        "--sample-modes",
        default=None,
        help="fast sampler modes to time (default graph on CUDA, eager on CPU; compile is opt-in)",
    )
    parser.add_argument(
        "--train-batch", type=int, default=None, help="images per training step, both paths (default 8; tiny 4)"
    )
    parser.add_argument(
        "--no-train-compile",
        dest="train_compile",
        action="store_false",
        help="leave the decoder layers uncompiled on the fast training path",
    )
    parser.add_argument("--warmup", type=int, default=None, help="untimed training steps (default 3; tiny 1)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed training steps, median reported (default 5; tiny 1)"
    )
    parser.add_argument(
        "--preset-micro-steps",
        type=int,
        default=None,
        help="micro-batches per optimizer step in the preset memory runs (default 2; tiny 1)",
    )
    parser.add_argument(
        "--quant-tokens", type=int, default=None, help="image tokens timed per quantized model (default 48; tiny 4)"
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    import transformers

    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = device.type == "cuda"
    dtype = torch.bfloat16 if gpu else torch.float32
    args.size, args.large_size = ("tiny", "tiny-large") if args.tiny else ("1b", "7b")
    args.sample_batches = [int(b) for b in args.sample_batches.split(",")]
    # compiling on the CPU costs minutes and measures nothing the GPU run needs
    args.train_compile = args.train_compile and gpu
    args.sample_modes = (args.sample_modes or ("graph" if gpu else "eager")).split(",")
    # the tiny run checks the code, so it does each thing as few times as that needs
    for name, full, tiny in (
        ("warmup", 3, 1),
        ("repeats", 5, 1),
        ("train_batch", 8, 4),
        ("preset_micro_steps", 2, 1),
        ("quant_tokens", 48, 4),
    ):
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.tiny else full)
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        label = "tiny" if args.tiny else device_name(device).replace(" ", "_")
        args.out = Path(__file__).parent / "results" / f"gpu_{label}_{stamp}.json"
    try:
        import bitsandbytes

        bnb_version = bitsandbytes.__version__
    except ImportError:
        bnb_version = None

    out = {key: None for key in REQUIRED_KEYS}
    out.update(
        device=device_name(device),
        torch=torch.__version__,
        transformers=transformers.__version__,
        bitsandbytes=bnb_version,
        model_size=args.size,
        dtype=str(dtype).replace("torch.", ""),
        sections=sections,
        reasons={},
        details={},
    )
    for key in REQUIRED_KEYS[3:]:
        out["reasons"][key] = "section not run"
    section_keys = {
        "sampling": ("sampling_speedup_b1", "sampling_speedup_b16"),
        "train": ("train_speedup", "train_mfu"),
        "presets": ("full_ft_1b_peak_gib", "qlora_7b_peak_gib"),
        "quantized": ("nf4_gib", "int8_gib", "bf16_gib"),
        "openuni": OPENUNI_KEYS,
    }
    for name in sections:
        for key in section_keys[name]:
            out["reasons"].pop(key, None)
        print(f"[gpu.py] {name} ...", flush=True)
        started = time.perf_counter()
        try:
            SECTIONS[name](args, device, dtype, out)
        except Exception as error:  # noqa: BLE001 -- keep the other sections' figures
            out["details"][f"{name}_error"] = traceback.format_exc()[-3000:]
            for key in section_keys[name]:
                if out[key] is None:
                    out["reasons"].setdefault(key, f"section {name} failed: {error!r}")
        out["details"].setdefault("section_s", {})[name] = round(time.perf_counter() - started, 1)
        for key in section_keys[name]:
            if out[key] is None:
                out["reasons"].setdefault(key, f"not measured on {device.type}")
        write(out, args.out)
        print(
            f"[gpu.py] {name} done in {out['details']['section_s'][name]} s: "
            + ", ".join(f"{key}={out[key]}" for key in section_keys[name]),
            flush=True,
        )
    print(f"[gpu.py] wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
    sys.exit(main())
