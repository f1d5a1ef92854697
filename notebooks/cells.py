"""Cell constructors shared by the notebook sources, and the cells every notebook opens with.

A notebook source is a list of cells: `markdown(en, zh)` carries both languages, `code(source)`
is shared verbatim by both, and `parameters(source)` is the papermill parameters cell.
"""
from textwrap import dedent

COLAB_ORG = "recakit"  # placeholder GitHub organisation of the Colab badge, the install cell and doc links
GITHUB = f"https://github.com/{COLAB_ORG}/recakit/blob/main"  # files a pip install does not carry (docs/)
PAPER = "https://arxiv.org/abs/2509.07295"  # RecA: Reconstruction Alignment Improves Unified Multimodal Models

COLAB_TIP = {
    "en": "On Colab, files written under `OUT_DIR` vanish with the session: to keep them, mount Drive "
          "(`from google.colab import drive; drive.mount('/content/drive')`) and set `OUT_DIR` to a folder "
          "under `/content/drive/MyDrive`.",
    "zh": "在 Colab 上，写到 `OUT_DIR` 下的文件会随会话结束而消失。若要保留，先挂载 Google 云端硬盘"
          "（`from google.colab import drive; drive.mount('/content/drive')`），再把 `OUT_DIR` 设为"
          "`/content/drive/MyDrive` 下的某个目录。",
}


def markdown(en: str, zh: str) -> dict:
    return {"kind": "markdown", "en": dedent(en).strip(), "zh": dedent(zh).strip()}


def code(source: str) -> dict:
    return {"kind": "code", "source": dedent(source).strip()}


def parameters(source: str) -> dict:
    return {"kind": "parameters", "source": dedent(source).strip()}


def opening(name: str, title_en: str, title_zh: str, intro_en: str, intro_zh: str) -> list[dict]:
    """Title with the Open-in-Colab badge and the Colab tip, then the Colab-only install cell (the
    slim `colab` extra: no JupyterLab, papermill or nbval, which Colab neither needs nor wants)."""
    def badge(language):
        url = f"https://colab.research.google.com/github/{COLAB_ORG}/recakit/blob/main/notebooks/{language}/{name}.ipynb"
        return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"

    return [
        markdown(f"# {title_en}\n\n{badge('en')}\n\n{dedent(intro_en).strip()}\n\n{COLAB_TIP['en']}",
                 f"# {title_zh}\n\n{badge('zh')}\n\n{dedent(intro_zh).strip()}\n\n{COLAB_TIP['zh']}"),
        code(f'''
            import sys

            if "google.colab" in sys.modules:  # Colab starts without recakit; a local install already has it
                %pip install -q "recakit[colab] @ git+https://github.com/{COLAB_ORG}/recakit.git"
                from recakit.notebook import restart_notice

                restart_notice()  # says so if Colab must restart to use an upgraded package
            '''),
    ]


SETUP = code('''
    from pathlib import Path

    import torch
    from recakit.notebook import check_device, coerce_parameters, summarize_figures

    print(coerce_parameters(globals()))  # papermill passes `-p QUICK false` as a string
    DEVICE = check_device(DEVICE)
    torch.manual_seed(SEED)
    summarize_figures()  # a figure's text form is a digest of its data, so re-runs can be compared (nbval)
    OUT_DIR = Path(OUT_DIR)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    ''')

SETUP_TEXT = markdown(
    """
    The next cell checks the parameters above. Papermill hands `-p QUICK false` over as the *string*
    `"false"`, which Python treats as true, so every parameter is converted to the type written in
    the parameters cell. Figures are shown here and also saved under `OUT_DIR`.
    """,
    """
    下一个单元格检查上面的参数。用 papermill 运行时，`-p QUICK false` 传进来的是*字符串*
    `"false"`，而非空字符串在 Python 里为真，所以这里按参数单元格（parameters cell）中写明的类型逐一转换。
    每张图在这里显示，同时保存到 `OUT_DIR` 目录下。
    """)
