"""Notebook 04: GenEval(-mini) for a base model, an equal-compute control and RecA, and the gains
beside the published ones."""

# %% [markdown] lang="en"
# # 04 · Benchmarks: does RecA help?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/recakit/recakit/blob/main/notebooks/en/04_benchmarks.ipynb)
#
# RecA's claim is measured with GenEval: short compositional prompts ("a red cup and a blue clock"),
# an object detector on every generated image, and a yes/no check of the prompt's objects, counts,
# colours and positions. This chapter scores three models the same way: the toy base, an
# *equal-compute control* (the base trained as long on its usual text-to-image task) and the RecA
# model, and sets the gains beside the ones published in the
# [RecA paper](https://arxiv.org/abs/2509.07295) (its table of results per architecture: Show-o, Harmon, OpenUni, BAGEL).
#
# **You will learn** to
# - read a GenEval score: what is judged per image, and how task scores make the overall score;
# - tell a real gain from noise, and why a control arm is needed to credit RecA rather than
#   "more training";
# - run the same benchmark on a real model on a GPU (official prompts, Mask2Former detector).
#
# On a CPU it uses *GenEval-mini*: the same six tasks and judging rules over ShapesWorld prompts,
# scored by an exact shapes detector. The default run scores the three shipped toy models on the
# whole GenEval-mini in a few minutes.
#
# <!-- include colab-tip -->

# %% [markdown] lang="zh"
# # 04 · 基准测试：RecA 有没有用？
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/recakit/recakit/blob/main/notebooks/zh/04_benchmarks.ipynb)
#
# RecA 的效果是用 GenEval 衡量的：一组简短的组合式提示词（prompt，例如“一个红色杯子和一个蓝色时钟”），
# 对每张生成的图跑目标检测，再逐条核对提示词要求的物体、数量、颜色和位置是否满足。本章用同样的方法给三个模型打分：
# 玩具基础模型、*等算力对照组*（把基础模型按它原来的文生图（text-to-image）任务再训练同样久），以及 RecA 模型；
# 然后把提升幅度与 [RecA 论文](https://arxiv.org/abs/2509.07295)公开的结果（论文中按架构列出的结果表：Show-o、Harmon、OpenUni、BAGEL）
# 放在一起比较。
#
# **学习目标**
# - 读懂 GenEval 分数：每张图判什么，各任务得分如何组成总分；
# - 分辨真实的提升与随机波动，并理解为什么需要对照组，才能把提升归功于 RecA 而不是“多训练了一会儿”；
# - 在 GPU 上对真实模型跑同一套基准测试（benchmark）：官方提示词加 Mask2Former 检测器（detector）。
#
# 在 CPU 上使用 *GenEval-mini*：任务类别和判分规则与 GenEval 完全相同，只是提示词换成 ShapesWorld 场景，
# 并用一个精确的形状检测器打分。默认运行在整个 GenEval-mini 上给随包发布的三个玩具模型（toy model）打分，
# 几分钟即可完成。
#
# <!-- include colab-tip -->

# %%
import sys

if "google.colab" in sys.modules:  # Colab starts without recakit; a local install already has it
    # %pip install -q "recakit[colab] @ git+https://github.com/recakit/recakit.git"
    from recakit.notebook import restart_notice

    restart_notice()  # says so if Colab must restart to use an upgraded package

# %% tags=["parameters"]
QUICK: bool = True        # True: 2 images per prompt (the reproduction's setting); False: 4
BASE_MODEL: str = "toy"   # "toy", or a hub id / folder such as deepseek-community/Janus-Pro-1B
CONTROL_MODEL: str = "toy-control"  # the equal-compute control; "" leaves it out
RECA_MODEL: str = "toy-reca"  # "toy-reca" (shipped) or a folder, e.g. runs/02_reca_finetuning/reca_model
DEVICE: str = "auto"      # "auto", "cpu" or "cuda"
SEED: int = 0             # sampling seeds are SEED + prompt_index * N_PER_PROMPT + k
PROMPT_SET: str = "mini"  # "mini" (ShapesWorld), "official" (553 prompts) or a .jsonl path
SCORER: str = "shapes"    # "shapes" for GenEval-mini, "mask2former" for real images
N_PER_PROMPT: int = 0     # images per prompt; 0 means 2 in quick mode, 4 otherwise (the paper used 12 seeds)
BATCH_SIZE: int = 64      # images sampled at once (lower it for a large model on a small GPU)
CFG_SCALE: float = 3.0    # classifier-free guidance scale used for every model
RUN_DPG: bool = False     # also sample and score DPG-Bench (downloads its questions and a VQA model)
OUT_DIR: str = "runs/04_benchmarks"  # samples, scores and figures

