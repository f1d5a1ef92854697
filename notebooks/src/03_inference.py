"""Notebook 03: inference -- base vs RecA, semantic reconstruction, a guided sampling loop, a widget."""

# %% [markdown] lang="en"
# # 03 · Inference: generating, reconstructing, guiding
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/recakit/recakit/blob/main/notebooks/en/03_inference.ipynb)
#
# A RecA model is used like any unified model: give it a prompt and it draws; give it an image and
# it describes it. RecA adds a third use, *semantic reconstruction*: image -> understanding
# embeddings -> new image, which shows directly what the model's understanding keeps of a picture
# and how well the generator can draw it.
#
# **Learning goals.** After this chapter you can
# 1. sample images from a prompt and from an image, and compare a base model with its RecA
#    fine-tune on the same prompts and seeds;
# 2. write classifier-free guidance as an equation and as a loop of about ten lines, and check that
#    the loop gives exactly the image `recakit.generate_images` gives;
# 3. read a guidance sweep and choose a scale;
# 4. sample from a model with a diffusion head (OpenUni) with the same call, and know where the
#    recipe for its released checkpoints is;
# 5. load a model in 4 or 8 bits to save memory (appendix).
#
# The default run uses the shipped toy models: the base (`"toy"`) and its RecA fine-tune
# (`"toy-reca"`, seed 0 of the toy reproduction in `recakit reproduce`). Be warned: the base's
# samples are poor. Its generator learned text-to-image from sparse captions only and often draws
# the wrong colour or the wrong shape; the point of this chapter is to see what RecA changes. Section 6
# samples a tiny, randomly initialised OpenUni, the paper's own diffusion family. The
# gains measured on the paper's models are in [arXiv 2509.07295](https://arxiv.org/abs/2509.07295) (GenEval and DPG-Bench
# tables); notebook 04 measures the toy's.
#
# <!-- include colab-tip -->

# %% [markdown] lang="zh"
# # 03 · 推理：生成、重建与引导
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/recakit/recakit/blob/main/notebooks/zh/03_inference.ipynb)
#
# RecA 模型的用法和普通统一模型一样：给它提示词（prompt），它就画图；给它图像，它就描述。RecA 还多了第三种用法，
# *语义重建*（semantic reconstruction）：图像 -> 理解嵌入（understanding embeddings）-> 新图像。它能直接展示模型的“理解”保留了
# 一张图的哪些信息，以及生成器能把它画得多好。
#
# **学习目标**。读完本章，你能够：
# 1. 从提示词和从图像出发采样（sampling）出图像，并在相同的提示词和随机种子（seed）下比较基础模型与它的
#    RecA 微调（fine-tuning）版本；
# 2. 把无分类器引导（classifier-free guidance，CFG）写成公式，再写成十行左右的循环，并验证这个循环给出的
#    图像与 `recakit.generate_images` 完全相同；
# 3. 看懂引导强度（guidance scale）扫描图，并选出合适的强度；
# 4. 用同一个调用从带扩散头（diffusion head）的模型（OpenUni）采样，并知道其公开检查点（checkpoint）的复现步骤在哪里；
# 5. 以 4 位或 8 位加载模型以节省显存（附录）。
#
# 默认运行使用随包附带的玩具模型（toy model）：基础模型（`"toy"`）和它的 RecA 微调版本（`"toy-reca"`，即
# `recakit reproduce` 玩具复现中的种子 0）。事先说明：基础模型的样本很差。它的生成器只用稀疏的图像描述（captions）学过
# 文生图（text-to-image），经常画错颜色或形状；本章要看的正是 RecA 改变了什么。第 6 节则从一个随机初始化的迷你 OpenUni 采样，它属于论文自己用到的扩散模型族。论文模型上测得的提升见
# [arXiv 2509.07295](https://arxiv.org/abs/2509.07295)（GenEval 与 DPG-Bench 的表格）；玩具模型的提升由 notebook 04 测量。
#
# <!-- include colab-tip -->

# %%
import sys

if "google.colab" in sys.modules:  # Colab starts without recakit; a local install already has it
    # %pip install -q "recakit[colab] @ git+https://github.com/recakit/recakit.git"
    from recakit.notebook import restart_notice

    restart_notice()  # says so if Colab must restart to use an upgraded package

