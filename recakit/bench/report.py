"""Tables and plots that put a run's benchmark scores next to the published RecA numbers.

The published figures ship as data: `recakit/data/published_results.csv` (GenEval per task and
overall, DPG-Bench and WISE, one row per model and variant: base, RecA, reference models) and
`recakit/data/published_editing.csv` (ImgEdit and GEdit-Bench). Published numbers are x100;
a run's GenEval summary (`recakit.bench.geneval.summarize`) holds fractions, which these functions
turn into points. A run may carry a DPG-Bench score under "dpg" (already x100, as
`recakit.bench.dpg.score_folder` gives it).
"""

from __future__ import annotations

import csv
from pathlib import Path

from recakit.bench.geneval import TASKS

DATA = Path(__file__).parents[1] / "data"
PUBLISHED_FILES = {"generation": DATA / "published_results.csv", "editing": DATA / "published_editing.csv"}
TEXT_COLUMNS = {"model", "variant", "params", "source"}


def published_results(kind: str = "generation") -> list[dict]:
    """Rows of a published-results file as dicts; numbers as floats, blanks as None.
    `kind` is "generation" (GenEval, DPG-Bench, WISE) or "editing" (ImgEdit, GEdit-Bench)."""
    if kind not in PUBLISHED_FILES:
        raise ValueError(f"unknown kind {kind!r}: use one of {sorted(PUBLISHED_FILES)}")
    with open(PUBLISHED_FILES[kind], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {key: (value if key in TEXT_COLUMNS else (float(value) if value else None)) for key, value in row.items()}
        for row in rows
    ]


def published_models() -> list[str]:
    """Models of the generation table, in file order."""
    return list(dict.fromkeys(row["model"] for row in published_results()))


def _published_rows(models) -> list[dict]:
    if models is None:
        return []
    wanted = [models] if isinstance(models, str) else list(models)
    rows = [row for row in published_results() if row["model"] in wanted]
    unknown = sorted(set(wanted) - {row["model"] for row in rows})
    if unknown:
        raise ValueError(f"no published results for {unknown}; known: {published_models()}")
    return rows


def _points(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _run_points(summary: dict) -> dict:
    """A run's GenEval fractions and optional DPG score as points, keyed like the published table."""
    points = {task: (None if summary["tasks"].get(task) is None else 100 * summary["tasks"][task]) for task in TASKS}
    points["geneval_overall"] = None if summary.get("overall") is None else 100 * summary["overall"]
    points["dpg_bench"] = summary.get("dpg")
    return points


def results_table(run_results: dict, published=None) -> str:
    """A Markdown table: one row per run (`{name: GenEval summary}`), then the published rows of the
    models named in `published` (a name or a list, see `published_models()`). Scores x100."""
    header = ["run", *TASKS, "GenEval", "DPG"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, summary in run_results.items():
        points = _run_points(summary)
        cells = [_points(points[task]) for task in TASKS] + [_points(points["geneval_overall"])]
        cells.append("-" if points["dpg_bench"] is None else f"{points['dpg_bench']:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for row in _published_rows(published):
        cells = [_points(row[task]) for task in TASKS] + [_points(row["geneval_overall"])]
        cells.append("-" if row["dpg_bench"] is None else f"{row['dpg_bench']:.2f}")
        lines.append(f"| {row['model']} {row['variant']} (paper) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


COLUMNS = [*TASKS, "geneval_overall"]


def published_gains(models=("Harmon-1.5B", "OpenUni-2-1.6B")) -> dict:
    """{model: {task or "geneval_overall": RecA minus base}} in GenEval points, from the paper's
    per-architecture table (models without both rows are left out)."""
    rows = {(row["model"], row["variant"]): row for row in published_results()}
    return {
        model: {column: rows[(model, "RecA")][column] - rows[(model, "base")][column] for column in COLUMNS}
        for model in models
        if (model, "base") in rows and (model, "RecA") in rows
    }


def run_gains(run_results: dict, comparisons) -> dict:
    """{"high - low": {task or "geneval_overall": points}} for each (high, low) pair of run names."""
    gains = {}
    for high, low in comparisons:
        upper, lower = _run_points(run_results[high]), _run_points(run_results[low])
        gains[f"{high} - {low}"] = {
            column: None if upper[column] is None or lower[column] is None else upper[column] - lower[column]
            for column in COLUMNS
        }
    return gains


def gains_table(run_results: dict, comparisons, published=("Harmon-1.5B", "OpenUni-2-1.6B")) -> str:
    """A Markdown table of gains in points: the runs' (`run_gains`), then the paper's RecA - base.
    The runs' gains are on their own benchmark (GenEval-mini for the toy), the paper's on GenEval."""
    lines = ["| gain (points) | " + " | ".join(TASKS) + " | overall |", "|" + " --- |" * (len(TASKS) + 2)]
    rows = {
        **run_gains(run_results, comparisons),
        **{f"paper: {model} RecA - base": gains for model, gains in published_gains(published).items()},
    }
    for name, gains in rows.items():
        lines.append(
            f"| {name} | " + " | ".join("-" if gains[c] is None else f"{gains[c]:+.1f}" for c in COLUMNS) + " |"
        )
    return "\n".join(lines) + "\n"


def _grouped_bars(axis, series: dict, title: str, ylabel: str) -> None:
    width = 0.8 / len(series)
    for k, (name, values) in enumerate(series.items()):
        positions = [i + (k - (len(series) - 1) / 2) * width for i in range(len(COLUMNS))]
        axis.bar(
            positions,
            [0.0 if values[c] is None else values[c] for c in COLUMNS],
            width,
            label=name,
            edgecolor="black",
            linewidth=0.5,
        )
    axis.set_xticks(range(len(COLUMNS)), [c.replace("geneval_", "").replace("_", "\n") for c in COLUMNS], fontsize=8)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_title(title, fontsize=10)
    axis.set_ylabel(ylabel)
    axis.legend(fontsize="x-small")


def plot_gains(
    run_results: dict,
    comparisons,
    published=("Harmon-1.5B", "OpenUni-2-1.6B"),
    *,
    benchmark: str = "GenEval-mini",
    save_to=None,
):
    """Three panels, each on its own y-axis: the runs' scores, the runs' gains (`run_gains`) and
    the paper's RecA - base gains on the real GenEval. A toy score and a published gain are
    different quantities on different benchmarks, so they never share an axis. Returns the figure
    (saved to `save_to` when given)."""
    if not run_results:
        raise ValueError("no run results to plot")
    import matplotlib.pyplot as plt

    from recakit.viz import save_figure

    figure, axes = plt.subplots(1, 3, figsize=(16, 3.8))
    _grouped_bars(
        axes[0],
        {name: _run_points(summary) for name, summary in run_results.items()},
        f"{benchmark}: scores",
        "score (x100)",
    )
    axes[0].set_ylim(0, 100)
    _grouped_bars(axes[1], run_gains(run_results, comparisons), f"{benchmark}: gains", "gain (points)")
    _grouped_bars(axes[2], published_gains(published), "paper, real GenEval: RecA - base", "gain (points)")
    figure.tight_layout()
    return save_figure(figure, save_to)
