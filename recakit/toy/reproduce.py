"""RecA's headline experiment, end to end, on a CPU (`recakit reproduce --preset toy`, in `recakit.commands.toy`).

From the shipped ShapesWorld toy base (`recakit.toy.model.load_toy`), for each seed:
1. train two arms at the same compute (same steps, same number of images per step):
   - `reca`: part of each batch (`reca_share`, half by default) is unlabeled images trained with
     the RecA loss (the query states of the image, seen at `reca_resolution` px -> regenerate it
     at full size), the rest sparse text-to-image, mixed through
     `recakit.objective.reca_loss(..., t2i=...)`;
   - `control`: continued training on sparse text-to-image only;
2. sample every GenEval-mini prompt from base, control and RecA with the same fixed seeds
   (`recakit.bench.geneval.sample_prompts`, i.e. `recakit.sampling.generate_images`);
3. score the images with the GenEval rules and the exact ShapesWorld detector.

Everything is written under `--out`, and every step resumes: training checkpoints through
`recakit.training.train`, samples and scores through `recakit.bench.geneval`. Each trained arm is saved
as a toy model folder (`seed{N}/{arm}_model`, what `load_model` reads; seed 0's are shipped as
"toy-reca" and "toy-control") and scored from that folder. Outputs:
`results.json` (per arm: overall and per-task scores, mean and std over seeds, per-seed values),
`results.md` (the same as a table, with RecA's published per-task gains beside ours) and
`samples.png` (base vs RecA for the same prompts and seeds).
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from pathlib import Path

import torch

from recakit.bench import geneval
from recakit.bench.report import published_gains
from recakit.objective import reca_loss, text_dropout, text_to_image_loss
from recakit.toy.detect import ShapesDetector
from recakit.toy.model import load_toy
from recakit.toy.shapes import scene_dataset
from recakit.toy.train_base import SPARSE_DROP, UNCONDITIONAL_RATE
from recakit.training import train

ARMS = ("base", "control", "reca")

# The full run: sized so one seed takes at most ten minutes on two CPU cores. Fewer RecA steps
# stop before the generator learns to read image states (docs/toy_study.md). RecA's images reach
# the understanding encoder at 32 px, the information bottleneck upstream advises.
FULL = dict(
    steps=600,
    batch_size=32,
    lr=2e-3,
    warmup_steps=10,
    n_per_prompt=2,
    cfg_scale=3.0,
    prompts_per_task=None,
    reca_share=0.5,
    reca_resolution=32,
)
# A wiring check that finishes in seconds: a couple of steps and one prompt per task.
QUICK = dict(
    steps=2,
    batch_size=4,
    lr=3e-4,
    warmup_steps=0,
    n_per_prompt=1,
    cfg_scale=3.0,
    prompts_per_task=1,
    reca_share=0.5,
    reca_resolution=32,
)

# Training images for the arms come from scenes the base never saw.
ARM_DATA_SEED = 1000
SAMPLE_SEED = 0


# -- the two arms ------------------------------------------------------------------------------
def arm_loss(arm: str, processor, reca_share: float = 0.5, reca_resolution: int | None = None):
    """`loss_fn(model, examples, sample_seeds)` for `recakit.training.train`; examples are
    ShapesWorld examples (image + sparse caption), and the loss is a mean over them. In the RecA
    arm the first `reca_share` of each batch are unlabeled images, which the understanding encoder
    sees at `reca_resolution` px (None: full size), the rest sparse text-to-image."""
    if not 0 < reca_share <= 1:
        raise ValueError(f"reca_share is the unlabeled part of a batch, in (0, 1]; got {reca_share}")

    def control(model, examples, seeds):
        # sparse text-to-image, the base's own task; each row's null-condition draw hangs off its seed
        captions = [e.sparse for e in examples]
        drop = text_dropout(len(captions), UNCONDITIONAL_RATE, seeds)
        return text_to_image_loss(model, processor, [e.image for e in examples], captions, drop)

    def reca(model, examples, seeds):
        n_unlabeled = max(1, round(len(examples) * reca_share))
        unlabeled, captioned = examples[:n_unlabeled], examples[n_unlabeled:]
        # RecA sees only the pixels of its part; reca_loss adds the text-to-image part.
        loss = reca_loss(
            model,
            processor,
            [e.image for e in unlabeled],
            sample_seeds=seeds[:n_unlabeled],
            instruction_dropout=UNCONDITIONAL_RATE,
            resolution=reca_resolution,
            t2i=([e.image for e in captioned], [e.sparse for e in captioned]) if captioned else None,
            t2i_weight=len(captioned) / n_unlabeled,
        )
        return loss * n_unlabeled / len(examples)

    return {"control": control, "reca": reca}[arm]


def train_arm(base, processor, arm: str, seed: int, settings: dict, out_dir: Path):
    model = copy.deepcopy(base)
    model.freeze_for_reca()
    model.train()
    # One epoch of steps x batch_size scenes: each is seen once. Cycling 2000 scenes ten times over,
    # both arms memorised them (docs/toy_study.md); and unlabeled images are what RecA never lacks.
    data = scene_dataset(settings["steps"] * settings["batch_size"], seed=ARM_DATA_SEED + seed, p_drop=SPARSE_DROP)
    loss_fn = arm_loss(arm, processor, settings["reca_share"], settings["reca_resolution"])
    history = train(
        model,
        loss_fn,
        data,
        steps=settings["steps"],
        batch_size=settings["batch_size"],
        lr=settings["lr"],
        warmup_steps=settings["warmup_steps"],
        weight_decay=0.0,
        seed=seed,
        out_dir=out_dir,
        mixed_precision="no",
        progress=True,
    )
    return model.eval(), history


# -- evaluation ----------------------------------------------------------------------------------
def evaluation_entries(prompts_per_task: int | None) -> list[dict]:
    entries = geneval.load_prompts("mini")
    if prompts_per_task is None:
        return entries
    kept, seen = [], {}
    for entry in entries:
        if seen.get(entry["tag"], 0) < prompts_per_task:
            kept.append(entry)
            seen[entry["tag"]] = seen.get(entry["tag"], 0) + 1
    return kept


def evaluate(model, processor, entries, folder: Path, settings: dict, detector) -> dict:
    geneval.sample_prompts(
        model,
        processor,
        entries,
        folder,
        n_per_prompt=settings["n_per_prompt"],
        seed=SAMPLE_SEED,
        batch_size=64,
        cfg_scale=settings["cfg_scale"],
        run_info={"model": "toy"},
    )
    summary = geneval.score_folder(folder, detector)
    return {"overall": summary["overall"], "tasks": summary["tasks"], "n_images": summary["n_images"]}


# -- aggregation and reports ---------------------------------------------------------------------
def aggregate(per_seed: list[dict]) -> dict:
    """Mean over seeds (and std when there are several), plus the per-seed values."""

    def spread(values):
        values = [v for v in values if v is not None]
        if not values:
            return None, None
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)

    overall, overall_std = spread([run["overall"] for run in per_seed])
    tasks, tasks_std = {}, {}
    for task in geneval.TASKS:
        tasks[task], tasks_std[task] = spread([run["tasks"][task] for run in per_seed])
    result = {"overall": overall, "tasks": tasks, "per_seed": per_seed}
    if len(per_seed) > 1:
        result["std"] = {"overall": overall_std, "tasks": tasks_std}
    return result


def _cell(value, std=None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def results_markdown(results: dict) -> str:
    seeds = results["seeds"]
    header = "| arm | " + " | ".join(geneval.TASKS) + " | overall |"
    lines = [
        f"# RecA on the ShapesWorld toy: GenEval-mini ({len(seeds)} seed{'s' * (len(seeds) > 1)}: "
        f"{', '.join(map(str, seeds))})",
        "",
        "Scores x100"
        + (", mean ± std over training seeds" if len(seeds) > 1 else "")
        + ". Every arm uses the same sampling seeds; the base is sampled once.",
        "",
        header,
        "|" + " --- |" * (len(geneval.TASKS) + 2),
    ]
    for arm in ARMS:
        row = results[arm]
        std = row.get("std", {"overall": None, "tasks": {}})
        cells = [_cell(row["tasks"][t], std["tasks"].get(t)) for t in geneval.TASKS]
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {_cell(row['overall'], std['overall'])} |")
    lines += [
        "",
        "Gains in points (mean over seeds):",
        "",
        "| comparison | " + " | ".join(geneval.TASKS) + " | overall |",
        "|" + " --- |" * (len(geneval.TASKS) + 2),
    ]
    for name, (high, low) in {
        "RecA - base": ("reca", "base"),
        "RecA - control": ("reca", "control"),
        "control - base": ("control", "base"),
    }.items():
        gains = [_difference(results[high]["tasks"][t], results[low]["tasks"][t]) for t in geneval.TASKS]
        lines.append(
            f"| {name} | "
            + " | ".join(gains)
            + f" | {_difference(results[high]['overall'], results[low]['overall'])} |"
        )
    for model, gains in results.get("published_gains", {}).items():
        lines.append(f"| paper: {model} | " + " | ".join(f"{gains[t]:+.1f}" for t in geneval.TASKS) + " | |")
    base_overall = results["base"]["overall"]
    wins = [
        run["seed"]
        for run in results["reca"]["per_seed"]
        if run["overall"] is not None and base_overall is not None and run["overall"] > base_overall
    ]
    lines += [
        "",
        f"RecA above its base on {len(wins)} of {len(seeds)} seeds.",
        f"Settings: {json.dumps(results['settings'])}",
        "",
    ]
    return "\n".join(lines)


def _difference(high, low) -> str:
    return "-" if high is None or low is None else f"{100 * (high - low):+.1f}"


def samples_figure(out: Path, seed: int, entries: list[dict], save_to: Path, per_task: int = 2) -> None:
    """Base vs RecA: the first sample of a few prompts of every task, same prompt and seed."""
    from PIL import Image

    from recakit.viz import image_grid

    picked = [i for task in geneval.TASKS for i in [k for k, e in enumerate(entries) if e["tag"] == task][:per_task]]
    rows, titles = [], []
    for arm in ("base", "reca"):
        row = []
        for index in picked:
            folder = out / "base" if arm == "base" else out / f"seed{seed}" / arm
            with Image.open(folder / f"{index:05d}" / "samples" / "0000.png") as image:
                row.append(image.convert("RGB"))
        rows.append(row)
        titles.append([entries[i]["prompt"].removeprefix("a photo of ") for i in picked])
    image_grid(
        rows,
        titles=titles,
        row_labels=["base", f"RecA (seed {seed})"],
        cell_size=2.0,
        suptitle="GenEval-mini prompts: base vs RecA, same sampling seeds",
        save_to=save_to,
    )


def run_seed(base, processor, seed: int, settings: dict, entries: list[dict], detector, out: Path) -> dict:
    """Train both arms with training seed `seed` and score them -> {arm: scores}."""
    torch.manual_seed(seed)
    scores = {}
    for arm in ("control", "reca"):
        model, _ = train_arm(base, processor, arm, seed, settings, out / f"seed{seed}" / f"{arm}_train")
        # the scores are the saved model's (fp16 weights, like the shipped base), so a saved arm
        # scores exactly what this run reports
        model.save_pretrained(out / f"seed{seed}" / f"{arm}_model", processor)
        model, _ = load_toy(out / f"seed{seed}" / f"{arm}_model")
        scores[arm] = {
            "seed": seed,
            **evaluate(model, processor, entries, out / f"seed{seed}" / arm, settings, detector),
        }
    return scores


def reproduce_toy(out, *, seeds: int = 1, quick: bool = False, base_path=None, settings: dict | None = None) -> dict:
    """Run the toy reproduction into `out` and return the results dict (also results.json).

    Every arm is sampled with the same sampling seeds, so base, control and RecA are compared on
    the same prompts and the same random draws; the base, which no training seed touches, is
    sampled and scored once."""
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    settings = {**(QUICK if quick else FULL), **(settings or {})}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # a rerun resumes checkpoints and reuses samples, which is only right with the same settings
    settings_path = out / "settings.json"
    if settings_path.exists() and json.loads(settings_path.read_text()) != settings:
        raise ValueError(f"{out} holds a run with other settings ({settings_path}); use another --out")
    settings_path.write_text(json.dumps(settings, indent=1))
    base, processor = load_toy(base_path)
    entries = evaluation_entries(settings["prompts_per_task"])
    detector = ShapesDetector()
    seed_list = list(range(seeds))
    per_arm = {
        "base": [{"seed": None, **evaluate(base, processor, entries, out / "base", settings, detector)}],
        "control": [],
        "reca": [],
    }
    seconds = {}
    for seed in seed_list:
        started = time.time()
        for arm, scores in run_seed(base, processor, seed, settings, entries, detector, out).items():
            per_arm[arm].append(scores)
        seconds[seed] = round(time.time() - started, 1)

    results = {"preset": "toy", "seeds": seed_list, "settings": settings, "seconds_per_seed": seconds}
    results.update({arm: aggregate(per_arm[arm]) for arm in ARMS})
    results["published_gains"] = published_gains()
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(results_markdown(results))
    samples_figure(out, seed_list[0], entries, out / "samples.png")
    return results