# %% tags=["parameters"]
QUICK: bool = True       # small settings that finish in about a minute on a CPU
MODEL: str = "toy-reca"  # the RecA model: "toy-reca", a folder saved by notebook 02, or a hub id
BASE: str = "toy"        # the model it was fine-tuned from, shown beside it
DEVICE: str = "auto"     # "auto", "cpu" or "cuda"
SEED: int = 0            # image i of a call uses seed SEED + i
CFG_SCALE: float = 3.0   # classifier-free guidance scale (1 means no guidance)
OUT_DIR: str = "runs/03_inference"  # figures are saved here

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

# %%
from recakit import caption, generate_images, load_model, reconstruct, viz
from recakit.toy.shapes import scene_dataset

model, processor = load_model(MODEL, device=DEVICE)
base, base_processor = load_model(BASE, device=DEVICE)
IMAGE_SIZE = getattr(processor, "image_size", 384)  # the toy's processor knows its size; Janus-Pro draws 384 px

# %%
viz.reca_pipeline(save_to=OUT_DIR / "reca_pipeline.png");  # notebook 01's diagram; frozen parts in blue

# %% [markdown] lang="en"
# ## 1. Text-to-image, base and RecA
#
# `generate_images` draws one image per prompt. Image *i* depends only on prompt *i* and seed
# `SEED + i`, never on which other prompts share the batch, so any image can be reproduced alone,
# and the two models below start from exactly the same random numbers. In notebook 01's diagram
# above, this section takes the caption path into the generator; section 2 takes the image path,
# the one RecA trains.

# %% [markdown] lang="zh"
# ## 1. 文生图：基础模型与 RecA 模型
#
# `generate_images` 为每个提示词生成一张图。第 *i* 张图只取决于第 *i* 个提示词和随机种子
# `SEED + i`，与同一批里还有哪些提示词无关，所以任何一张图都可以单独复现，下面两个模型用的也是完全相同的随机数。
# 在上面取自 notebook 01 的示意图中，本节走的是文字描述进入生成器的那条路；第 2 节走的是图像那条路，
# 也就是 RecA 训练的路径。

# %%
PROMPTS = ["a red circle", "a blue square below a green star", "three yellow triangles", "a white ring"]
base_images = generate_images(base, base_processor, PROMPTS, cfg_scale=CFG_SCALE, seed=SEED)
images = generate_images(model, processor, PROMPTS, cfg_scale=CFG_SCALE, seed=SEED)
viz.image_grid([base_images, images], titles=[PROMPTS, [""] * len(PROMPTS)], row_labels=["base", "RecA"],
               save_to=OUT_DIR / "text_to_image.png");

# %% [markdown] lang="en"
# Neither model is good at this: both draw extra objects, and neither gets a count or a relation
# right. The difference is colour. In the default run the base draws none of the named colours
# for "a red circle", "a blue square below a green star" or "a white ring" (orange and pink
# blobs, a yellow square, rings in four other colours); the RecA model draws a red circle, a
# blue square and a white shape, each among other objects. That is the kind of gain notebook 04
# measures over the whole GenEval-mini prompt set, where colour is the task RecA lifts most.

# %% [markdown] lang="zh"
# 两个模型都画得不好：都会多画出别的物体，数量和位置关系也都不对。差别在颜色上。默认运行中，对
# “a red circle”、“a blue square below a green star”和“a white ring”，基础模型一种指定的颜色都没画出来
# （橙色和粉色的色块、一个黄色方块、四种别的颜色的圆环）；RecA 模型则画出了一个红色圆形、一个蓝色方块和
# 一个白色形状，只是旁边还有其他物体。notebook 04 在整个 GenEval-mini 提示词集上测量的正是这种提升，
# 其中颜色是 RecA 提升最多的任务。

# %% [markdown] lang="en"
# ## 2. Semantic reconstruction
#
# `reconstruct` feeds each input image through the understanding encoder and generates from the
# embeddings, exactly the path RecA trains. The result is not a pixel copy: it is the model's
# *reading* of the image, drawn again. Both models get the same inputs and seeds.

# %% [markdown] lang="zh"
# ## 2. 语义重建
#
# `reconstruct` 先用理解编码器（understanding encoder）处理每张输入图，再从得到的理解嵌入出发生成新图，走的正是 RecA 训练的那条路径。结果不是逐像素的复制，而是模型对这张图的*理解*
# 被重新画了出来。两个模型拿到的输入和随机种子完全相同。

