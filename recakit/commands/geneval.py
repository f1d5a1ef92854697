"""`recakit geneval prompts | sample | score | agree`: GenEval from the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

from recakit.bench.geneval import TASKS, agreement, format_summary, load_prompts, sample_prompts, score_folder
from recakit.bench.scorers import SCORERS, make_detector

FAST_HELP = (
    "the static-cache sampler (recakit.fast): a captured CUDA graph on GPUs, about 3x faster "
    "(H200, Janus-Pro-1B size); in bf16 its random draws differ from the plain loop's"
)


def _run_prompts(args) -> int:
    entries = load_prompts(args.set)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry) + "\n")
    counts = {task: sum(entry["tag"] == task for entry in entries) for task in TASKS}
    print(f"wrote {len(entries)} prompts to {out}: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    return 0


def _parse_shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match:
        raise ValueError(f"--shard takes K/N, e.g. 0/4, not {text!r}")
    return int(match.group(1)), int(match.group(2))


def _run_sample(args) -> int:
    entries = load_prompts(args.set)
    if args.limit is not None:
        entries = entries[: args.limit]
    from recakit.registry import load_model

    model, processor = load_model(args.model, device=args.device)
    drawn = sample_prompts(
        model,
        processor,
        entries,
        args.out,
        n_per_prompt=args.n_per_prompt,
        seed=args.seed,
        batch_size=args.batch_size,
        cfg_scale=args.cfg_scale,
        rewrite=args.rewrite,
        run_info={"model": args.model, "set": args.set, "limit": args.limit},
        shard=_parse_shard(args.shard),
        fast=args.fast,
    )
    print(f"drew {drawn} images into {args.out}")
    return 0


def _run_score(args) -> int:
    options = {}
    if args.scorer == "mask2former":
        given = {"model_id": args.detector_model, "clip_id": args.clip_model, "device": args.device}
        options = {"batch_size": args.batch_size, **{key: value for key, value in given.items() if value}}
    elif args.device:
        raise ValueError("--device applies to the mask2former scorer only")
    detector = make_detector(args.scorer, **options)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    images_path = out.with_name(out.stem + ".images.jsonl")
    summary = score_folder(args.folder, detector, batch_size=args.batch_size, results_path=images_path)
    summary["scorer"] = args.scorer
    out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(format_summary(summary))
    print(f"wrote {out} (per image: {images_path})")
    return 0


def _run_agree(args) -> int:
    result = agreement(args.ours, args.theirs, resamples=args.resamples, seed=args.seed)
    print(
        f"{'task':<15}{'images':>7}{'agree':>7}{'kappa':>7}{'ours':>7}{'theirs':>7}{'ours only':>10}"
        f"{'theirs only':>12}   ours - theirs [95 % interval]"
    )
    rows = [
        (task, result["tasks"][task], result["ours"]["tasks"][task], result["theirs"]["tasks"][task])
        for task in TASKS
        if task in result["tasks"]
    ]
    rows.append(("overall", result["overall"], result["ours"]["overall"], result["theirs"]["overall"]))
    for name, figures, ours_score, theirs_score in rows:
        kappa = "-" if figures["kappa"] is None else f"{figures['kappa']:.2f}"
        low, high = figures["difference_95"]
        print(
            f"{name:<15}{figures['n']:>7}{100 * figures['agree']:>7.1f}{kappa:>7}{100 * ours_score:>7.1f}"
            f"{100 * theirs_score:>7.1f}{figures['ours_only']:>10}{figures['theirs_only']:>12}   "
            f"{100 * figures['difference']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"
        )
    print(f"(scores x100; intervals from {result['resamples']} bootstrap draws, seed {result['seed']})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


def add_commands(subparsers) -> None:
    geneval = subparsers.add_parser("geneval", help="GenEval prompts, sampling and scoring")
    commands = geneval.add_subparsers(dest="geneval_command", required=True, metavar="STEP")

    prompts = commands.add_parser("prompts", help="write the GenEval metadata lines of a prompt set")
    prompts.add_argument("--set", default="official", help="official (553, downloaded once), mini, or a .jsonl path")
    prompts.add_argument("--out", required=True, help="output .jsonl file")
    prompts.set_defaults(run=_run_prompts)

    sample = commands.add_parser("sample", help="draw images for GenEval prompts (official folder layout)")
    sample.add_argument("--model", required=True, help="model id or path, or 'toy'")
    sample.add_argument("--set", default="official", help="official, mini, or a .jsonl path")
    sample.add_argument("--n-per-prompt", type=int, default=4)
    sample.add_argument("--out", required=True, help="output folder (resumed when it exists)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--batch-size", type=int, default=8)
    sample.add_argument("--cfg-scale", type=float, default=None, help="default: the sampler's own")
    sample.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    sample.add_argument("--rewrite", default=None, help='prompt template, e.g. "Generate an image: {prompt}"')
    sample.add_argument("--shard", default="0/1", help="K/N: only prompts K, K+N, ... (one process per GPU)")
    sample.add_argument("--fast", action="store_true", help=FAST_HELP)
    sample.add_argument("--device", default=None)
    sample.set_defaults(run=_run_sample)

    score = commands.add_parser("score", help="judge a folder of GenEval samples")
    score.add_argument("folder")
    score.add_argument("--scorer", default="mask2former", choices=sorted(SCORERS))
    score.add_argument("--out", required=True, help="summary .json; per-image results go beside it")
    score.add_argument("--batch-size", type=int, default=16)
    score.add_argument("--device", default=None, help="mask2former only; default: cuda when available")
    score.add_argument(
        "--detector-model",
        default=None,
        help="mask2former only: checkpoint id or local folder (default facebook/mask2former-swin-small-coco-instance)",
    )
    score.add_argument(
        "--clip-model",
        default=None,
        help="mask2former only: CLIP checkpoint id or local folder (default openai/clip-vit-large-patch14)",
    )
    score.set_defaults(run=_run_score)

    agree = commands.add_parser("agree", help="how two scorers' per-image verdicts compare, per task")
    agree.add_argument("ours", help="per-image results of recakit (the .images.jsonl beside a score)")
    agree.add_argument("theirs", help="per-image results of another scorer, e.g. the official results.jsonl")
    agree.add_argument("--resamples", type=int, default=2000, help="bootstrap draws for the 95 %% intervals")
    agree.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws")
    agree.add_argument("--out", default=None, help="also write every figure to this .json")
    agree.set_defaults(run=_run_agree)
