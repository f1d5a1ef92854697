"""`recakit dpg prompts | sample | score`: DPG-Bench from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from recakit.bench.dpg import (
    DEFAULT_VQA,
    DPG_CSV_URL,
    BlipVQA,
    DPGItem,
    load_items,
    question_csv,
    sample_items,
    score_folder,
)
from recakit.bench.runs import sha256_of
from recakit.commands.geneval import FAST_HELP


def _items_from_args(args) -> dict[str, DPGItem]:
    items = load_items(args.csv, args.prompts_dir)
    if getattr(args, "limit", None) is not None:
        items = dict(list(items.items())[: args.limit])
    return items


def _source(args) -> dict:
    path = question_csv(args.csv)
    return {"csv": str(args.csv) if args.csv else DPG_CSV_URL, "csv_sha256": sha256_of(path)}


def _run_prompts(args) -> int:
    items = _items_from_args(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for item in items.values():
            handle.write(
                json.dumps({"item_id": item.item_id, "prompt": item.prompt, "n_questions": len(item.questions)}) + "\n"
            )
    print(f"wrote {len(items)} DPG-Bench prompts to {out}")
    return 0


def _run_sample(args) -> int:
    items = _items_from_args(args)
    from recakit.registry import load_model

    model, processor = load_model(args.model, device=args.device)
    drawn = sample_items(
        model,
        processor,
        items,
        args.out,
        n_per_prompt=args.n_per_prompt,
        seed=args.seed,
        batch_size=args.batch_size,
        cfg_scale=args.cfg_scale,
        rewrite=args.rewrite,
        run_info=dict(_source(args), model=args.model, limit=args.limit),
        fast=args.fast,
    )
    print(f"drew {drawn} prompts into {args.out}")
    return 0


def _run_score(args) -> int:
    items = _items_from_args(args)
    run_file = Path(args.folder) / "run.json"
    n_per_prompt = args.n_per_prompt or (json.loads(run_file.read_text())["n_per_prompt"] if run_file.exists() else 4)
    vqa = BlipVQA(args.vqa_model, device=args.device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = score_folder(
        args.folder, vqa, items, n_per_prompt=n_per_prompt, results_path=out.with_name(out.stem + ".prompts.jsonl")
    )
    summary.update(_source(args), vqa_model=args.vqa_model, comparable_with_paper=False)  # the paper used mPLUG-large
    out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    for name, value in summary["categories"].items():
        print(f"{name:<12}{value:>8.2f}")
    print(
        f"{'DPG':<12}{summary['dpg']:>8.2f}  ({summary['n_prompts']} prompts, {summary['n_images']} images, "
        f"VQA {args.vqa_model}; {len(summary['missing'])} prompts without images)"
    )
    return 0


def add_commands(subparsers) -> None:
    dpg = subparsers.add_parser("dpg", help="DPG-Bench prompts, sampling and VQA scoring")
    commands = dpg.add_subparsers(dest="dpg_command", required=True, metavar="STEP")

    def data_options(parser):
        parser.add_argument("--csv", default=None, help=f"local question CSV (default: downloaded from {DPG_CSV_URL})")
        parser.add_argument("--prompts-dir", default=None, help="the reference's prompts/ folder, to take prompts from")

    prompts = commands.add_parser("prompts", help="write the DPG-Bench prompts as jsonl")
    data_options(prompts)
    prompts.add_argument("--out", required=True)
    prompts.set_defaults(run=_run_prompts)

    sample = commands.add_parser("sample", help="draw a 2x2 grid of images per DPG-Bench prompt")
    data_options(sample)
    sample.add_argument("--model", required=True, help="model id or path, or 'toy'")
    sample.add_argument("--out", required=True, help="output folder (resumed when it exists)")
    sample.add_argument("--n-per-prompt", type=int, default=4)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--batch-size", type=int, default=8)
    sample.add_argument("--cfg-scale", type=float, default=None)
    sample.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    sample.add_argument("--rewrite", default=None, help='prompt template, e.g. "Generate an image: {prompt}"')
    sample.add_argument("--device", default=None)
    sample.add_argument("--fast", action="store_true", help=FAST_HELP)
    sample.set_defaults(run=_run_sample)

    score = commands.add_parser("score", help="score a folder of DPG-Bench grids with a VQA model")
    data_options(score)
    score.add_argument("folder")
    score.add_argument("--out", required=True, help="summary .json; per-prompt answers go beside it")
    score.add_argument("--vqa-model", default=DEFAULT_VQA, help="a BLIP VQA checkpoint")
    score.add_argument("--n-per-prompt", type=int, default=None, help="default: from the folder's run.json, else 4")
    score.add_argument("--limit", type=int, default=None)
    score.add_argument("--device", default=None)
    score.set_defaults(run=_run_score)