# %%
inputs = [example.image for example in scene_dataset(4, seed=SEED + 100, image_size=IMAGE_SIZE)]
base_rebuilt = reconstruct(base, base_processor, inputs, cfg_scale=CFG_SCALE, seed=SEED)
rebuilt = reconstruct(model, processor, inputs, cfg_scale=CFG_SCALE, seed=SEED)
viz.image_grid([inputs, base_rebuilt, rebuilt], row_labels=["input", "base", "RecA"],
               titles=[[f"input {i + 1}" for i in range(len(inputs))], [""] * len(inputs), [""] * len(inputs)],
               save_to=OUT_DIR / "reconstruction.png");

# %% [markdown] lang="en"
# The base's reconstructions have little to do with their inputs: its generator learned text-to-image
# only and was never trained to draw from an image's query states. After RecA the reconstructions
# keep the colour of inputs 1 and 3 (blue, orange) and some shapes of the others (the star of
# input 2, the ring, triangle and square of input 4), while counts, positions and the colours of
# input 2 are still off. This is the skill RecA trains, seen directly.
#
# The understanding side also writes a caption for each input (greedy image-to-text). RecA never
# trains the toy's understanding side, so base and RecA write the same words; here they are in
# full. The first three are right. The fourth names a pink triangle and a brown circle where
# input 4 has a black square and a black circle: what the understanding side gets wrong, no
# generator can rebuild from it.

# %% [markdown] lang="zh"
# 基础模型的重建结果与输入几乎无关：它的生成器只学过文生图，从没练过根据图像的查询状态（query states）作画。经过 RecA
# 之后，重建结果保住了输入 1 和输入 3 的颜色（蓝色、橙色），其余两张也保住了部分形状（输入 2 的星形，输入 4
# 的圆环、三角形和方块），不过数量、位置以及输入 2 的颜色仍然不对。这正是 RecA 训练的那项本事，在这里可以直接看到。
#
# 理解侧还会为每张输入图写一句描述（贪心解码的图生文）。RecA 从不训练玩具模型的理解侧，所以基础模型和 RecA
# 模型写出的描述一字不差；完整内容如下。前三句是对的。第四句说有一个粉色三角形和一个棕色圆形，而输入 4 里
# 实际是一个黑色方块和一个黑色圆形：理解侧弄错的东西，任何生成器都无法据此重建出来。

# %%
from IPython.display import Markdown, display

captions = caption(model, processor, inputs, max_new_tokens=96)  # long enough for every ShapesWorld caption
display(Markdown("\n".join(["| input | caption |", "|---|---|"]
                            + [f"| {i + 1} | {text} |" for i, text in enumerate(captions)])))

# %% [markdown] lang="en"
# ## 3. Classifier-free guidance, written out
#
# At every step the generator gives logits $\ell^{\text{cond}}$ over the codebook from the prompt
# and $\ell^{\text{uncond}}$ from the unconditional prefix (the prompt dropped, as it was for some
# captions in training). Classifier-free guidance samples the next token from
#
# $$\ell = \ell^{\text{uncond}} + s\,\big(\ell^{\text{cond}} - \ell^{\text{uncond}}\big), \qquad v_t \sim \operatorname{softmax}(\ell)$$
#
# with guidance scale $s$. At $s = 1$ this is the conditional model; larger $s$ pushes away from
# what the model would draw without a prompt. The loop below is the whole sampler: the
# conditional and unconditional rows run side by side in one batch with a key-value cache, so
# each step feeds only the code just chosen. The draw uses the Gumbel-max trick: the argmax of
# $\ell + g$, with $g = -\log(-\log u)$ and $u$ uniform, is a sample from
# $\operatorname{softmax}(\ell)$, and every image gets its own seeded generator.

# %% [markdown] lang="zh"
# ## 3. 把无分类器引导写出来
#
# 每一步，生成器根据提示词给出码本（codebook）上的 logits $\ell^{\text{cond}}$，再根据无条件的前缀（prefix）给出 $\ell^{\text{uncond}}$；
# 无条件前缀就是去掉提示词后的前缀，和训练时部分描述被丢弃的情形一样。无分类器引导从下式中采样下一个 token：
#
# $$\ell = \ell^{\text{uncond}} + s\,\big(\ell^{\text{cond}} - \ell^{\text{uncond}}\big), \qquad v_t \sim \operatorname{softmax}(\ell)$$
#
# 其中 $s$ 是引导强度。$s = 1$ 时就是条件模型本身；$s$ 越大，结果离“没有提示词时模型会画的东西”越远。
# 下面的循环就是采样器的全部：条件行和无条件行放在同一批里并排计算，并使用键值缓存，所以每一步只需输入
# 刚选出的那个码字（code word）。抽样用的是 Gumbel-max 技巧：$\ell + g$ 的 argmax（其中
# $g = -\log(-\log u)$，$u$ 服从均匀分布）正好是从 $\operatorname{softmax}(\ell)$ 中抽取的一个样本；
# 每张图都有自己带种子的随机数生成器。