# %% [markdown] lang="en"
# <!-- include setup-text -->

# %% [markdown] lang="zh"
# <!-- include setup-text -->

# %%
from pathlib import Path

import torch

from recakit.notebook import check_device, coerce_parameters, summarize_figures

print(coerce_parameters(globals()))  # papermill passes `-p QUICK false` as a string
DEVICE = check_device(DEVICE)
torch.manual_seed(SEED)
summarize_figures()  # a figure's text form is a digest of its data, so re-runs can be compared (nbval)
OUT_DIR = Path(OUT_DIR)
OUT_DIR.mkdir(parents=True, exist_ok=True)

# %% [markdown] lang="en"
# ## 1. The prompts and the score
#
# GenEval has six tasks: `single_object`, `two_object`, `counting`, `colors`, `position` and
# `color_attr` (two objects with a colour each). Every image $i$ of task $t$ is judged correct
# ($c_i = 1$) or not ($c_i = 0$); a task score is the share of correct images and the overall
# score the plain mean of the six:
#
# $$s_t = \frac{1}{N_t}\sum_{i \in t} c_i, \qquad s = \frac{1}{6}\sum_{t} s_t, \qquad
# \Delta_t = s_t^{\text{RecA}} - s_t^{\text{base}}.$$
#
# A task score from $N_t$ images has a standard error of about $\sqrt{s_t(1 - s_t)/N_t}$.
# GenEval-mini has 8 to 100 prompts per task, 2 images each: with 160 images (`colors`) a score
# near 30 % is known to within about ±4 points, with 16 (`single_object`) only to within about
# ±11. So a gain of a few points on one task may be chance; a gain of ten points overall, a mean
# over six tasks, is not.

# %% [markdown] lang="zh"
# ## 1. 提示词与分数
#
# GenEval 共有六类任务：`single_object`（单个物体）、`two_object`（两个物体）、`counting`（计数）、
# `colors`（颜色）、`position`（位置）和 `color_attr`（两个物体各有指定颜色）。任务 $t$ 的每张图 $i$
# 要么判为正确（$c_i = 1$），要么判为错误（$c_i = 0$）；任务得分是判为正确的图像所占比例，
# 总分是六类得分的简单平均：
#
# $$s_t = \frac{1}{N_t}\sum_{i \in t} c_i, \qquad s = \frac{1}{6}\sum_{t} s_t, \qquad
# \Delta_t = s_t^{\text{RecA}} - s_t^{\text{base}}.$$
#
# 由 $N_t$ 张图算出的任务得分，标准误约为 $\sqrt{s_t(1 - s_t)/N_t}$。GenEval-mini 每类任务有 8 到 100 条提示词，
# 每条 2 张图：160 张图（`colors`）、得分在 30 % 左右时，误差约为 ±4 分；只有 16 张图（`single_object`）时，
# 误差约为 ±11 分。所以单个任务上几分的提升可能只是偶然，而总分（六类任务的平均）上十分的提升则不是。

# %%
from collections import Counter

from recakit.bench import geneval

entries = geneval.load_prompts(PROMPT_SET)
N_PER_PROMPT = N_PER_PROMPT or (2 if QUICK else 4)
print(f"{len(entries)} prompts x {N_PER_PROMPT} images;", dict(Counter(e["tag"] for e in entries)))
print("for example:", entries[0]["prompt"], "|", entries[-1]["prompt"])

# %% [markdown] lang="en"
# ## 2. Three models, one recipe apart
#
# The three toy models ship with recakit and load by name. The two trained ones are the seed-0
# arms of `recakit reproduce --preset toy` (`recakit/toy/reproduce.py`), both trained from the base
# for 600 steps of 32 fresh ShapesWorld scenes at learning rate 2e-3:
# - `toy-control`: sparse text-to-image only, the task the base was trained on;
# - `toy-reca`: half of every batch is unlabeled images trained with the RecA loss (the image's
#   query states, seen at 32 px, as the condition; regenerate the full image), half sparse
#   text-to-image.
#
# Same steps, same images per step: whatever separates RecA from the control is the RecA loss,
# not extra compute. `RECA_MODEL` may also be a folder saved by notebook 02
# (`runs/02_reca_finetuning/reca_model` when both notebooks run from this folder). In notebook
# 01's diagram below, the control trains the generator on the caption path only; RecA trains the
# same generator on the image path too.

