"""Tables and plots that put a run's benchmark scores next to the published RecA numbers.

The published figures ship as data: `recakit/data/published_results.csv` (GenEval per task and
overall, DPG-Bench and WISE, one row per model and variant: base, RecA, reference models) and
`recakit/data/published_editing.csv` (ImgEdit and GEdit-Bench). Published numbers are x100;
a run's GenEval summary (`recakit.geneval.summarize`) holds fractions, which these functions
turn into points. A run may carry a DPG-Bench score under "dpg" (already x100, as
`recakit.dpg.score_folder` gives it).
"""
from __future__ import annotations

import csv
from pathlib import Path

from recakit.geneval import TASKS

DATA = Path(__file__).parent / "data"
PUBLISHED_FILES = {"generation": DATA / "published_results.csv", "editing": DATA / "published_editing.csv"}
TEXT_COLUMNS = {"model", "variant", "params", "source"}


def published_results(kind: str = "generation") -> list[dict]:
    """Rows of a published-results file as dicts; numbers as floats, blanks as None.
    `kind` is "generation" (GenEval, DPG-Bench, WISE) or "editing" (ImgEdit, GEdit-Bench)."""
    if kind not in PUBLISHED_FILES:
        raise ValueError(f"unknown kind {kind!r}: use one of {sorted(PUBLISHED_FILES)}")
    with open(PUBLISHED_FILES[kind], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [{key: (value if key in TEXT_COLUMNS else (float(value) if value else None)) for key, value in row.items()}
            for row in rows]


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


def plot_vs_published(run_results: dict, path: str | Path, model: str = "Harmon-1.5B") -> Path:
    """Grouped bars per GenEval task and overall: the published base and RecA of `model`, then each
    run of `run_results` ({name: GenEval summary}). Saved to `path` (format from its suffix)."""
    if not run_results:
        raise ValueError("no run results to plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in _published_rows(model) if row["variant"] in ("base", "RecA")]
    columns = [*TASKS, "geneval_overall"]
    series = {f"{row['model']} {row['variant']} (paper)": [row[c] for c in columns] for row in rows}
    for name, summary in run_results.items():
        points = _run_points(summary)
        series[name] = [points[c] for c in columns]
    width = 0.8 / len(series)
    figure, axis = plt.subplots(figsize=(1.4 * len(columns) + 2, 3.8))
    for k, (name, values) in enumerate(series.items()):
        positions = [i + (k - (len(series) - 1) / 2) * width for i in range(len(columns))]
        axis.bar(positions, [0.0 if v is None else v for v in values], width, label=name,
                 hatch=None if "(paper)" in name else "//", edgecolor="black", linewidth=0.5)
    axis.set_xticks(range(len(columns)), [c.replace("geneval_", "").replace("_", "\n") for c in columns])
    axis.set_ylim(0, 100)
    axis.set_ylabel("GenEval score (x100)")
    axis.legend(fontsize="small", ncols=2)
    axis.set_title(f"GenEval per task: runs vs published {model}")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
