"""`recakit train`: RecA post-training on a folder of unlabeled images."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch

from recakit.images import image_files, read_pairs
from recakit.lora import add_lora, default_lora_targets, enable_gradient_checkpointing
from recakit.objective import freeze_for_reca, reca_loss_fn
from recakit.training import SCHEDULES, distributed_state, train


def add_train_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="RecA post-training on a folder of unlabeled images",
        description="RecA post-training: the model regenerates each image of --images from its "
        "own understanding embeddings. Several processes (GPUs, or CPU with gloo): "
        "`torchrun --nproc_per_node N -m recakit.commands.main train ...`. The optimizer defaults "
        "are Harmon's RecA recipe: AdamW, lr 1e-5, betas (0.9, 0.95), weight decay 0.02, "
        "1 % of the steps warmup then cosine decay, gradient clipping at 1.0.",
    )
    parser.add_argument("--model", required=True, help="'toy', a hub id or a local folder")
    parser.add_argument("--images", required=True, help="folder of training images (searched recursively)")
    parser.add_argument("--out", required=True, help="output folder: checkpoint/, history.jsonl, final/")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=8, help="global batch per optimizer step")
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument(
        "--lr",
        type=float,
        default=1e-5,
        help="default 1e-5 (Harmon); upstream full fine-tuning recipes use 1e-5 to 4e-5, LoRA usually wants more",
    )
    parser.add_argument(
        "--adam-betas",
        type=float,
        nargs=2,
        default=(0.9, 0.95),
        metavar=("BETA1", "BETA2"),
        help="AdamW betas (default 0.9 0.95, Harmon and BAGEL)",
    )
    parser.add_argument("--weight-decay", type=float, default=0.02, help="default 0.02 (Harmon)")
    parser.add_argument(
        "--warmup-steps", type=int, default=None, help="linear warmup steps (default 1 %% of --steps, Harmon)"
    )
    parser.add_argument("--schedule", choices=SCHEDULES, default="cosine", help="after the warmup (default cosine)")
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping (default 1.0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from OUT/checkpoint if present (default)",
    )
    parser.add_argument("--instruction-dropout", type=float, default=0.1)
    parser.add_argument(
        "--resolution", type=int, default=None, help="side the understanding encoder sees (the information bottleneck)"
    )
    parser.add_argument(
        "--i2t",
        default=None,
        metavar="PAIRS.jsonl",
        help="mix image-to-text in, one pair per RecA image: a JSON-lines file of "
        '{"image": PATH, "caption": TEXT} (paths relative to the file); what '
        "upstream does for models whose understanding and generation share "
        "parameters (Janus, Show-o, Harmon), so understanding is not forgotten",
    )
    parser.add_argument("--i2t-weight", type=float, default=1.0, help="weight of the image-to-text loss")
    parser.add_argument("--lora-r", type=int, default=None, help="train LoRA adapters of this rank")
    parser.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default 2 x rank)")
    parser.add_argument(
        "--lora-targets",
        default=None,
        help="comma-separated module names for LoRA (default: every linear layer RecA trains)",
    )
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass: less memory, more compute",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=("no", "bf16", "fp16"),
        default=None,
        help="default: bf16 on a GPU that supports it, else fp32",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--dtype",
        default=None,
        help="weights dtype (default float32, or the loader's choice when quantized); "
        "bfloat16 halves memory but loses small updates",
    )
    parser.add_argument(
        "--quantization", default=None, help="nf4 or int8; needs --lora-r, since quantized weights cannot be trained"
    )
    parser.set_defaults(run=run_train_command)


def run_train_command(args) -> int:
    from recakit.registry import adapter_for, load_model

    if args.quantization and not args.lora_r:
        raise ValueError("quantized weights cannot be trained: add --lora-r (e.g. 16) to train LoRA adapters")
    images = image_files(args.images)
    i2t_pairs = read_pairs(args.i2t) if args.i2t else None
    state = distributed_state()
    # Full fine-tuning keeps float32 weights under bf16 autocast by default: AdamW updates at RecA's
    # learning rates are mostly below bfloat16's resolution and would be rounded away.
    if args.dtype:
        dtype = getattr(torch, args.dtype)
    else:
        dtype = None if args.quantization else torch.float32
    model, processor = load_model(
        args.model, device=args.device or str(state.device), dtype=dtype, quantization=args.quantization
    )
    adapter = adapter_for(model, processor)
    if i2t_pairs and not adapter.shares_language_model:
        raise ValueError(
            f"--i2t would train nothing on {type(model).__name__}: its understanding side is frozen and "
            "shares no language model with its generator"
        )
    if not i2t_pairs and adapter.shares_language_model and state.is_main_process:
        warnings.warn(
            f"{type(model).__name__} understands and generates with one language model, so RecA "
            "alone lets its image-to-text ability drift; upstream mixes image-to-text pairs in 1:1 "
            "for such models. Pass --i2t PAIRS.jsonl to do the same.",
            stacklevel=2,
        )
    freeze_for_reca(model)
    model.train()  # the frozen encoder and tokenizer stay in eval: freeze_for_reca pins them
    if args.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if args.lora_r:
        targets = args.lora_targets.split(",") if args.lora_targets else default_lora_targets(model)
        model = add_lora(
            model, {"r": args.lora_r, "lora_alpha": args.lora_alpha or 2 * args.lora_r, "target_modules": targets}
        )
    out = Path(args.out)
    loss_fn = reca_loss_fn(
        processor,
        instruction_dropout=args.instruction_dropout,
        resolution=args.resolution,
        i2t_pairs=i2t_pairs,
        i2t_weight=args.i2t_weight,
    )
    history = train(
        model,
        loss_fn,
        images,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        betas=tuple(args.adam_betas),
        grad_accum=args.grad_accum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        warmup_steps=round(args.steps / 100) if args.warmup_steps is None else args.warmup_steps,
        max_grad_norm=args.max_grad_norm,
        seed=args.seed,
        out_dir=out,
        save_every=args.save_every,
        resume=args.resume,
        mixed_precision=args.mixed_precision,
    )
    if state.is_main_process:
        _save_final(model, processor, out / "final", lora=bool(args.lora_r), quantized=bool(args.quantization))
        last = f", last loss {history[-1]['loss']:.4f}" if history else ""
        mixed = f" (+ image-to-text from {len(i2t_pairs)} pairs)" if i2t_pairs else ""
        print(f"trained {args.steps} steps on {len(images)} images{mixed}{last}; saved to {out / 'final'}")
    state.wait_for_everyone()
    return 0


def _save_final(model, processor, final: Path, lora: bool, quantized: bool) -> None:
    """The trained model in a folder `load_model` reads; LoRA adapters are also kept on their own
    and merged into the weights, except into quantized weights (merging there loses precision)."""
    if lora:
        model.save_pretrained(final / "adapter")
        if quantized:
            return
        model = model.merge_and_unload()
    model.save_pretrained(final)
    if processor is not None and hasattr(processor, "save_pretrained"):
        processor.save_pretrained(final)
