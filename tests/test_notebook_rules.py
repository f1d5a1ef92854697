"""Static rules of the tutorial notebooks: built from their py:percent sources (notebooks/src), stored
with the outputs of one complete run, English and Chinese twins with identical code, the same install
and setup cells in every notebook, one typed parameters cell, thin code cells, Chinese prose that is
Chinese, has no hard line breaks inside it and uses the glossary's terms. (tests/test_notebooks.py
checks that a re-run reproduces the stored outputs.)"""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["01_reconstruction_objective", "02_reca_finetuning", "03_inference", "04_benchmarks"]
PATHS = [NOTEBOOKS / language / f"{name}.ipynb" for name in NAMES for language in ("en", "zh")]
CJK = re.compile(r"[\u4e00-\u9fff]")
MAX_FUNCTION_LINES = 10


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _cells(path: Path, kind: str) -> list[dict]:
    return [cell for cell in _load(path)["cells"] if cell["cell_type"] == kind]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _prose(text: str) -> str:
    """Markdown without code blocks, inline code, links' targets and tables' code names."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def test_notebooks_are_what_the_build_script_writes():
    result = subprocess.run([sys.executable, str(NOTEBOOKS / "build.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_notebook_set_is_complete_in_both_languages():
    for language in ("en", "zh"):
        assert sorted(p.stem for p in (NOTEBOOKS / language).glob("*.ipynb")) == NAMES


MAX_NOTEBOOK_BYTES = 1_500_000  # outputs are figures of a default run: keep the repository lean


@pytest.mark.parametrize("path", PATHS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_stored_with_the_outputs_of_one_complete_run_for_the_python3_kernel(path):
    notebook = _load(path)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    counts = [cell["execution_count"] for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1)), "not one run top to bottom: python notebooks/build.py --execute"
    for index, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"cell {index} stored an error"
            text = "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
            assert "<torch._C.Generator" not in text, f"cell {index} shows a stray return value"
            assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text, (
                f"cell {index} shows a local path"
            )
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES


def _build():
    sys.path.insert(0, str(NOTEBOOKS))
    import build

    return build


def test_the_build_joins_chinese_lines_but_not_others():
    join_cjk_lines = _build().join_cjk_lines
    assert (
        join_cjk_lines("图像的\n理解交给它，\n然后 `x`\nand this\nline") == "图像的理解交给它，然后 `x`\nand this\nline"
    )
    # curly quotes and *emphasis* beside Chinese join too; a list item, Latin emphasis and code do not
    assert (
        join_cjk_lines("依据\n“含义”去重，心”\n中的；图像*或*\n描述；对\n*理解*\n被")
        == "依据“含义”去重，心”中的；图像*或*描述；对*理解*被"
    )
    assert join_cjk_lines("例如\n  “Describe”\n并且") == "例如“Describe”并且"
    assert join_cjk_lines("小结。\n* 条目；第 *i*\n个；*字符串*\n`x`") == "小结。\n* 条目；第 *i*\n个；*字符串*\n`x`"


# a line break Markdown shows as a space: Chinese (or its punctuation, a curly quote, *emphasis*) on both sides
_CHINESE_LINE_BREAK = re.compile(
    r"[\u4e00-\u9fff，。：；、）”’]\**\n[ \t]*(?:\*+[\u4e00-\u9fff“‘]|[\u4e00-\u9fff（“‘])"
)


SOURCE = """\
\"\"\"A notebook's docstring: not a cell.\"\"\"

# %% [markdown] snippet="solution"
# ```python
# print(1)
# ```

# %% [markdown] lang="en"
# # Title
#
# <!-- include tip -->

# %% [markdown] lang="zh"
# # 标题
# 第二行
#
# <!-- include tip -->

# %% tags=["parameters"]
QUICK: bool = True  # quick

# %% [markdown] lang="en"
# Solution:
# <!-- include solution -->