# %%
from transformers import DynamicCache

from recakit import adapter_for

adapter = adapter_for(model, processor)
# row 0 conditional, row 1 unconditional
inputs_embeds, mask = adapter.prefix_from_text([PROMPTS[0]] * 2, torch.tensor([False, True]))
positions = mask.cumsum(-1) - 1
generator = torch.Generator(device=adapter.device).manual_seed(SEED)  # generate_images gives prompt 0 seed SEED
cache, codes = DynamicCache(), []
with torch.no_grad():
    for _ in range(adapter.num_image_tokens):
        hidden, cache = adapter.forward_generation(inputs_embeds, mask, positions, cache)
        conditional, unconditional = adapter.image_logits(hidden[:, -1]).float()
        logits = unconditional + CFG_SCALE * (conditional - unconditional)
        uniform = torch.rand(logits.shape, generator=generator, device=logits.device)
        code = torch.argmax(logits - torch.log(-torch.log(uniform)))  # Gumbel-max: a draw from softmax(logits)
        codes.append(code)
        inputs_embeds = adapter.embed_image_tokens(code.repeat(2, 1)).to(inputs_embeds.dtype)  # both rows read it
        positions, mask = positions[:, -1:] + 1, torch.cat([mask, mask.new_ones(2, 1)], dim=1)
ours = adapter.decode_image_tokens(torch.stack(codes)[None])[0]

# %%
import numpy as np

library = generate_images(model, processor, PROMPTS[:1], cfg_scale=CFG_SCALE, seed=SEED, progress=False)[0]
print("our loop draws the same image as generate_images:", np.array_equal(np.asarray(ours), np.asarray(library)))
viz.image_grid([ours, library], titles=["the loop above", "generate_images"], cell_size=2.2,
               save_to=OUT_DIR / "guided_loop.png");

# %% [markdown] lang="en"
# ## 4. The guidance scale
#
# The RecA paper samples at 3.0 to 5.0 depending on the model. Below, each column keeps its prompt
# and its seed, and only the scale changes from row to row (RecA model).

# %% [markdown] lang="zh"
# ## 4. 引导强度
#
# RecA 论文视模型不同使用 3.0 到 5.0。下图中每一列的提示词和随机种子保持不变，从上到下只改变引导强度
# （RecA 模型）。

# %%
SCALES = [1.0, 2.0, 3.0, 5.0, 8.0]
SWEEP_PROMPTS = PROMPTS[:2] if QUICK else PROMPTS
rows = [generate_images(model, processor, SWEEP_PROMPTS, cfg_scale=scale, seed=SEED, progress=False)
        for scale in SCALES]
viz.image_grid(rows, titles=[SWEEP_PROMPTS] + [[""] * len(SWEEP_PROMPTS)] * (len(SCALES) - 1),
               row_labels=[f"cfg {s}" for s in SCALES], save_to=OUT_DIR / "cfg_sweep.png");

# %% [markdown] lang="en"
# Read the sweep column by column. At scale 1 the named colours are missing (an orange ring and a
# blue cross for "a red circle"). By scale 3 a red circle and a blue square have appeared. At 5
# and 8 the red circle grows until it dominates the left column, and the right column fills with
# ever more objects in colours nobody asked for. Guidance helps the prompt up to about 3 here and
# then costs more than it gives; 3 is the scale `recakit reproduce` samples the toy at.

# %% [markdown] lang="zh"
# 按列来看这张扫描图。强度为 1 时，指定的颜色都没有出现（“a red circle” 画成了橙色圆环和蓝色十字）。
# 到强度 3，红色圆形和蓝色方块出现了。到 5 和 8，左列的红色圆形越画越大，占满了画面；右列则塞进了越来越多
# 没人要求的颜色和物体。在这里，引导强度到 3 左右为止都有助于贴合提示词，再往上就得不偿失；`recakit reproduce`
# 对玩具模型采样时用的就是 3。

