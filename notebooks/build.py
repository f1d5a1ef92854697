"""Write the tutorial notebooks, English and Chinese, from their sources in this folder.

Each `nbNN_*.py` module holds one notebook as a list of cells (see cells.py): code cells are shared
by both languages, so the two versions run exactly the same code. Run after editing a source:

    python notebooks/build.py           # rewrite notebooks/en/*.ipynb and notebooks/zh/*.ipynb
    python notebooks/build.py --check   # exit 1 if a written notebook differs from its source
"""
import argparse
import importlib
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = ["nb01_reconstruction_objective", "nb02_reca_finetuning", "nb03_inference", "nb04_benchmarks"]
LANGUAGES = ("en", "zh")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook_name(source: str) -> str:
    return source.removeprefix("nb")


def build_notebook(cells: list[dict], language: str) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = KERNELSPEC
    notebook.metadata["language_info"] = {"name": "python"}
    for index, cell in enumerate(cells):
        if cell["kind"] == "markdown":
            new_cell = nbformat.v4.new_markdown_cell(cell[language])
        else:
            new_cell = nbformat.v4.new_code_cell(cell["source"])
            if cell["kind"] == "parameters":
                new_cell.metadata["tags"] = ["parameters"]
        new_cell.id = f"{language}-{index:02d}"  # stable ids keep rebuilt notebooks diff-free
        notebook.cells.append(new_cell)
    return notebook


def built_notebooks():
    """Yield (path, notebook text) for every notebook in every language."""
    sys.path.insert(0, str(HERE))
    for source in SOURCES:
        cells = importlib.import_module(source).CELLS
        for language in LANGUAGES:
            path = HERE / language / f"{notebook_name(source)}.ipynb"
            yield path, nbformat.writes(build_notebook(cells, language)) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for path, text in built_notebooks():
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")
    for path in stale:
        print(f"out of date: {path.relative_to(HERE.parent)} (run python notebooks/build.py)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
