"""Prose every notebook shares: markdown snippets that the notebooks' sources use with a line
`<!-- include NAME -->` (see notebooks/build.py)."""

# %% [markdown] snippet="setup-text" lang="en"
# The next cell checks the parameters above. Papermill hands `-p QUICK false` over as the *string*
# `"false"`, which Python treats as true, so every parameter is converted to the type written in
# the parameters cell. Figures are shown here and also saved under `OUT_DIR`.

# %% [markdown] snippet="setup-text" lang="zh"
# 下一个单元格检查上面的参数。用 papermill 运行时，`-p QUICK false` 传进来的是*字符串*
# `"false"`，而非空字符串在 Python 里为真，所以这里按参数单元格（parameters cell）中写明的类型逐一转换。
# 每张图在这里显示，同时保存到 `OUT_DIR` 目录下。

# %% [markdown] snippet="colab-tip" lang="en"
# On Colab, files written under `OUT_DIR` vanish with the session: to keep them, mount Drive (`from google.colab import drive; drive.mount('/content/drive')`) and set `OUT_DIR` to a folder under `/content/drive/MyDrive`.

# %% [markdown] snippet="colab-tip" lang="zh"
# 在 Colab 上，写到 `OUT_DIR` 下的文件会随会话结束而消失。若要保留，先挂载 Google 云端硬盘（`from google.colab import drive; drive.mount('/content/drive')`），再把 `OUT_DIR` 设为`/content/drive/MyDrive` 下的某个目录。