# %% [markdown] lang="en"
# ## 5. An interactive panel
#
# Type a prompt, choose a seed and a guidance scale, press **Generate**. While it draws (a few
# seconds on a CPU) the button reads "drawing..." and is disabled; the new image then replaces the
# old one inside the panel. The cell below draws once with the default values so the panel does
# not start empty; that image is the RecA row's first image of section 1 (same prompt, seed and
# scale). The panel only wires up callbacks, so a papermill run (where nobody clicks) does not
# wait for it. Viewed without a running kernel (on GitHub, say) the panel does not render; the
# default image is saved as `OUT_DIR/panel.png`.

# %% [markdown] lang="zh"
# ## 5. 交互面板
#
# 输入提示词，选好随机种子和引导强度，点击 **Generate**。绘制期间（CPU 上要几秒）按钮显示 “drawing...”
# 并暂时不可点击；画好后新图会替换面板里的旧图。下面的单元格先用默认值画一次，免得面板一开始是空的；
# 这张图就是第 1 节 RecA 那一行的第一张图（提示词、随机种子和引导强度都相同）。面板只是挂上了回调函数，
# 所以用 papermill 运行时（没有人点击）不会卡住等待。在没有运行内核的地方查看（比如 GitHub）时面板不会显示；
# 默认的那张图另存为 `OUT_DIR/panel.png`。

# %%
from recakit.notebook import generation_panel


def render(prompt, seed, cfg_scale):
    panel.button.description, panel.button.disabled = "drawing...", True  # the busy sign
    try:
        image = generate_images(model, processor, [prompt], cfg_scale=cfg_scale, seed=seed, progress=False)[0]
    finally:
        panel.button.description, panel.button.disabled = "Generate", False
    image.resize((256, 256)).save(OUT_DIR / "panel.png")
    return image.resize((256, 256))


panel = generation_panel(render, prompt=PROMPTS[0], seed=SEED, cfg_scale=CFG_SCALE)
display(panel.widget)
panel.generate();  # the default image, drawn inside the panel

# %% [markdown] lang="en"
# ## 6. A diffusion head: sampling the tiny OpenUni
#
# OpenUni, the RecA paper's own family, draws an image by denoising rather than token by token:
# SANA starts from noise in the DC-AE's latent space and takes `steps` denoising steps of its
# DPM-Solver sampler, guided against the unconditional prompt "Generate an image.". Guidance has
# the form of section 3 with the predicted velocities in place of the logits,
# $v = v^{\text{uncond}} + s\,(v^{\text{cond}} - v^{\text{uncond}})$. The call is the same
# `generate_images`, here with OpenUni's published settings (scale 4.5, 20 steps).
#
# The model below is `recakit.tiny_openuni()`: the real architecture at toy size with *random*
# weights, so it draws noise-like images, not shapes, and says nothing about how well OpenUni
# draws. What it does show is the sampler's contract: image *i* depends only on prompt *i* and its
# seed, so prompt 3 drawn alone with seed `SEED + 2` is the very image it got in the batch, and
# another seed gives another image. To sample the released OpenUni-B / L checkpoints and their RecA
# versions on a GPU and score them on GenEval and DPG-Bench, follow the recipe in
# [`docs/benchmarks.md`](https://github.com/recakit/recakit/blob/main/docs/benchmarks.md#openuni-reproducing-the-papers-own-rows) (section "OpenUni: reproducing the paper's own rows").

# %% [markdown] lang="zh"
# ## 6. 扩散头：从迷你 OpenUni 采样
#
# OpenUni 是 RecA 论文自己用到的模型族。它不是逐个 token 地画图，而是靠去噪：SANA 从 DC-AE 隐变量
# （latents）空间里的噪声出发，用 DPM-Solver 采样器走 `steps` 个去噪步（denoising step），并以无条件提示词
# “Generate an image.” 作对照来引导。引导的形式与第 3 节相同，只是把 logits 换成了预测的速度：
# $v = v^{\text{uncond}} + s\,(v^{\text{cond}} - v^{\text{uncond}})$。调用的仍是同一个
# `generate_images`，这里用 OpenUni 公开的设置（引导强度 4.5，20 步）。
#
# 下面的模型是 `recakit.tiny_openuni()`：真实架构缩到玩具规模，权重是*随机*的，所以它画出来的是类似噪声的图，
# 而不是形状，也说明不了 OpenUni 画得好不好。它能展示的是采样器的约定：第 *i* 张图只取决于第 *i* 个提示词和它的
# 随机种子，所以用种子 `SEED + 2` 单独画第 3 个提示词，得到的正是它在批量里的那张图，换一个种子就是另一张图。
# 要在 GPU 上对 OpenUni-B / L 公开的检查点及其 RecA 版本采样，并在 GenEval 和 DPG-Bench 上打分，请按
# [`docs/benchmarks_zh.md`](https://github.com/recakit/recakit/blob/main/docs/benchmarks_zh.md#openuni复现论文自己的结果) 中“OpenUni：复现论文自己的结果”一节的步骤操作。

