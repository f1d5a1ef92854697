"""Write the tutorial notebooks, English and Chinese, from their sources in this folder, and
execute them so that they are stored with the outputs of their default run.

Each `nbNN_*.py` module holds one notebook as a list of cells (see cells.py): code cells are shared
by both languages, so the two versions run exactly the same code. Run after editing a source:

    python notebooks/build.py --execute          # rewrite and run every notebook (stores outputs)
    python notebooks/build.py --execute nb02     # only the sources whose name contains "nb02"
    python notebooks/build.py --check            # exit 1 if a notebook's cells differ from its source
    python notebooks/build.py                    # rewrite without running: outputs are kept where
                                                 # the code cells did not change (a prose edit)

Every module named `nbNN_*.py` here is a source, so a new notebook needs no change to this script.
Each notebook runs in a fresh temporary folder (its OUT_DIR starts empty, and no absolute path of
this machine enters the outputs), on the CPU, with text progress bars off (their text is timings);
the widget progress bars of tqdm.auto stay, and their final state is stored with the notebook so
that JupyterLab and nbviewer draw them. The test
suite re-executes the stored notebooks under nbval and compares the outputs
(tests/test_notebooks.py, with the sanitizer notebooks/sanitize.cfg).
"""
import argparse
import importlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
LANGUAGES = ("en", "zh")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
CELL_TIMEOUT = 1800  # seconds; a notebook's default run takes well under a minute per cell
# Environment of an executed run: no text progress bars (tqdm.auto's widget bars ignore this) and
# no GPU, so that the stored outputs are the CPU run's on every machine.
RUN_ENVIRONMENT = {"TQDM_DISABLE": "1", "CUDA_VISIBLE_DEVICES": ""}
_CJK = r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]"
# A line of Chinese may end in a closing quote or a CJK *emphasis* and the next may open with a
# quote or emphasis: those count as CJK for the join. A "* " that opens a list item does not.
_CJK_END = re.compile(rf"(?:{_CJK}|[\u201d\u2019])\**\Z")
_CJK_START = re.compile(rf"^\**(?:{_CJK}|[\u201c\u2018])")
_LINE_BREAK = re.compile(r"\n[ \t]*")


def sources() -> list[str]:
    return sorted(path.stem for path in HERE.glob("nb[0-9][0-9]_*.py"))


def notebook_name(source: str) -> str:
    return source.removeprefix("nb")


def join_cjk_lines(text: str) -> str:
    """Join a line break between two CJK characters (a curly quote or a `*` of emphasis beside one
    counts as CJK; the next line's indentation goes too): Markdown turns the break into a space,
    which shows in Chinese text (written hard-wrapped in the sources, as is convenient there)."""
    def join(match: re.Match) -> str:
        before, after = text[:match.start()], text[match.end():match.end() + 80]
        return "" if _CJK_END.search(before[-80:]) and _CJK_START.match(after) else match.group()

    return _LINE_BREAK.sub(join, text)


def build_notebook(cells: list[dict], language: str) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = KERNELSPEC
    notebook.metadata["language_info"] = {"name": "python"}
    for index, cell in enumerate(cells):
        if cell["kind"] == "markdown":
            new_cell = nbformat.v4.new_markdown_cell(join_cjk_lines(cell[language]) if language == "zh" else cell[language])
        else:
            new_cell = nbformat.v4.new_code_cell(cell["source"])
            if cell["kind"] == "parameters":
                new_cell.metadata["tags"] = ["parameters"]
        new_cell.id = f"{language}-{index:02d}"  # stable ids keep rebuilt notebooks diff-free
        notebook.cells.append(new_cell)
    return notebook


def built_notebooks(only: list[str] | None = None):
    """Yield (path, notebook) for every notebook in every language (sources matching `only`)."""
    sys.path.insert(0, str(HERE))
    for source in sources():
        if only and not any(word in source for word in only):
            continue
        cells = importlib.import_module(source).CELLS
        for language in LANGUAGES:
            yield HERE / language / f"{notebook_name(source)}.ipynb", build_notebook(cells, language)


def without_outputs(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    stripped = nbformat.from_dict(notebook)
    stripped.metadata.pop("widgets", None)
    for cell in stripped.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return stripped


def with_stored_outputs(notebook: nbformat.NotebookNode, path: Path) -> bool:
    """Copy the outputs of the notebook stored at `path` into `notebook` if both have the same code
    cells (so a prose edit needs no re-run); returns whether it did."""
    if not path.exists():
        return False
    stored = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    stored_code = [cell for cell in stored.cells if cell.cell_type == "code"]
    if [cell.source for cell in code] != [cell.source for cell in stored_code]:
        return False
    for cell, old in zip(code, stored_code):
        cell.outputs, cell.execution_count = old.outputs, old.execution_count
    if "widgets" in stored.metadata:
        notebook.metadata["widgets"] = stored.metadata["widgets"]
    return True


def execute(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Run `notebook` with its default parameters in a fresh temporary folder; returns it with outputs."""
    from nbclient import NotebookClient

    saved = {name: os.environ.get(name) for name in RUN_ENVIRONMENT}
    os.environ.update(RUN_ENVIRONMENT)
    try:
        with tempfile.TemporaryDirectory() as folder:
            client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name=KERNELSPEC["name"],
                                    record_timing=False, resources={"metadata": {"path": folder}})
            client.execute()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    notebook.metadata["language_info"] = {"name": "python"}  # not this interpreter's version
    return notebook


def text(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="build only the sources whose name contains one of these")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="only compare the cells with the sources, write nothing")
    group.add_argument("--execute", action="store_true", help="also run each notebook and store its outputs")
    args = parser.parse_args(argv)
    stale = []
    for path, notebook in built_notebooks(args.only):
        name = path.relative_to(HERE.parent)
        if args.check:
            stored = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4) if path.exists() else None
            if stored is None or text(without_outputs(stored)) != text(notebook):
                stale.append(name)
            continue
        if args.execute:
            started = time.time()
            notebook = execute(notebook)
            print(f"ran {name} in {time.time() - started:.0f} s")
        elif not with_stored_outputs(notebook, path):
            print(f"{name}: code changed, outputs dropped (run python notebooks/build.py --execute)")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text(notebook), encoding="utf-8")
        print(f"wrote {name}")
    for name in stale:
        print(f"out of date: {name} (run python notebooks/build.py --execute)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
