"""Write the tutorial notebooks, English and Chinese, from their sources in notebooks/src, and
execute them so that they are stored with the outputs of their default run.

Each notebook's source is a jupytext `py:percent` file, `src/NN_*.py`, that linters, formatters and
IDEs read as ordinary Python (the markdown lives in comments):

    # %% [markdown] lang="en"          English prose, only in notebooks/en
    # # 02 · RecA fine-tuning
    # %% [markdown] lang="zh"          the same cell in Chinese, only in notebooks/zh
    # # 02 · RecA 微调
    # %% tags=["parameters"]           the papermill parameters cell
    # QUICK: bool = True  # ...
    # %%                               a code cell: written once, in both notebooks verbatim

Every markdown cell comes as an English and a Chinese cell, so both notebooks have the same cells
in the same order. A piece of prose used more than once is written once, as a markdown cell with a
`snippet="NAME"` metadata (and `lang="en"` / `lang="zh"` when it differs between languages), and is
put in place by a markdown line `<!-- include NAME -->`. A notebook's own snippets (exercise
solutions that both languages show) sit in its source, before the cell that uses them; the ones every
notebook uses (the Colab tip, the text before the setup cell) sit in src/shared.py. Snippet cells are
not cells of the notebooks. The code cells every notebook opens with (the Colab install cell and the
setup cell) stay in each source, so that each source is a complete program for a linter and an IDE;
tests/test_notebook_rules.py checks that they are the same in every notebook. Chinese prose may be
hard-wrapped in the sources: the build removes a line break between two CJK characters. The text
before a source's first `# %%` (its docstring and lint settings) is not part of the notebook.

Run after editing a source:

    python notebooks/build.py --execute          # rewrite and run every notebook (stores outputs)
    python notebooks/build.py --execute 02       # only the sources whose name contains "02"
    python notebooks/build.py --check            # exit 1 if a notebook's cells differ from its source
    python notebooks/build.py                    # rewrite without running: outputs are kept where
                                                 # the code cells did not change (a prose edit)

Every file named `src/NN_*.py` is a source, so a new notebook needs no change to this script.
Each notebook runs in a fresh temporary folder (its OUT_DIR starts empty, and no absolute path of
this machine enters the outputs), on the CPU, with text progress bars off (their text is timings);
the widget progress bars of tqdm.auto stay, and their final state is stored with the notebook so
that JupyterLab and nbviewer draw them. The test
suite re-executes the stored notebooks under nbval and compares the outputs
(tests/test_notebooks.py, with the sanitizer notebooks/sanitize.cfg).
"""

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
SHARED = SOURCES / "shared.py"  # the snippets every notebook may include
COLAB_ORG = "recakit"  # placeholder GitHub organisation of the Colab badges, the install cell and doc links
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
_INCLUDE = re.compile(r"^<!-- include (\S+) -->$", re.M)


def sources() -> list[str]:
    return sorted(path.stem for path in SOURCES.glob("[0-9][0-9]_*.py"))


def read_cells(path: Path) -> list[nbformat.NotebookNode]:
    """The cells of a py:percent source, without the header before its first cell marker."""
    text = path.read_text(encoding="utf-8")
    first = re.search(r"^# %%", text, flags=re.M)
    return jupytext.reads(text[first.start() :] if first else "", fmt="py:percent").cells


def snippets(cells: list[nbformat.NotebookNode]) -> dict[tuple[str, str | None], str]:
    """{(name, language or None): text} of the snippet cells among `cells`."""
    return {
        (cell.metadata["snippet"], cell.metadata.get("lang")): cell.source
        for cell in cells
        if "snippet" in cell.metadata
    }


def join_cjk_lines(text: str) -> str:
    """Join a line break between two CJK characters (a curly quote or a `*` of emphasis beside one
    counts as CJK; the next line's indentation goes too): Markdown turns the break into a space,
    which shows in Chinese text (written hard-wrapped in the sources, as is convenient there)."""

    def join(match: re.Match) -> str:
        before, after = text[max(0, match.start() - 80) : match.start()], text[match.end() : match.end() + 80]
        return "" if _CJK_END.search(before) and _CJK_START.match(after) else match.group()

    return _LINE_BREAK.sub(join, text)


def expand(text: str, language: str, known: dict) -> str:
    """`text` with each line `<!-- include NAME -->` replaced by snippet NAME in `language`."""

    def snippet(match):
        for key in ((match[1], language), (match[1], None)):
            if key in known:
                return known[key]
        raise SystemExit(f"no snippet {match[1]!r} for {language} (in the source or {SHARED.name})")

    return _INCLUDE.sub(snippet, text)


def build_notebook(cells: list, language: str, shared: dict | None = None) -> nbformat.NotebookNode:
    """The notebook in `language` of a source's `cells` (its includes resolved with `shared` as well)."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = KERNELSPEC
    notebook.metadata["language_info"] = {"name": "python"}
    known = {**(shared or {}), **snippets(cells)}
    for cell in cells:
        if cell.cell_type == "code" and "lang" in cell.metadata:
            raise SystemExit(f"a code cell has a language ({cell.source[:40]!r}): code is shared by both")
        if "snippet" in cell.metadata or cell.metadata.get("lang", language) != language:
            continue
        if cell.cell_type == "markdown":
            source = expand(cell.source, language, known)
            new_cell = nbformat.v4.new_markdown_cell(join_cjk_lines(source) if language == "zh" else source)
        else:
            new_cell = nbformat.v4.new_code_cell(cell.source)
            if cell.metadata.get("tags"):
                new_cell.metadata["tags"] = list(cell.metadata["tags"])
        new_cell.id = f"{language}-{len(notebook.cells):02d}"  # stable ids keep rebuilt notebooks diff-free
        notebook.cells.append(new_cell)
    return notebook


def built_notebooks(only: list[str] | None = None):
    """Yield (path, notebook) for every notebook in every language (sources matching `only`)."""
    shared = snippets(read_cells(SHARED))
    for source in sources():
        if only and not any(word in source for word in only):
            continue
        cells = read_cells(SOURCES / f"{source}.py")
        notebooks = {language: build_notebook(cells, language, shared) for language in LANGUAGES}
        kinds = {language: [cell.cell_type for cell in notebook.cells] for language, notebook in notebooks.items()}
        if len(set(map(tuple, kinds.values()))) > 1:
            raise SystemExit(
                f"src/{source}.py: the languages' cells differ ({kinds}): every markdown cell "
                f"needs an English and a Chinese version"
            )
        for language in LANGUAGES:
            yield HERE / language / f"{source}.ipynb", notebooks[language]


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
            client = NotebookClient(
                notebook,
                timeout=CELL_TIMEOUT,
                kernel_name=KERNELSPEC["name"],
                record_timing=False,
                resources={"metadata": {"path": folder}},
            )
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
