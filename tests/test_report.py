"""Published results as data, and run-vs-paper tables and plots."""

import csv
import hashlib
import io

import pytest

from recakit.bench import report
from recakit.bench.geneval import TASKS, summarize


def run_summary(correct_per_task):
    results = [{"tag": task, "correct": k < correct} for task, correct in correct_per_task.items() for k in range(4)]
    return summarize(results)


def test_published_results_carry_the_papers_numbers():
    rows = report.published_results()
    harmon = {row["variant"]: row for row in rows if row["model"] == "Harmon-1.5B"}
    assert harmon["base"]["geneval_overall"] == 72.9 and harmon["RecA"]["geneval_overall"] == 85.7
    assert harmon["base"]["dpg_bench"] == 80.93 and harmon["RecA"]["dpg_bench"] == 87.21
    assert harmon["RecA"]["position"] == 75.7
    zoo = next(row for row in rows if row["model"] == "Harmon-0.5B")
    assert zoo["single_object"] is None and zoo["geneval_overall"] == 78.7
    editing = {row["model"]: row for row in report.published_results("editing")}
    assert editing["BAGEL"]["imgedit_overall"] == 3.38 and editing["BAGEL-RecA"]["gedit_overall"] == 7.27
    with pytest.raises(ValueError, match="unknown kind"):
        report.published_results("audio")


@pytest.mark.parametrize(
    "kind, extra_columns, digest",
    [
        ("generation", [], "2d1becb2742a99dff473a67ac84dd9109b84907bd589b39c1439d14c51d0c784"),
        ("editing", ["source"], "fdf4818d7ad01517fc82371607401c472e3ddde45766ad02b5ed68f9560d6fa4"),
    ],
    ids=["generation", "editing"],
)
def test_shipped_tables_hold_exactly_the_transcribed_figures(kind, extra_columns, digest):
    """The shipped tables are the one copy of the papers' figures in the project. Written back
    without the columns added since, each must be byte for byte the transcription they were
    checked against (whose SHA-256 is `digest`), so any changed, lost or added figure fails
    here until it is checked against the papers and the digest updated."""
    with open(report.PUBLISHED_FILES[kind], newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    kept = [i for i, name in enumerate(rows[0]) if name not in extra_columns]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([row[i] for i in kept] for row in rows)
    assert hashlib.sha256(text.getvalue().encode("utf-8")).hexdigest() == digest


def test_results_table_puts_runs_beside_published_rows():
    run = run_summary({"single_object": 4, "two_object": 3, "counting": 2, "colors": 1, "position": 0, "color_attr": 2})
    run["dpg"] = 71.234
    table = report.results_table({"toy RecA": run}, published="Harmon-1.5B")
    lines = table.strip().splitlines()
    assert lines[0] == "| run | " + " | ".join(TASKS) + " | GenEval | DPG |"
    assert lines[2] == "| toy RecA | 100.0 | 75.0 | 50.0 | 25.0 | 0.0 | 50.0 | 50.0 | 71.23 |"
    assert "| Harmon-1.5B base (paper) | 99.4 | 87.3 | 68.7 | 86.4 | 44.9 | 51.1 | 72.9 | 80.93 |" in lines
    assert any(line.startswith("| Harmon-1.5B RecA+GPT4o-data (paper)") for line in lines)
    missing = summarize([{"tag": "counting", "correct": True}])
    assert "| partial | - | - | 100.0 | - | - | - | 100.0 | - |" in report.results_table({"partial": missing})
    with pytest.raises(ValueError, match="no published results"):
        report.results_table({}, published=["Nonexistent-1B"])


def test_gains_are_differences_in_points_and_the_papers_come_from_its_table():
    base = run_summary({task: 1 for task in TASKS})  # 25 % per task
    reca = run_summary({task: 3 for task in TASKS} | {"position": 1})
    gains = report.run_gains({"base": base, "RecA": reca}, [("RecA", "base")])["RecA - base"]
    assert gains["two_object"] == pytest.approx(50.0) and gains["position"] == 0.0
    assert gains["geneval_overall"] == pytest.approx(50.0 * 5 / 6)
    harmon = report.published_gains(["Harmon-1.5B"])["Harmon-1.5B"]
    assert harmon["position"] == pytest.approx(75.7 - 44.9) and harmon["geneval_overall"] == pytest.approx(85.7 - 72.9)
    table = report.gains_table({"base": base, "RecA": reca}, [("RecA", "base")], published=["Harmon-1.5B"])
    assert "| RecA - base | +50.0 | +50.0 | +50.0 | +50.0 | +0.0 | +50.0 | +41.7 |" in table
    assert "| paper: Harmon-1.5B RecA - base | +0.5 | +10.4 |" in table


def test_plot_gains_keeps_scores_and_published_gains_on_separate_axes(tmp_path):
    from PIL import Image

    base, reca = run_summary({task: 2 for task in TASKS}), run_summary({task: 3 for task in TASKS})
    figure = report.plot_gains(
        {"toy base": base, "toy RecA": reca},
        [("toy RecA", "toy base")],
        published=["OpenUni-2-1.6B"],
        save_to=tmp_path / "plots" / "gains.png",
    )
    scores, ours, paper = figure.axes
    assert scores.get_ylim() == (0, 100)
    assert [bar.get_height() for bar in ours.patches] == pytest.approx([25.0] * 7)
    assert max(bar.get_height() for bar in paper.patches) == pytest.approx(70.3 - 41.6)  # color_attr
    assert not (scores.get_shared_y_axes().joined(scores, paper) or ours.get_shared_y_axes().joined(ours, paper))
    with Image.open(tmp_path / "plots" / "gains.png") as image:
        assert image.format == "PNG" and image.width > 300
    with pytest.raises(ValueError):
        report.plot_gains({}, [])
