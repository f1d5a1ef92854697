"""Notebook 03: inference -- text-to-image, semantic reconstruction, CFG, quantized loading, a widget."""
from cells import SETUP, SETUP_TEXT, code, markdown, opening, parameters

CELLS = opening(
    "03_inference",
    "03 · Inference: generating, reconstructing, guiding",
    "03 · 推理：生成、重建与引导",
    """
    A RecA model is used like any unified model: give it a prompt and it draws; give it an image and
    it describes it. RecA adds a third use, *semantic reconstruction*: image -> understanding
    embeddings -> new image, which shows directly what the model's understanding keeps of a picture.

    This chapter covers text-to-image, semantic reconstruction, the classifier-free guidance scale,
    loading in NF4 / INT8 to save memory, and a small interactive panel.
    """,
    """
    RecA 模型的用法和普通统一模型一样：给它提示词，它就画图；给它图像，它就描述。RecA 还多了第三种用法，
    *语义重建*：图像 -> 理解嵌入 -> 新图像。它能直接展示模型的“理解”保留了一张图的哪些信息。

    本章依次介绍文生图、语义重建、无分类器引导强度、用 NF4 / INT8 加载以节省显存，最后是一个小小的交互面板。
    """,
) + [
    parameters('''
        QUICK: bool = True       # small settings that finish in about a minute on a CPU
        MODEL: str = "toy"       # "toy", a hub id such as deepseek-community/Janus-Pro-1B, or a saved folder
        DEVICE: str = "auto"     # "auto", "cpu" or "cuda"
        SEED: int = 0            # image i of a call uses seed SEED + i
        CFG_SCALE: float = 3.0   # classifier-free guidance scale (1 means no guidance)
        OUT_DIR: str = "runs/03_inference"  # figures are saved here
        '''),
    SETUP_TEXT,
    SETUP,
    code('''
        from recakit import caption, generate_images, load_model, reconstruct, viz
        from recakit.shapes import scene_dataset

        model, processor = load_model(MODEL, device=DEVICE)
        IMAGE_SIZE = 64 if MODEL == "toy" else 384
        '''),
    markdown(
        """
        ## 1. Text-to-image

        `generate_images` draws one image per prompt. Image *i* depends only on prompt *i* and seed
        `SEED + i`, never on which other prompts share the batch, so any image can be reproduced alone.
        """,
        """
        ## 1. 文生图

        `generate_images` 为每个提示词生成一张图。第 *i* 张图只取决于第 *i* 个提示词和随机种子 `SEED + i`，
        与同一批里还有哪些提示词无关，所以任何一张图都可以单独复现。
        """),
    code('''
        PROMPTS = ["a red circle", "a blue square below a green star", "three yellow triangles", "a white ring"]
        images = generate_images(model, processor, PROMPTS, cfg_scale=CFG_SCALE, seed=SEED)
        viz.image_grid(images, titles=PROMPTS, save_to=OUT_DIR / "text_to_image.png");
        '''),
    markdown(
        """
        ## 2. Semantic reconstruction

        `reconstruct` feeds each input image through the understanding encoder and generates from the
        embeddings, exactly the path RecA trains. The result is not a pixel copy: it is the model's
        *reading* of the image, drawn again. Above each input we also print the caption the model writes
        for it, from the same understanding side.
        """,
        """
        ## 2. 语义重建

        `reconstruct` 先用理解编码器处理每张输入图，再从得到的嵌入出发生成新图，走的正是 RecA 训练的那条路径。
        结果不是逐像素的复制，而是模型对这张图的*理解*被重新画了出来。每张输入图上方还标出了模型为它写的描述，
        描述同样来自理解侧。
        """),
    code('''
        inputs = [example.image for example in scene_dataset(3, seed=SEED + 100, image_size=IMAGE_SIZE)]
        rebuilt = reconstruct(model, processor, inputs, cfg_scale=CFG_SCALE, seed=SEED)
        captions = [text[:32] for text in caption(model, processor, inputs)]
        viz.image_grid([inputs, rebuilt], titles=[captions, [""] * len(rebuilt)],
                       row_labels=["input", "reconstruction"], save_to=OUT_DIR / "reconstruction.png");
        '''),
    markdown(
        """
        ## 3. The guidance scale

        Classifier-free guidance runs every step twice, with the condition and with the condition
        dropped, and pushes the logits away from the unconditional ones:
        `logits = uncond + scale * (cond - uncond)`. Scale 1 is plain sampling; larger scales follow the
        prompt more strictly and trade away variety. The RecA paper samples at 3.0 to 5.0 depending on
        the model. Each column below uses the same seed.
        """,
        """
        ## 3. 引导强度

        无分类器引导在每一步都算两遍：一遍带条件，一遍去掉条件，然后把 logits 往远离无条件结果的方向推：
        `logits = uncond + scale * (cond - uncond)`。强度为 1 就是普通采样；强度越大，生成结果越贴合提示词，
        多样性也随之下降。RecA 论文视模型不同使用 3.0 到 5.0。下图每一列使用同一个种子。
        """),
    code('''
        SCALES = [1.0, 2.0, 4.0] if QUICK else [1.0, 2.0, 3.0, 5.0, 8.0]
        SWEEP_PROMPTS = PROMPTS[:2] if QUICK else PROMPTS
        rows = [generate_images(model, processor, SWEEP_PROMPTS, cfg_scale=scale, seed=SEED) for scale in SCALES]
        viz.image_grid(rows, titles=[SWEEP_PROMPTS] * len(SCALES), row_labels=[f"cfg {s}" for s in SCALES],
                       save_to=OUT_DIR / "cfg_sweep.png");
        '''),
    markdown(
        """
        ## 4. Loading in NF4 or INT8

        `load_model(..., quantization="nf4" | "int8")` stores the language model's linear layers in 4 or 8
        bits with bitsandbytes; the VQ decoder and the output heads stay in full precision, because they
        decide which code is drawn. On the CPU we measure this with a tiny, randomly initialised Janus
        (the toy model is not a Janus checkpoint); with a Janus-Pro `MODEL` the real model is measured.
        For reference, at Janus-Pro-1B size on an H100 the footprint is 3.48 GiB in bf16, 2.00 GiB in
        INT8 and 1.27 GiB in NF4.
        """,
        """
        ## 4. 用 NF4 或 INT8 加载

        `load_model(..., quantization="nf4" | "int8")` 借助 bitsandbytes 把语言模型的线性层存成 4 位或 8 位；
        VQ 解码器和输出头保持全精度，因为抽到哪个码字由它们决定。在 CPU 上我们用一个随机初始化的迷你 Janus
        来测量（玩具模型不是 Janus 检查点）；如果 `MODEL` 是 Janus-Pro，则测量真实模型。作为参照，在 H100 上
        按 Janus-Pro-1B 的规模，bf16 占 3.48 GiB，INT8 占 2.00 GiB，NF4 占 1.27 GiB。
        """),
    code('''
        from recakit import tiny_janus

        source = MODEL
        if MODEL == "toy":
            tiny, tiny_processor = tiny_janus(seed=SEED)
            source = OUT_DIR / "tiny_janus"
            tiny.save_pretrained(source)
            tiny_processor.save_pretrained(source)
        footprints = {}
        for quantization in [None, "int8", "nf4"]:
            quantized, _ = load_model(str(source), device=DEVICE, quantization=quantization)
            footprints[quantization or "full precision"] = quantized.get_memory_footprint() / 2**20
            del quantized
        '''),
    code('''
        from IPython.display import Markdown, display

        full = footprints["full precision"]
        table = ["| weights | footprint (MiB) | share of full precision |", "|---|---|---|"]
        table += [f"| {name} | {mib:.2f} | {mib / full:.0%} |" for name, mib in footprints.items()]
        display(Markdown("\\n".join(table)))
        '''),
    markdown(
        """
        A tiny model is dominated by the parts that are never quantized (embeddings, VQ, heads), so its
        savings are smaller than at 1B scale, where the language model is almost all of the weights.

        ## 5. An interactive panel

        Type a prompt, choose a seed and a guidance scale, press **Generate**. The panel only wires up
        callbacks, so a papermill run (where nobody clicks) does not wait for it; the last line of the
        cell draws once with the default values, so the run also records an image.
        """,
        """
        迷你模型的大部分参数属于不做量化的部分（嵌入层、VQ、输出头），所以节省比例不如 1B 规模明显；
        在 1B 规模下，语言模型几乎占了全部权重。

        ## 5. 交互面板

        输入提示词，选好种子和引导强度，点击 **Generate** 即可。面板只是挂上了回调函数，所以用 papermill
        运行时（没有人点击）不会卡住等待；单元格最后一行用默认值先生成一次，这样运行记录里也会留下一张图。
        """),
    code('''
        from recakit.notebook import generation_panel


        def render(prompt, seed, cfg_scale):
            image = generate_images(model, processor, [prompt], cfg_scale=cfg_scale, seed=seed, progress=False)[0]
            image.resize((256, 256)).save(OUT_DIR / "panel.png")
            return image.resize((256, 256))


        panel = generation_panel(render, prompt=PROMPTS[0], seed=SEED, cfg_scale=CFG_SCALE)
        display(panel.widget)
        render(PROMPTS[0], SEED, CFG_SCALE)  # what the button draws with the default values
        '''),
    markdown(
        """
        **Next:** notebook 04 measures base versus RecA with GenEval.
        """,
        """
        **下一章**：notebook 04 用 GenEval 对比基础模型和 RecA 模型。
        """),
]