# %% [markdown] lang="zh"
# 答案：
# <!-- include solution -->
"""
SHARED = {("tip", "en"): "A tip.", ("tip", "zh"): "提示。"}


def test_the_build_reads_a_py_percent_source_with_languages_and_snippets(tmp_path):
    build = _build()
    (tmp_path / "01_x.py").write_text(SOURCE, encoding="utf-8")
    cells = build.read_cells(tmp_path / "01_x.py")
    english, chinese = (build.build_notebook(cells, language, SHARED) for language in ("en", "zh"))
    assert [c.source for c in english.cells] == [
        "# Title\n\nA tip.",
        "QUICK: bool = True  # quick",
        "Solution:\n```python\nprint(1)\n```",
    ]
    assert [c.source for c in chinese.cells] == [
        "# 标题第二行\n\n提示。",
        "QUICK: bool = True  # quick",
        "答案：\n```python\nprint(1)\n```",
    ]
    assert [c.id for c in chinese.cells] == ["zh-00", "zh-01", "zh-02"]
    assert english.cells[1].metadata["tags"] == ["parameters"] and "tags" not in english.cells[0].metadata
    with pytest.raises(SystemExit, match="no snippet 'tip'"):
        build.build_notebook(cells, "en")


@pytest.mark.parametrize("name", NAMES)
def test_every_source_has_its_markdown_in_both_languages(name):
    build = _build()
    cells = [cell for cell in build.read_cells(NOTEBOOKS / "src" / f"{name}.py") if "snippet" not in cell.metadata]
    languages = [cell.metadata.get("lang") for cell in cells if cell.cell_type == "markdown"]
    assert languages == ["en", "zh"] * (len(languages) // 2), "each markdown cell: English, then Chinese"
    assert all("lang" not in cell.metadata for cell in cells if cell.cell_type == "code")


def test_every_notebook_opens_with_the_same_install_and_setup_cells():
    """Written in each source (a complete program for linters), so this keeps them one piece."""
    openings = set()
    for name in NAMES:
        code_cells = [_source(cell) for cell in _cells(NOTEBOOKS / "en" / f"{name}.ipynb", "code")]
        position = next(
            i
            for i, cell in enumerate(_cells(NOTEBOOKS / "en" / f"{name}.ipynb", "code"))
            if "parameters" in cell["metadata"].get("tags", [])
        )
        openings.add((tuple(code_cells[:position]), code_cells[position + 1]))
    assert len(openings) == 1, "the install or setup cell differs between notebooks"


@pytest.mark.parametrize("name", NAMES)
def test_chinese_markdown_has_no_line_break_between_two_chinese_characters(name):
    # the sources as build.py writes them (the stored notebooks must equal these, see the test above)
    sys.path.insert(0, str(NOTEBOOKS))
    from build import built_notebooks

    notebook = next(nb for path, nb in built_notebooks([name]) if path.parent.name == "zh")
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            assert not _CHINESE_LINE_BREAK.search(cell.source), cell.source[:80]


@pytest.mark.parametrize("name", NAMES)
def test_english_and_chinese_share_every_code_cell(name):
    english, chinese = (_load(NOTEBOOKS / language / f"{name}.ipynb")["cells"] for language in ("en", "zh"))
    assert [cell["cell_type"] for cell in english] == [cell["cell_type"] for cell in chinese]
    for index, (cell_en, cell_zh) in enumerate(zip(english, chinese)):
        if cell_en["cell_type"] == "code":
            assert _source(cell_en) == _source(cell_zh), f"code cell {index} differs"
            assert cell_en["metadata"].get("tags") == cell_zh["metadata"].get("tags")


@pytest.mark.parametrize("name", NAMES)
def test_chinese_prose_is_chinese_and_english_prose_is_not(name):
    for cell in _cells(NOTEBOOKS / "zh" / f"{name}.ipynb", "markdown"):
        prose = _prose(_source(cell))
        chinese = len(CJK.findall(prose))
        latin = len(re.findall(r"[A-Za-z]", prose))
        assert chinese >= 10 and chinese / (chinese + latin) > 0.4, f"not Chinese enough: {prose[:80]!r}"
    for cell in _cells(NOTEBOOKS / "en" / f"{name}.ipynb", "markdown"):
        assert not CJK.search(_source(cell)), f"Chinese text in an English cell: {_source(cell)[:80]!r}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_one_typed_and_commented_parameters_cell_near_the_top_then_coercion(path):
    code_cells = _cells(path, "code")
    tagged = [i for i, cell in enumerate(code_cells) if "parameters" in cell["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{len(tagged)} parameters cells"
    position = tagged[0]
    assert position <= 2, "the parameters cell must come right after the install cell"
    lines = [line for line in _source(code_cells[position]).splitlines() if line.strip()]
    for line in lines:
        assert re.fullmatch(r"[A-Z_]+: (bool|int|float|str) = .+  # .+", line), f"untyped or uncommented: {line!r}"
    names = {line.split(":")[0] for line in lines}
    assert {"QUICK", "DEVICE", "SEED", "OUT_DIR"} <= names
    assert re.search(r"QUICK: bool = True", _source(code_cells[position])), "quick mode must be the default"
    assert "coerce_parameters(globals())" in _source(code_cells[position + 1])


@pytest.mark.parametrize("path", PATHS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_colab_badge_and_colab_only_install(path):
    cells = _load(path)["cells"]
    COLAB_ORG = _build().COLAB_ORG

    badge = f"https://colab.research.google.com/github/{COLAB_ORG}/recakit/blob/main/notebooks/{path.parent.name}/{path.name}"
    assert cells[0]["cell_type"] == "markdown" and badge in _source(cells[0])
    install = _source(next(cell for cell in cells if cell["cell_type"] == "code"))
    assert re.search(
        r'if "google\.colab" in sys\.modules:.*\n\s+%pip install -q "recakit\[colab\] @', install, flags=re.S
    )
    assert "restart_notice()" in install


def _functions(source: str):
    # IPython magics are not Python: blank them out before parsing
    python = "\n".join(
        line[: len(line) - len(line.lstrip())] + "pass" if line.strip().startswith(("%", "!")) else line
        for line in source.splitlines()
    )
    for node in ast.walk(ast.parse(python)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield node


@pytest.mark.parametrize("path", PATHS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_notebook_functions_are_short(path):
    for index, cell in enumerate(_cells(path, "code")):
        for function in _functions(_source(cell)):
            body = function.body if isinstance(function.body, list) else [function.body]
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and len(body) > 1:
                first = body[1]  # the docstring does not count
            length = function.end_lineno - first.lineno + 1
            assert length <= MAX_FUNCTION_LINES, (
                f"code cell {index}: {getattr(function, 'name', 'lambda')} has {length} lines; move it into recakit"
            )


def test_the_function_rule_catches_a_long_function():
    long_function = "def f():\n" + "".join(f"    x{i} = {i}\n" for i in range(12))
    assert next(_functions(long_function)).end_lineno - 1 > MAX_FUNCTION_LINES


def _glossary() -> list[tuple[list[str], list[str]]]:
    rows = []
    for line in (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] == "English" or set(cells[0]) <= {"-"}:
            continue  # not a table row, the header or the separator
        english = [
            term.strip().lower() for term in re.split(r" / |, ", re.sub(r"\(.*?\)", "", cells[0])) if term.strip()
        ]
        chinese = [term.strip() for term in re.split(r"、| / ", re.sub(r"（.*?）", "", cells[1])) if term.strip()]
        rows.append((english, chinese))
    return rows


def test_glossary_has_terms():
    assert len(_glossary()) >= 30


@pytest.mark.parametrize("name", NAMES)
def test_chinese_notebooks_use_the_glossary_terms(name):
    english = " ".join(_prose(_source(c)) for c in _cells(NOTEBOOKS / "en" / f"{name}.ipynb", "markdown")).lower()
    chinese = " ".join(_prose(_source(c)) for c in _cells(NOTEBOOKS / "zh" / f"{name}.ipynb", "markdown"))
    missing = []
    for english_terms, chinese_terms in _glossary():
        used = any(re.search(rf"\b{re.escape(term)}\b", english) for term in english_terms)
        if used and not any(term in chinese for term in chinese_terms):
            missing.append(f"{english_terms[0]} -> {chinese_terms}")
    assert not missing, f"English uses these terms but the Chinese text lacks the glossary's word: {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_code_cells_keep_within_the_linters_line_length(name):
    # ruff cannot tell a source's markdown comments from its code, so the code's 120 columns are kept here
    for cell in _cells(NOTEBOOKS / "en" / f"{name}.ipynb", "code"):
        for line in _source(cell).splitlines():
            assert len(line) <= 120, f"{name}: {len(line)} columns: {line[:60]}..."
