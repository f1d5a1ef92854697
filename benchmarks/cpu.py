"""Time the core loops on the tiny offline Janus on this CPU.

Measures one RecA training step (forward + backward + AdamW) and the generation of one image and
of a batch of four (classifier-free guidance on, so the batch holds twice as many rows). The
numbers say what the tutorial's CPU cells cost; they say nothing about GPU speed at real size
(see the GPU anchors in the project notes for that).

    python benchmarks/cpu.py --out runs/cpu_benchmark.json
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from recakit.models.janus import tiny_janus
from recakit.objective import freeze_for_reca, reca_loss
from recakit.sampling import generate_images


def square_image(index: int, side: int) -> Image.Image:
    image = Image.new("RGB", (side, side), (160, 160, 160))
    left = (index * 5) % (side // 2)
    ImageDraw.Draw(image).rectangle(
        (left, left, left + side // 2, left + side // 2), fill=((60 * index) % 256, 90, 200)
    )
    return image


def timed(function, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        function()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON results")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per measurement")
    parser.add_argument("--train-batch", type=int, default=4, help="images per RecA step")
    parser.add_argument("--cfg-scale", type=float, default=5.0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model, processor = tiny_janus(seed=0)
    side = model.config.vision_config.image_size
    images = [square_image(i, side) for i in range(args.train_batch)]
    counts = freeze_for_reca(model)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def train_step():
        loss = reca_loss(model, processor, images, sample_seeds=list(range(len(images))))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step_times = timed(train_step, args.repeats)
    model.eval()
    prompts = ["a red circle", "two blue squares", "a yellow star above a green cross", "a photo of a dog"]
    one_times = timed(
        lambda: generate_images(model, processor, prompts[:1], cfg_scale=args.cfg_scale, progress=False), args.repeats
    )
    four_times = timed(
        lambda: generate_images(model, processor, prompts, cfg_scale=args.cfg_scale, batch_size=4, progress=False),
        args.repeats,
    )

    tokens = model.config.vq_config.num_patches**2
    rows = [
        ("RecA train step", f"batch {args.train_batch}", statistics.median(step_times)),
        ("generate 1 image", f"cfg {args.cfg_scale}, {tokens} tokens", statistics.median(one_times)),
        ("generate 4 images", f"one batch, cfg {args.cfg_scale}", statistics.median(four_times)),
    ]
    print(
        f"tiny Janus ({counts['trainable']:,} trainable / {counts['frozen']:,} frozen parameters), "
        f"{args.threads} thread(s), median of {args.repeats}"
    )
    print(f"{'measurement':<20} {'setting':<28} {'seconds':>9}")
    for name, setting, seconds in rows:
        print(f"{name:<20} {setting:<28} {seconds:>9.4f}")

    result = {
        "model": "tiny_janus(seed=0)",
        "parameters": counts,
        "image_size": side,
        "image_tokens": tokens,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "train_step_s": {"batch": args.train_batch, "median": statistics.median(step_times), "all": step_times},
        "generate_1_s": {"cfg_scale": args.cfg_scale, "median": statistics.median(one_times), "all": one_times},
        "generate_4_s": {"cfg_scale": args.cfg_scale, "median": statistics.median(four_times), "all": four_times},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
