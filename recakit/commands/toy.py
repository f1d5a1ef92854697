"""`recakit shapes render`, `recakit toy train-base` and `recakit reproduce --preset toy`: the
ShapesWorld toy from the command line."""

from __future__ import annotations

from pathlib import Path

import torch

from recakit.bench.geneval import MINI_METADATA
from recakit.toy.reproduce import FULL, reproduce_toy
from recakit.toy.shapes import render_metadata
from recakit.toy.train_base import SHAPE_CHECK_FLOOR, STAGE1_ATTEMPTS, train_base


def _run_render(args) -> int:
    count = render_metadata(args.metadata, args.out, n_per_prompt=args.n_per_prompt, size=args.size, seed=args.seed)
    print(f"wrote ground truth for {count} prompts to {args.out}")
    return 0


def add_shapes_commands(subparsers) -> None:
    group = subparsers.add_parser("shapes", help="ShapesWorld toy images")
    commands = group.add_subparsers(dest="shapes_command", required=True, metavar="COMMAND")
    render_parser = commands.add_parser(
        "render", help="ground-truth images for GenEval metadata (a perfect model's upper bound)"
    )
    render_parser.add_argument(
        "--metadata",
        default=str(MINI_METADATA),
        help="GenEval-format metadata .jsonl (default: the shipped GenEval-mini)",
    )
    render_parser.add_argument("--out", required=True, help="output folder (GenEval layout)")
    render_parser.add_argument("--n-per-prompt", type=int, default=4)
    render_parser.add_argument("--size", type=int, default=64)
    render_parser.add_argument("--seed", type=int, default=0)
    render_parser.set_defaults(run=_run_render)


def _run_train_base(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    _, _, progress = train_base(args.out, seed=args.seed, quick=args.quick, stage1_attempts=args.stage1_attempts)
    print(f"toy base in {args.out}; seconds per stage: {progress['seconds']}")
    # folders whose stage 1 was trained before the check existed have none
    checks = progress.get("shape_checks") or ([progress["shape_check"]] if "shape_check" in progress else [])
    for attempt, check in enumerate(checks, 1):
        print(
            f"stage 1, attempt {attempt}: captions from image query states name a lone object's shape for "
            f"{check['shape'] * 100:.0f} % of unseen scenes, its colour for {check['colour'] * 100:.0f} % "
            "(the shipped base: 100 %, 100 %)"
        )
    if checks and checks[-1]["shape"] < SHAPE_CHECK_FLOOR and not args.quick:
        print(
            f"warning: no stage 1 kept shape in {len(checks)} attempts; RecA did not gain on a base like "
            "this (docs/toy_study.md). Another --seed may do better."
        )
    return 0


def add_toy_commands(subparsers) -> None:
    toy = subparsers.add_parser("toy", help="the ShapesWorld toy unified model")
    commands = toy.add_subparsers(dest="toy_command", required=True, metavar="TOY_COMMAND")
    parser = commands.add_parser(
        "train-base",
        help="train a toy base of the shipped design from scratch "
        "(CPU: 18 minutes on two cores, 9 more per stage 1 retried)",
    )
    parser.add_argument("--out", required=True, help="folder for the model (resumes if it holds a partial run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few steps per stage: checks the wiring only")
    parser.add_argument(
        "--stage1-attempts",
        type=int,
        default=STAGE1_ATTEMPTS,
        help="train stage 1 again from another random start, up to this many times in all, "
        "while its image query states lose shape (each attempt: about 9 minutes)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.set_defaults(run=_run_train_base)


def _run_reproduce(args) -> int:
    if args.preset != "toy":
        raise ValueError(f"unknown preset {args.preset!r}; available: toy")
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {"steps": args.steps} if args.steps else None
    results = reproduce_toy(args.out, seeds=args.seeds, quick=args.quick, base_path=args.base, settings=settings)
    print((Path(args.out) / "results.md").read_text())
    return 0 if results["reca"]["overall"] is not None else 1


def add_reproduce_commands(subparsers) -> None:
    parser = subparsers.add_parser("reproduce", help="reproduce RecA's GenEval gain on the ShapesWorld toy (CPU)")
    parser.add_argument(
        "--preset", default="toy", choices=["toy"], help="which reproduction (only the toy runs on a CPU)"
    )
    parser.add_argument("--out", required=True, help="output folder (rerunning resumes)")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds 0..N-1 (results report mean ± std)")
    parser.add_argument("--quick", action="store_true", help="a few steps and prompts: checks that everything runs")
    parser.add_argument("--steps", type=int, default=None, help=f"training steps of each arm (default {FULL['steps']})")
    parser.add_argument("--base", default=None, help="a toy base folder (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.set_defaults(run=_run_reproduce)
