"""Cell constructors shared by the notebook sources, and the cells every notebook opens with.

A notebook source is a list of cells: `markdown(en, zh)` carries both languages, `code(source)`
is shared verbatim by both, and `parameters(source)` is the papermill parameters cell.
"""
from textwrap import dedent

COLAB_ORG = "recakit"  # placeholder GitHub organisation of the Colab badge and the install cell


def markdown(en: str, zh: str) -> dict:
    return {"kind": "markdown", "en": dedent(en).strip(), "zh": dedent(zh).strip()}


def code(source: str) -> dict:
    return {"kind": "code", "source": dedent(source).strip()}


def parameters(source: str) -> dict:
    return {"kind": "parameters", "source": dedent(source).strip()}


def opening(name: str, title_en: str, title_zh: str, intro_en: str, intro_zh: str) -> list[dict]:
    """Title with the Open-in-Colab badge, then the Colab-only install cell."""
    def badge(language):
        url = f"https://colab.research.google.com/github/{COLAB_ORG}/recakit/blob/main/notebooks/{language}/{name}.ipynb"
        return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"

    return [
        markdown(f"# {title_en}\n\n{badge('en')}\n\n{dedent(intro_en).strip()}",
                 f"# {title_zh}\n\n{badge('zh')}\n\n{dedent(intro_zh).strip()}"),
        code(f'''
            import sys

            if "google.colab" in sys.modules:  # Colab starts without recakit; a local install already has it
                %pip install -q "recakit @ git+https://github.com/{COLAB_ORG}/recakit.git"
            '''),
    ]


SETUP = code('''
    from pathlib import Path

    import torch
    from recakit.notebook import check_device, coerce_parameters

    print(coerce_parameters(globals()))  # papermill passes `-p QUICK false` as a string
    DEVICE = check_device(DEVICE)
    OUT_DIR = Path(OUT_DIR)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    ''')

SETUP_TEXT = markdown(
    """
    The next cell checks the parameters above. Papermill hands `-p QUICK false` over as the *string*
    `"false"`, which Python treats as true, so every parameter is converted to the type written in
    the parameters cell. Figures are shown here and also saved under `OUT_DIR`.
    """,
    """
    下一个单元格检查上面的参数。用 papermill 运行时，`-p QUICK false` 传进来的是*字符串*
    `"false"`，而非空字符串在 Python 里为真，所以这里按参数单元格中写明的类型逐一转换。
    每张图在这里显示，同时保存到 `OUT_DIR` 目录下。
    """)