# %% [markdown] lang="zh"
# ## 2. 三个模型，只差一个训练配方
#
# 三个玩具模型随 recakit 一起发布，按名字即可加载。训练过的两个模型就是 `recakit reproduce --preset toy`
# （`recakit/toy/reproduce.py`）中随机种子（seed）为 0 的两组，都从基础模型出发，每步 32 个全新的 ShapesWorld
# 场景、学习率 2e-3，训练 600 步：
# - `toy-control`：只做简短描述的文生图，也就是基础模型原本的训练任务；
# - `toy-reca`：每批样本一半是无标注图像，用 RecA 损失训练（以图像在 32 像素下的查询状态（query states）为条件，
#   重新生成整张图），另一半做简短描述的文生图。
#
# 步数相同，每步图像数相同：RecA 与对照组之间的差别只能来自 RecA 损失，而不是多花的算力。
# `RECA_MODEL` 也可以是 notebook 02 保存的目录（两个 notebook 都在本目录下运行时，就是
# `runs/02_reca_finetuning/reca_model`）。在下面取自 notebook 01 的示意图中，对照组只沿文字描述那条路训练生成器；
# RecA 则让同一个生成器也沿图像那条路训练。

# %%
from recakit import viz

viz.reca_pipeline(save_to=OUT_DIR / "reca_pipeline.png");  # notebook 01's diagram; frozen parts in blue

# %%
from recakit import load_model

MODELS = {"base": BASE_MODEL, "control": CONTROL_MODEL, "RecA": RECA_MODEL}
MODELS = {label: name for label, name in MODELS.items() if name}
models = {label: load_model(name, device=DEVICE) for label, name in MODELS.items()}
processor = models["base"][1]
print({label: type(model).__name__ for label, (model, _) in models.items()})

# %% [markdown] lang="en"
# ## 3. Sample and score
#
# `geneval.sample_prompts` writes the official folder layout (`00000/metadata.jsonl`,
# `00000/samples/0000.png`, ...), so the same folder can also go to the official scorer. Every
# model draws with the same seeds, so the three differ only by their weights. Each model's
# samples go to their own folder, named after the model and the prompt set, and the folder's
# `run.json` records both with the sampling settings: a rerun resumes only a run with the same
# record and otherwise stops with an error, so it never reuses another model's images.
# `geneval.score_folder` then judges every image with the detector and the official rules.

# %% [markdown] lang="zh"
# ## 3. 采样（sampling）与打分
#
# `geneval.sample_prompts` 按官方目录结构写出样本（`00000/metadata.jsonl`、`00000/samples/0000.png`……），
# 所以同一个目录也可以直接交给官方评测脚本。所有模型使用相同的随机种子采样，三者的差别只在权重。
# 每个模型的样本写进各自的目录，目录名由模型和提示词集决定；目录中的 `run.json` 连同采样设置一起记下这两项：
# 再次运行时，只有记录完全相同才会接着上次继续，否则报错停止，因此绝不会误用别的模型的图像。
# 随后 `geneval.score_folder` 用检测器和官方规则逐张判分。

# %%
from recakit.bench.scorers import make_detector
from recakit.notebook import run_record

detector = make_detector(SCORER)
summaries = {}
for label, (model, model_processor) in models.items():
    record = run_record(MODELS[label], PROMPT_SET)
    folder = OUT_DIR / "geneval" / record["folder"]
    geneval.sample_prompts(model, model_processor, entries, folder, n_per_prompt=N_PER_PROMPT, seed=SEED,
                           batch_size=BATCH_SIZE, cfg_scale=CFG_SCALE, run_info=record)
    summaries[label] = geneval.score_folder(folder, detector)
    print(f"{label} ({MODELS[label]}): overall {100 * summaries[label]['overall']:.1f}")

# %% [markdown] lang="en"
# ## 4. The scores and the gains
#
# First the scores of the three models (x100), then the gains in points: RecA over the base, RecA
# over the control, and the paper's RecA over base for two models of its table,
# Harmon-1.5B (72.9 -> 85.7 overall) and OpenUni-2 (61.9 -> 74.1), from
# `recakit/data/published_results.csv`.

# %% [markdown] lang="zh"
# ## 4. 分数与提升
#
# 先看三个模型的得分（x100），再看提升（单位：分）：RecA 相对基础模型、RecA 相对对照组，以及论文结果表中
# 两个模型的 RecA 相对基础模型的提升：Harmon-1.5B（总分 72.9 -> 85.7）和 OpenUni-2（61.9 -> 74.1），
# 数据来自 `recakit/data/published_results.csv`。

# %%
from IPython.display import Markdown, display

from recakit.bench import report

COMPARISONS = [(high, low) for high, low in [("RecA", "base"), ("RecA", "control")] if low in summaries]
display(Markdown(report.results_table(summaries)))
display(Markdown(report.gains_table(summaries, COMPARISONS)))