# %%
from recakit import tiny_openuni

openuni, openuni_tokenizer = tiny_openuni()  # InternVL3 + SANA + DC-AE at toy size, random weights: expect noise
drawn = generate_images(openuni, openuni_tokenizer, PROMPTS, cfg_scale=4.5, steps=20, seed=SEED, progress=False)
alone, other_seed = (generate_images(openuni, openuni_tokenizer, PROMPTS[2:3], cfg_scale=4.5, steps=20,
                                     seed=seed, progress=False)[0] for seed in (SEED + 2, SEED + 3))
same = np.array_equal(np.asarray(alone), np.asarray(drawn[2]))
print("prompt 3 alone, seed SEED + 2, equals its image in the batch:", same)
differs = not np.array_equal(np.asarray(other_seed), np.asarray(drawn[2]))
print("prompt 3 with seed SEED + 3 gives another image:", differs)
viz.image_grid([drawn, [alone, other_seed]],
               titles=[PROMPTS, ["prompt 3 alone, seed SEED + 2", "prompt 3, seed SEED + 3"]],
               row_labels=["one batch", "one at a time"], save_to=OUT_DIR / "openuni_samples.png");

# %% [markdown] lang="en"
# Every image is a 32 x 32 px field of coloured noise, as a random generator must give, and
# the two checks print `True`: the first image of the lower row is, pixel for pixel, the third of
# the upper row. On a released checkpoint the same call draws the prompt; the recipe above also
# fine-tunes OpenUni-B with RecA (`recakit train`) and lists the published gains beside the commands.

# %% [markdown] lang="zh"
# 每张图都是一片 32 × 32 像素的彩色噪声，随机初始化的生成器只能画出这样的东西；两项检查都输出 `True`：
# 下面一行的第一张图与上面一行的第三张逐像素相同。换成公开的检查点，同样的调用就会画出提示词描述的内容；
# 上面那份步骤还介绍了如何用 RecA 微调 OpenUni-B（`recakit train`），并在命令旁列出了论文公开的提升。

# %% [markdown] snippet="block-1"
# ```python
# base_rows = [generate_images(base, base_processor, SWEEP_PROMPTS, cfg_scale=s, seed=SEED, progress=False) for s in SCALES]
# viz.image_grid(base_rows, titles=[SWEEP_PROMPTS] + [[""] * len(SWEEP_PROMPTS)] * (len(SCALES) - 1),
#                row_labels=[f"base, cfg {s}" for s in SCALES])
# ```

# %% [markdown] snippet="block-2"
# ```python
# greedy = generate_images(model, processor, PROMPTS[:1], cfg_scale=CFG_SCALE, temperature=0, progress=False)[0]
# ours = adapter.decode_image_tokens(torch.stack(codes)[None])[0]
# print(np.array_equal(np.asarray(ours), np.asarray(greedy)))
# ```

# %% [markdown] snippet="block-3"
# ```python
# rows = [reconstruct(model, processor, inputs, cfg_scale=CFG_SCALE, seed=SEED, resolution=r, progress=False)
#         for r in (16, 32, 64)]
# viz.image_grid([inputs] + rows, row_labels=["input", "16 px", "32 px", "64 px"])
# ```

# %% [markdown] lang="en"
# ## What you learned
#
# * `generate_images` and `reconstruct` give reproducible images: image *i* depends only on its
#   prompt (or input image) and its seed, so base and RecA can be compared sample by sample.
# * The base toy draws poorly; after RecA its samples carry the named colour more often and its
#   reconstructions keep the input's colour and some of its shapes: RecA trains exactly the
#   image -> understanding -> image path.
# * Classifier-free guidance is one line,
#   $\ell = \ell^{\text{uncond}} + s(\ell^{\text{cond}} - \ell^{\text{uncond}})$, inside a
#   token-by-token loop with a cache; our ten-line loop reproduces `generate_images` exactly.
# * A guidance sweep shows the trade: too little and the prompt is ignored, too much and the image
#   breaks up; for the toy, 3 is a good scale.
# * A diffusion head (OpenUni's SANA) samples by denoising latents, with guidance on the predicted
#   velocities; `generate_images` takes it with the same call and the same per-seed reproducibility.
#   The tiny OpenUni is random, so it draws noise; real checkpoints follow `docs/benchmarks.md`.
#
# ## Exercises
#
# **1. A guidance sweep for the base.** Repeat the sweep of section 4 for `base`. Does guidance
# make up for what RecA adds?
#
# <details><summary>Solution</summary>
#
# <!-- include block-1 -->
#
# In the default run the base draws no red circle and no blue square at scales 1 to 3. At 5 and 8
# red and blue do appear, but inside images that are already breaking up into fragments. Strong
# guidance can push the base toward a named colour; the RecA model gets there at scale 3 without
# paying that price.
# </details>
#
# **2. Greedy decoding.** Change one line of the loop in section 3 so it always takes the most
# likely code (temperature 0), and check it against `generate_images(..., temperature=0)`.
#
# <details><summary>Solution</summary>
#
# Replace the Gumbel-max line by `code = torch.argmax(logits)` (the noise no longer matters), run
# the loop again, then:
#
# <!-- include block-2 -->
#
# It prints `True`. With temperature 0 the image no longer depends on the seed, only on the prompt
# and the scale.
# </details>
#
# **3. Reconstruction through a bottleneck.** `reconstruct(..., resolution=R)` shows the
# understanding encoder the input shrunk to R px. Reconstruct the inputs of section 2 at 16, 32
# and 64 px with the RecA model.
#
# <details><summary>Solution</summary>
#
# <!-- include block-3 -->
#
# The RecA arm was trained with its images shown to the encoder at 32 px. In the default run its
# reconstructions at 16 and 32 px are about as faithful as at 64 px: the blue of input 1 and the
# orange of input 3 survive at every size, and at 16 px input 4 even gets its black square back,
# with an orange blob where its ring sits, while none of the three sizes gets input 2's colours right. What the
# understanding side keeps of a small image (colour, rough shape) is what the generator can
# rebuild; outlines were never part of it.
# </details>
#
# **Next:** notebook 04 measures base, control and RecA with GenEval-mini.

# %% [markdown] lang="zh"
# ## 本章小结
#
# * `generate_images` 和 `reconstruct` 给出的图像可以复现：第 *i* 张图只取决于它的提示词（或输入图像）和它的
#   随机种子，所以基础模型与 RecA 模型可以逐个样本地比较。
# * 基础玩具模型画得很差；经过 RecA 之后，样本更常带有指定的颜色，重建结果也保住了输入的颜色和部分形状：
#   RecA 训练的恰恰是“图像 -> 理解 -> 图像”这条路径。
# * 无分类器引导只有一行，
#   $\ell = \ell^{\text{uncond}} + s(\ell^{\text{cond}} - \ell^{\text{uncond}})$，嵌在一个带缓存、
#   逐 token 进行的循环里；我们自己写的十行循环与 `generate_images` 的结果完全一致。
# * 引导强度扫描展示了其中的权衡：太小会忽略提示词，太大会让图像支离破碎；对玩具模型来说，3 是合适的强度。
# * 扩散头（OpenUni 的 SANA）通过对隐变量去噪来采样，引导作用在预测的速度上；`generate_images` 用同样的调用
#   支持它，每个随机种子的结果同样可以复现。迷你 OpenUni 是随机初始化的，所以画出的是噪声；真实检查点请按
#   `docs/benchmarks_zh.md` 操作。
#
# ## 练习
#
# **1. 对基础模型做引导强度扫描。** 对 `base` 重做第 4 节的扫描。引导能不能弥补 RecA 带来的提升？
#
# <details><summary>参考答案</summary>
#
# <!-- include block-1 -->
#
# 默认运行中，强度 1 到 3 时基础模型既画不出红色圆形，也画不出蓝色方块。到 5 和 8，红色和蓝色确实出现了，
# 但画面已经开始碎裂。强引导可以把基础模型往指定颜色上推；RecA 模型在强度 3 时就做到了，而且不必付出这种代价。
# </details>
#
# **2. 贪心解码。** 只改第 3 节循环里的一行，让它每一步都取可能性最大的码字，即温度（temperature）为 0 的采样，
# 再与 `generate_images(..., temperature=0)` 的结果核对。
#
# <details><summary>参考答案</summary>
#
# 把 Gumbel-max 那一行换成 `code = torch.argmax(logits)`（噪声不再起作用），重新运行循环，然后：
#
# <!-- include block-2 -->
#
# 输出为 `True`。温度为 0 时，图像不再依赖随机种子，只取决于提示词和引导强度。
# </details>
#
# **3. 经过瓶颈的重建。** `reconstruct(..., resolution=R)` 会把输入缩小到 R 像素再交给理解编码器。
# 用 RecA 模型分别在 16、32 和 64 像素下重建第 2 节的输入图。
#
# <details><summary>参考答案</summary>
#
# <!-- include block-3 -->
#
# RecA 模型训练时，图像是以 32 像素交给编码器的。默认运行中，它在 16 和 32 像素下的重建与 64 像素时差不多忠实：
# 输入 1 的蓝色和输入 3 的橙色在每种尺寸下都保住了，16 像素时输入 4 甚至找回了黑色方块，圆环所在的位置也有一团橙色；而三种尺寸下
# 输入 2 的颜色都不对。理解侧从一张小图里保留下来的东西（颜色、大致形状）正是生成器能够重建的东西；
# 轮廓本来就不在其中。
# </details>
#
# **下一章**：notebook 04 用 GenEval-mini 测量基础模型、对照组和 RecA 模型。