# %% [markdown] lang="en"
# The figure keeps apart what must not share an axis: the left panel holds this run's scores
# on GenEval-mini, the middle one this run's gains, the right one the paper's gains on the real
# GenEval. A toy score and a published gain are different quantities on different benchmarks;
# what can be compared is the *pattern*: is RecA above both the base and the control, and on
# which tasks.

# %% [markdown] lang="zh"
# 下图把不能共用一根纵轴的量分开画：左图是本次运行在 GenEval-mini 上的得分，中图是本次运行的提升，
# 右图是论文在真实 GenEval 上的提升。玩具模型的得分与论文公开结果（published results）的提升是不同基准上的不同的量，
# 能比较的是*规律*：RecA 是否同时高于基础模型和对照组，以及提升出现在哪些任务上。

# %%
report.plot_gains(summaries, COMPARISONS, benchmark=f"GenEval-{PROMPT_SET}", save_to=OUT_DIR / "gains.png");

# %% [markdown] lang="en"
# ### Reading the result
#
# On the whole GenEval-mini the RecA model is clearly above both the base and the control,
# by about twelve points over the base and nine over the control (these are the numbers
# `recakit reproduce --preset toy` reports for seed 0; over three training seeds it reports
# base 22.7, control 27.7 ± 2.5, RecA 34.9 ± 1.0). The control gains only a few points: more
# text-to-image training on the same sparse captions does not teach the generator much, while the
# dense condition of RecA does.
#
# Where the toy gains is not where the paper gains most. The published gains are largest on
# `position`, `color_attr` and `two_object`, the tasks where the generator must follow what the
# understanding side knows. The toy's gain comes almost entirely from `colors` (the base seldom
# draws the colour it is asked for; RecA does so about half the time) and from `single_object`,
# whose 16 images make its +19 points less certain than they look.
# `two_object` rises over the base, but as much for the control: that is more training, not RecA.
# `counting`, `position` and `color_attr` barely move for any model; these stay hard for a
# generator this small. Per task, remember the standard errors from section 1.

# %% [markdown] lang="zh"
# ### 怎样解读结果
#
# 在整个 GenEval-mini 上，RecA 模型明显高于基础模型和对照组：比基础模型高约十二分，比对照组高约九分
# （这正是 `recakit reproduce --preset toy` 在随机种子 0 上报告的数字；它在三个训练种子上的结果是
# 基础模型 22.7、对照组 27.7 ± 2.5、RecA 34.9 ± 1.0）。对照组只提高了几分：用同样的简短描述继续做文生图，
# 生成器学不到多少东西；而 RecA 的稠密条件能教会它。
#
# 玩具模型的提升出现的位置与论文不同。论文中提升最大的是 `position`、`color_attr` 和 `two_object`，
# 这几类任务最需要生成器紧跟理解侧掌握的信息。玩具模型的提升几乎全部来自 `colors`（基础模型很少画出要求的颜色，
# RecA 模型大约一半的时候能画对）和 `single_object`（它只有 16 张图，+19 分并不像看上去那么确定）。`two_object` 比基础模型有所提高，但对照组提高得一样多：
# 这是多训练带来的，而不是 RecA。`counting`、`position` 和 `color_attr` 对哪个模型都几乎不变，
# 对这么小的生成器来说它们仍然很难。看单个任务时，请记住第 1 节的标准误。

# %% [markdown] snippet="block-1"
# ```bash
# papermill 04_benchmarks.ipynb runs/geneval.ipynb -p QUICK False \
#     -p BASE_MODEL deepseek-community/Janus-Pro-1B -p CONTROL_MODEL "" \
#     -p RECA_MODEL runs/02_reca_finetuning/reca_model \
#     -p PROMPT_SET official -p SCORER mask2former -p DEVICE cuda -p BATCH_SIZE 16
# ```

# %% [markdown] snippet="block-2"
# ```bash
# recakit geneval sample --model runs/02_reca_finetuning/reca_model --set official --n-per-prompt 4 --out runs/geneval/reca
# recakit geneval score runs/geneval/reca --scorer mask2former --out runs/geneval/reca.json
# ```