# %% [markdown] lang="en"
# ## Appendix: loading in NF4 or INT8
#
# Quantization does not change what RecA does, only how much memory a model needs at inference.
# `load_model(..., quantization="nf4" | "int8")` stores the language model's linear layers in 4 or 8
# bits with bitsandbytes; the VQ decoder and the output heads stay in full precision, because they
# decide which code word is drawn. On the CPU we measure this with a tiny, randomly initialised Janus
# (the toy model is not a Janus checkpoint); with a Janus-Pro `MODEL` the real model is measured.
# For reference, at Janus-Pro-1B size on an H100 the footprint is 3.48 GiB in bf16, 2.00 GiB in
# INT8 and 1.27 GiB in NF4.

# %% [markdown] lang="zh"
# ## 附录：用 NF4 或 INT8 加载
#
# 量化（quantization）不改变 RecA 做的事，只改变模型推理时占用多少显存。
# `load_model(..., quantization="nf4" | "int8")` 借助 bitsandbytes 把语言模型的线性层存成 4 位或 8 位；
# VQ 解码器和输出头保持全精度，因为抽到哪个码字由它们决定。在 CPU 上我们用一个随机初始化的迷你 Janus
# 来测量，因为玩具模型不是 Janus 检查点（checkpoint）；如果 `MODEL` 是 Janus-Pro，则测量真实模型。作为参照，
# 在 H100 上按 Janus-Pro-1B 的规模，bf16 占 3.48 GiB，INT8 占 2.00 GiB，NF4 占 1.27 GiB。

# %%
from recakit import tiny_janus
from recakit.toy.model import ToyProcessor

source = MODEL
if isinstance(processor, ToyProcessor):  # the toy is no Janus checkpoint: measure a tiny Janus instead
    tiny, tiny_processor = tiny_janus(seed=SEED)
    source = OUT_DIR / "tiny_janus"
    tiny.save_pretrained(source)
    tiny_processor.save_pretrained(source)
footprints = {}
for quantization in [None, "int8", "nf4"]:
    quantized, _ = load_model(str(source), device=DEVICE, quantization=quantization)
    footprints[quantization or "full precision"] = quantized.get_memory_footprint() / 2**20
    del quantized

# %%
full = footprints["full precision"]
table = ["| weights | footprint (MiB) | share of full precision |", "|---|---|---|"]
table += [f"| {name} | {mib:.2f} | {mib / full:.0%} |" for name, mib in footprints.items()]
display(Markdown("\n".join(table)))

# %% [markdown] lang="en"
# A tiny model is dominated by the parts that are never quantized (embeddings, VQ, heads), so its
# savings are smaller than at 1B scale, where the language model is almost all of the weights.

# %% [markdown] lang="zh"
# 迷你模型的大部分参数属于不做量化的部分（嵌入层、VQ、输出头），所以节省比例不如 1B 规模明显；
# 在 1B 规模下，语言模型几乎占了全部权重。