# %% [markdown] lang="en"
# ## 5. The full path on a GPU
#
# The same cells run the real benchmark when the parameters say so. For the Janus-Pro model that
# notebook 02 fine-tuned (it saves to `OUT_DIR/reca_model`; merged when trained with LoRA), run
# from this folder:
#
# <!-- include block-1 -->
#
# or, step by step from the shell:
#
# <!-- include block-2 -->
#
# The Mask2Former scorer applies the official rules (score above 0.3, above 0.9 for counting;
# colours by CLIP on the masked object) without mmdet, which avoids the official scorer's known
# trouble with mmcv builds on new GPUs. DPG-Bench (1065 dense prompts, judged by a VQA model) is
# sampled and scored by the next cell when `RUN_DPG` is true (or with `recakit dpg`); its default
# VQA model is BLIP rather than the paper's mPLUG, so compare its scores between runs, not with
# the published DPG numbers. Expect about 10 s per 384 px image at batch 1
# and 0.7 s per image at batch 16 on an H200 for Janus-Pro-1B with the plain KV-cache sampler.

# %% [markdown] lang="zh"
# ## 5. 在 GPU 上跑完整评测
#
# 只要改参数，同样的单元格就会跑真正的基准测试。对 notebook 02 微调好的 Janus-Pro 模型（它保存在
# `OUT_DIR/reca_model`；用 LoRA 训练时保存的是合并后的权重），在本目录下运行：
#
# <!-- include block-1 -->
#
# 也可以在命令行里一步步来：
#
# <!-- include block-2 -->
#
# Mask2Former 打分器执行的是官方规则（置信度高于 0.3，计数任务高于 0.9；颜色由 CLIP 在抠出的物体上判断），
# 但不依赖 mmdet，因此避开了官方评测脚本在新一代 GPU 上编译 mmcv 的老问题。DPG-Bench（1065 条长提示词，
# 由 VQA 模型判分）在 `RUN_DPG` 为真时由下一个单元格采样和打分（也可以用 `recakit dpg` 命令）；
# 它默认的 VQA 模型是 BLIP 而不是论文用的 mPLUG，所以它的分数只适合在不同运行之间比较，
# 不宜与论文公开的 DPG 分数直接对比。Janus-Pro-1B 使用朴素的 KV 缓存采样器（sampler）时，
# 在 H200 上批大小为 1 时每张 384 像素的图约需 10 秒，批大小为 16 时每张约 0.7 秒。

# %%
if RUN_DPG:
    from recakit.bench import dpg

    items, vqa = dpg.load_items(), dpg.BlipVQA(device=DEVICE)
    for label, (model, model_processor) in models.items():
        folder = OUT_DIR / "dpg" / run_record(MODELS[label], "dpg")["folder"]
        dpg.sample_items(model, model_processor, items, folder, n_per_prompt=N_PER_PROMPT, seed=SEED,
                         cfg_scale=CFG_SCALE)
        summaries[label]["dpg"] = dpg.score_folder(folder, vqa, items, n_per_prompt=N_PER_PROMPT)["dpg"]
    display(Markdown(report.results_table(summaries, published=["Harmon-1.5B", "OpenUni-2-1.6B"])))

# %% [markdown] snippet="block-3"
# ```bash
# hf download OpenGVLab/InternVL3-1B-hf
# hf download Efficient-Large-Model/Sana_600M_512px_diffusers --include "transformer/*" "scheduler/*" model_index.json
# hf download OpenGVLab/InternVL3-2B-hf
# hf download Efficient-Large-Model/Sana_1600M_512px_diffusers --include "transformer/*" "scheduler/*" model_index.json
# hf download mit-han-lab/dc-ae-f32c32-sana-1.1-diffusers
# hf download wusize/openuni openuni_b_internvl3_1b_sana_0_6b_512_hf_text2image23m.pth
# hf download wusize/openuni openuni_l_internvl3_2b_sana_1_6b_512_hf_text2image23m.pth
# hf download sanaka87/OpenUni-1-0.6B-RecA --local-dir checkpoints/openuni-b-reca
# hf download sanaka87/OpenUni-RecA --local-dir checkpoints/openuni-l-reca
# ```

# %% [markdown] snippet="block-4"
# ```bash
# recakit geneval sample --model openuni-b --set official --n-per-prompt 12 --cfg-scale 4.5 --seed 42 --out runs/openuni-b/geneval
# recakit geneval score runs/openuni-b/geneval --scorer mask2former --out runs/openuni-b/geneval.json
# recakit geneval sample --model checkpoints/openuni-b-reca --set official --n-per-prompt 12 --cfg-scale 4.5 --seed 42 --out runs/openuni-b-reca-hub/geneval
# recakit geneval score runs/openuni-b-reca-hub/geneval --scorer mask2former --out runs/openuni-b-reca-hub/geneval.json
# recakit dpg sample --model openuni-b --n-per-prompt 4 --cfg-scale 4.5 --seed 42 --out runs/openuni-b/dpg
# recakit dpg score runs/openuni-b/dpg --out runs/openuni-b/dpg.json
# recakit dpg sample --model checkpoints/openuni-b-reca --n-per-prompt 4 --cfg-scale 4.5 --seed 42 --out runs/openuni-b-reca-hub/dpg
# recakit dpg score runs/openuni-b-reca-hub/dpg --out runs/openuni-b-reca-hub/dpg.json
# recakit geneval sample --model openuni-l --set official --n-per-prompt 12 --cfg-scale 4.5 --seed 42 --out runs/openuni-l/geneval
# recakit geneval score runs/openuni-l/geneval --scorer mask2former --out runs/openuni-l/geneval.json
# recakit geneval sample --model checkpoints/openuni-l-reca --set official --n-per-prompt 12 --cfg-scale 4.5 --seed 42 --out runs/openuni-l-reca/geneval
# recakit geneval score runs/openuni-l-reca/geneval --scorer mask2former --out runs/openuni-l-reca/geneval.json
# recakit dpg sample --model openuni-l --n-per-prompt 4 --cfg-scale 4.5 --seed 42 --out runs/openuni-l/dpg
# recakit dpg score runs/openuni-l/dpg --out runs/openuni-l/dpg.json
# recakit dpg sample --model checkpoints/openuni-l-reca --n-per-prompt 4 --cfg-scale 4.5 --seed 42 --out runs/openuni-l-reca/dpg
# recakit dpg score runs/openuni-l-reca/dpg --out runs/openuni-l-reca/dpg.json
# ```

# %% [markdown] snippet="block-5"
# ```bash
# recakit train --model openuni-b --images data/midjourney-v6 --steps 10000 --batch-size 16 --grad-accum 4 \
#     --lr 1e-5 --weight-decay 0.05 --instruction-dropout 0 --gradient-checkpointing --out runs/openuni-b-reca
# recakit geneval sample --model runs/openuni-b-reca/final --set official --n-per-prompt 12 --cfg-scale 4.5 --seed 42 --out runs/openuni-b-reca/geneval
# recakit geneval score runs/openuni-b-reca/geneval --scorer mask2former --out runs/openuni-b-reca/geneval.json
# ```

# %% [markdown] lang="en"
# ## 6. Reproducing OpenUni's published rows
#
# OpenUni is the family of the [paper](https://arxiv.org/abs/2509.07295) whose published RecA numbers recakit can check on a
# GPU: `load_model` builds OpenUni-B (InternVL3-1B + SANA 0.6B) and OpenUni-L (InternVL3-2B + SANA
# 1.6B) from hub parts, and loads the RecA checkpoints `sanaka87/OpenUni-1-0.6B-RecA` (B) and
# `sanaka87/OpenUni-RecA` (L). The recipe, with every detail and what can make a recakit number
# differ from the paper's, is in [docs/benchmarks.md](https://github.com/recakit/recakit/blob/main/docs/benchmarks.md#openuni-reproducing-the-papers-own-rows).
# Fetch the parts once:
#
# <!-- include block-3 -->
#
# Score base and RecA with the official settings: 12 images per prompt, 512 px, CFG 4.5, 20 steps,
# seed 42 (512 px and 20 steps are the family's defaults, and recakit adds upstream's "Generate an
# image: {prompt}" itself, so pass no `--rewrite`). If a RecA repository holds more than one
# checkpoint file, pass the file itself; `--shard K/N` splits a run over N GPUs. The OpenUni-L
# lines are the docs' own; OpenUni-B's write the published RecA model's scores to
# `runs/openuni-b-reca-hub`, since `runs/openuni-b-reca` is the fine-tuning run below.
#
# <!-- include block-4 -->
#
# To RecA-fine-tune OpenUni-B yourself, upstream's recipe (InternVL and the DC-AE frozen; AdamW
# lr 1e-5, weight decay 0.05, 10000 steps of 4 accumulated micro-batches) on a folder of
# unlabeled images (upstream used the ~1M midjourney-v6-llava images), then score `final/`:
#
# <!-- include block-5 -->
#
# | model | GenEval base → RecA (published) | DPG base → RecA (published) | RecA checkpoint |
# |---|---|---|---|
# | OpenUni-B ("OpenUni-1-0.6B") | 56.0 → 70.4 | 76.29 → 80.45 | `sanaka87/OpenUni-1-0.6B-RecA` |
# | OpenUni-L ("OpenUni-2-1.6B") | 61.9 → 74.1 | 79.02 → 82.75 | `sanaka87/OpenUni-RecA` |
#
# These are the paper's numbers, not recakit's (OpenUni-B's base is its RecA row minus the published
# gains). recakit's Mask2Former scorer and BLIP VQA model are not the official mmdet scorer and
# mPLUG: compare recakit's base with recakit's RecA, and measure the scorer's agreement (see the
# docs) before setting a number beside the table.

# %% [markdown] lang="zh"
# ## 6. 复现 OpenUni 的论文公开结果
#
# 在[论文](https://arxiv.org/abs/2509.07295)的模型家族中，OpenUni 是 recakit 能在 GPU 上核对其 RecA 公开数字的那一个：`load_model`
# 用 hub 上的组件搭出 OpenUni-B（InternVL3-1B + SANA 0.6B）和 OpenUni-L（InternVL3-2B + SANA 1.6B），
# 并能加载 RecA 检查点 `sanaka87/OpenUni-1-0.6B-RecA`（B）和 `sanaka87/OpenUni-RecA`（L）。完整的流程，
# 以及 recakit 的数字可能与论文不同的原因，见 [docs/benchmarks_zh.md](https://github.com/recakit/recakit/blob/main/docs/benchmarks_zh.md#openuni复现论文自己的结果)。
# 先下载一次各组件：
#
# <!-- include block-3 -->
#
# 按官方设置给基础模型和 RecA 模型打分：每条提示词 12 张图、512 像素、CFG 4.5、20 步、随机种子 42
# （512 像素和 20 步是这个家族的默认值；上游的提示词模板 "Generate an image: {prompt}" 由 recakit
# 自己加上，所以不要再传 `--rewrite`）。如果 RecA 仓库里有不止一个检查点文件，请直接传文件路径；
# `--shard K/N` 可以把一次采样分到 N 块 GPU 上。OpenUni-L 的命令与文档完全相同；OpenUni-B 公开的 RecA 模型的
# 分数写到 `runs/openuni-b-reca-hub`，因为 `runs/openuni-b-reca` 留给下面的微调。
#
# <!-- include block-4 -->
#
# 若要自己对 OpenUni-B 做 RecA 微调，按上游的配方（冻结 InternVL 和 DC-AE；AdamW，学习率 1e-5，
# 权重衰减 0.05，10000 步、每步累积 4 个微批次），数据是一个无标注图像文件夹（上游用的是约 100 万张
# midjourney-v6-llava 图像），然后给 `final/` 打分：
#
# <!-- include block-5 -->
#
# | 模型 | GenEval 基础模型 → RecA（论文公开结果） | DPG 基础模型 → RecA（论文公开结果） | RecA 检查点 |
# |---|---|---|---|
# | OpenUni-B（"OpenUni-1-0.6B"） | 56.0 → 70.4 | 76.29 → 80.45 | `sanaka87/OpenUni-1-0.6B-RecA` |
# | OpenUni-L（"OpenUni-2-1.6B"） | 61.9 → 74.1 | 79.02 → 82.75 | `sanaka87/OpenUni-RecA` |
#
# 这些是论文的数字，不是 recakit 测得的（OpenUni-B 的基础模型分数是它的 RecA 那一行减去公开的提升）。
# recakit 的 Mask2Former 打分器和 BLIP VQA 模型并不是官方的 mmdet 打分器和 mPLUG：请拿 recakit 的基础模型
# 与 recakit 的 RecA 比较，把数字放到表旁边之前，先按文档测出打分器与官方的一致率。

# %% [markdown] snippet="standard-error-solution"
# ```python
# import math
# for task in geneval.TASKS:
#     n = N_PER_PROMPT * sum(entry["tag"] == task for entry in entries)
#     se = math.hypot(*(math.sqrt(s * (1 - s) / n) for s in (summaries[m]["tasks"][task] for m in ("RecA", "control"))))
#     gain = summaries["RecA"]["tasks"][task] - summaries["control"]["tasks"][task]
#     print(f"{task:<14} gain {100 * gain:+5.1f}  2 se {200 * se:4.1f}", "*" if abs(gain) > 2 * se else "")
# ```

# %% [markdown] snippet="block-7"
# ```bash
# papermill 02_reca_finetuning.ipynb runs/02.ipynb -p QUICK False
# papermill 04_benchmarks.ipynb runs/04.ipynb -p RECA_MODEL runs/02_reca_finetuning/reca_model
# ```

# %% [markdown] lang="en"
# ## What you learned
#
# - A GenEval score is a mean of yes/no verdicts per image and task; with tens to a few hundred
#   images per task, single-task differences of a few points are within noise.
# - A fair comparison needs an equal-compute control: here the control gains about three points,
#   RecA about four times as much, so the gain belongs to the RecA loss.
# - The toy reproduces the *direction* of the paper's result ([arXiv 2509.07295](https://arxiv.org/abs/2509.07295), its
#   per-architecture table), not its size or its per-task pattern; scores from different
#   benchmarks belong on different axes.
# - The same functions score a real model on the official prompts with a Mask2Former detector.
#
# ## Exercises
#
# 1. Compute the standard error of every task score of the RecA model and mark the gains over
#    the control larger than twice their standard error.
#
# <details><summary>Solution</summary>
#
# <!-- include standard-error-solution -->
#
# The standard error of a difference of two independent scores is the root of the sum of their
# squared errors. Only the large gains pass; the overall gain, a mean over six tasks, has a
# smaller error than any one task.
# </details>
#
# 2. Run notebook 02 with `QUICK = False` (the study's recipe, about ten minutes on a CPU), then
#    this one with `RECA_MODEL = "runs/02_reca_finetuning/reca_model"`. Is your model above the
#    control?
#
# <details><summary>Solution</summary>
#
# <!-- include block-7 -->
#
# Notebook 02's full mode trains with the recipe of the shipped `toy-reca` (600 steps, batch 32,
# lr 2e-3, RecA at 32 px, half text-to-image), so expect a model of the same kind: above the
# control by several points overall. Its scores differ a little from the shipped arm's whenever
# the training data or seed differ; the reproduction's three seeds spread by about one point.
# </details>
#
# 3. Does guidance matter for the gain? Score base and RecA at `CFG_SCALE = 1.0` (no guidance)
#    and `5.0`.
#
# <details><summary>Solution</summary>
#
# Run with `-p CFG_SCALE 1.0` and `-p CFG_SCALE 5.0` and a new `OUT_DIR` each time (the guidance
# scale is part of each folder's `run.json`, so reusing the folder stops with an error instead of
# mixing images). The guidance scale decides how strictly the condition is followed, so it moves
# every model's scores; what answers the question is whether RecA stays above base and control
# at every scale, that is, compare the gains, not the scores.
# </details>

# %% [markdown] lang="zh"
# ## 本章小结
#
# - GenEval 分数是逐张图、逐任务的“是/否”判定的平均；每类任务只有几十到几百张图时，单个任务上几分的差别在随机波动之内。
# - 公平的比较需要等算力对照组：这里对照组只提高了约三分，RecA 的提升约是它的四倍，所以提升应归功于 RecA 损失。
# - 玩具模型复现的是论文结果的*方向*（[arXiv 2509.07295](https://arxiv.org/abs/2509.07295)，按架构列出的结果表），
#   而不是提升的大小或各任务上的分布；来自不同基准的分数应画在不同的坐标轴上。
# - 同一套函数也能在官方提示词上用 Mask2Former 检测器给真实模型打分。
#
# ## 练习
#
# 1. 计算 RecA 模型每个任务得分的标准误，并标出相对对照组的提升中大于两倍标准误的那些。
#
# <details><summary>参考答案</summary>
#
# <!-- include standard-error-solution -->
#
# 两个相互独立的得分之差，其标准误等于两者标准误平方和的平方根。只有较大的提升能通过检验；
# 总分是六类任务的平均，它的误差比任何单个任务都小。
# </details>
#
# 2. 先用 `QUICK = False` 运行 notebook 02（即玩具实验的训练配方，在 CPU 上约十分钟），再把本 notebook 的
#    `RECA_MODEL` 设为 `"runs/02_reca_finetuning/reca_model"` 运行一遍。你的模型高于对照组吗？
#
# <details><summary>参考答案</summary>
#
# <!-- include block-7 -->
#
# notebook 02 的完整模式使用与随包发布的 `toy-reca` 相同的配方（600 步、批大小 32、学习率 2e-3、
# RecA 在 32 像素下进行、一半样本做文生图），所以会得到同一类模型：总分比对照组高出好几分。
# 只要训练数据或随机种子不同，它的分数就会与发布的模型略有出入；复现实验的三个训练种子之间相差约一分。
# </details>
#
# 3. 引导对提升有影响吗？分别在 `CFG_SCALE = 1.0`（不引导）和 `5.0` 下给基础模型和 RecA 模型打分。
#
# <details><summary>参考答案</summary>
#
# 分别用 `-p CFG_SCALE 1.0` 和 `-p CFG_SCALE 5.0` 运行，每次换一个新的 `OUT_DIR`（引导强度，即 guidance scale，记录在每个目录的
# `run.json` 里，沿用旧目录会报错停止，而不会把图像混在一起）。引导强度决定模型遵循条件的严格程度，
# 所以每个模型的分数都会随之变化；要回答这个问题，要看 RecA 在每个强度下是否都高于基础模型和对照组，
# 也就是比较提升，而不是分数本身。
# </details>
