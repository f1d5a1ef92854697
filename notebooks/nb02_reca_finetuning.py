"""Notebook 02: RecA fine-tuning end to end (toy on a CPU, Janus-Pro-1B on a GPU)."""
from cells import SETUP, SETUP_TEXT, code, markdown, opening, parameters

CELLS = opening(
    "02_reca_finetuning",
    "02 · RecA fine-tuning",
    "02 · RecA 微调",
    """
    This chapter runs RecA post-training from start to finish: load a base model, sample a few
    prompts, fine-tune with the reconstruction loss while watching the loss curve, sample the *same*
    prompts with the *same* seeds again, and save the result.

    By default it fine-tunes the ShapesWorld toy model on the CPU in a minute or two. With
    `MODEL = "deepseek-community/Janus-Pro-1B"` and `DEVICE = "cuda"` the same cells fine-tune the real
    model (bf16; `LORA_RANK` and `QUANTIZATION = "nf4"` make it fit a 16 GB card).
    """,
    """
    本章从头到尾跑一遍 RecA 后训练：加载基础模型，先用几个提示词采样，然后用重建损失微调并实时
    观察损失曲线，再用*同样*的提示词和*同样*的随机种子重新采样，最后保存结果。

    默认在 CPU 上微调 ShapesWorld 玩具模型，一两分钟即可完成。把 `MODEL` 设为
    `"deepseek-community/Janus-Pro-1B"`、`DEVICE` 设为 `"cuda"`，同样的单元格就会微调真实模型
    （bf16；配合 `LORA_RANK` 和 `QUANTIZATION = "nf4"` 可以在 16 GB 显存的显卡上运行）。
    """,
) + [
    parameters('''
        QUICK: bool = True     # small settings that finish in a minute or two on a CPU
        MODEL: str = "toy"     # "toy", or a hub id / local path such as deepseek-community/Janus-Pro-1B
        DEVICE: str = "auto"   # "auto", "cpu" or "cuda"
        SEED: int = 0          # drives the training batches and the before/after samples
        STEPS: int = 0         # optimizer steps; 0 means 5 in quick mode, 600 (toy) or 1000 (Janus) otherwise
        BATCH_SIZE: int = 8    # images per optimizer step
        LR: float = 0.0        # 0 means 3e-4 for the toy, 1e-5 for Janus-Pro
        LORA_RANK: int = 0     # > 0 trains LoRA adapters of this rank instead of the full model
        QUANTIZATION: str = "none"  # "none", "nf4" or "int8" (bitsandbytes; pair with LORA_RANK)
        DATA_DIR: str = ""     # folder of unlabeled images; empty means rendered ShapesWorld scenes
        OUT_DIR: str = "runs/02_reca_finetuning"  # figures, training history and the fine-tuned model
        '''),
    SETUP_TEXT,
    SETUP,
    markdown(
        """
        ## 1. The base model and what RecA trains

        RecA trains the *generation* side and leaves the parts that produce its condition alone:
        `freeze_for_reca` freezes the understanding encoder and the VQ tokenizer (and, for the toy,
        the understanding language model) and keeps them in eval mode.
        """,
        """
        ## 1. 基础模型，以及 RecA 训练哪些参数

        RecA 训练的是*生成*侧，而为它提供条件输入的那部分保持不动：`freeze_for_reca` 会冻结理解编码器
        和 VQ 分词器（玩具模型还会冻结理解语言模型），并让它们始终处于 eval 模式。
        """),
    code('''
        from recakit import freeze_for_reca, load_model

        IS_TOY = MODEL == "toy"
        STEPS = STEPS or (5 if QUICK else 600 if IS_TOY else 1000)
        LR = LR or (3e-4 if IS_TOY else 1e-5)
        quantization = None if QUANTIZATION == "none" else QUANTIZATION
        if quantization and not LORA_RANK:
            raise ValueError("quantized weights cannot be trained directly: set LORA_RANK as well, e.g. 16")
        model, processor = load_model(MODEL, device=DEVICE, quantization=quantization)
        print(freeze_for_reca(model))
        '''),
    markdown(
        """
        ## 2. Data: unlabeled images

        RecA needs images only. Here they are ShapesWorld scenes rendered on the fly (or the files in
        `DATA_DIR`). For the toy we also keep each scene's short caption, because the toy recipe mixes
        a little text-to-image training into RecA (section 6 explains why).
        """,
        """
        ## 2. 数据：无标注图像

        RecA 只需要图像。这里用的是现场渲染的 ShapesWorld 场景（或者 `DATA_DIR` 里的图片）。
        对玩具模型，我们还保留了每个场景的简短描述，因为玩具模型的训练配方会在 RecA 之外混入少量
        文生图训练（原因见第 6 节）。
        """),
    code('''
        from recakit.images import load_images
        from recakit.shapes import scene_dataset
        from recakit.training import image_files

        IMAGE_SIZE = 64 if IS_TOY else 384
        if DATA_DIR:
            data = image_files(DATA_DIR)
        else:
            data = scene_dataset(256 if QUICK else 20_000, seed=SEED, image_size=IMAGE_SIZE)
        print(f"{len(data)} training images")
        '''),
    markdown(
        """
        ## 3. Before: samples from the base model

        We fix a handful of prompts and one seed per prompt. Every image depends only on its prompt
        and its seed, so sampling again after training shows exactly what fine-tuning changed.
        """,
        """
        ## 3. 训练前：基础模型的采样结果

        先固定几个提示词，每个提示词配一个随机种子。每张图只由它自己的提示词和种子决定，
        因此训练之后再采样一次，就能准确看出微调改变了什么。
        """),
    code('''
        from recakit import generate_images, viz

        PROMPTS = ["a red circle", "a blue square above a yellow triangle",
                   "two green stars", "a purple diamond left of an orange cross"]
        CFG_SCALE = 3.0
        model.eval()
        before = generate_images(model, processor, PROMPTS, cfg_scale=CFG_SCALE, seed=SEED)
        viz.image_grid(before, titles=PROMPTS, save_to=OUT_DIR / "before.png");
        '''),
    markdown(
        """
        ## 4. Fine-tune with the RecA loss

        The loss function receives a batch of examples and one seed per example (the seed decides the
        instruction drawn and whether the condition is dropped for classifier-free guidance).
        For the toy, half the batch is RecA and half is text-to-image with the scene's sparse caption
        (`recakit.reproduce.arm_loss`, the recipe of the toy study).
        `recakit.train` draws the batches from `(SEED, step)`, shows a progress bar, and calls the live
        loss plot after every step; its history is written to `OUT_DIR/train/history.jsonl`.
        """,
        """
        ## 4. 用 RecA 损失微调

        损失函数接收一批样本，以及每个样本各自的随机种子（种子决定抽到哪句指令，以及是否为无分类器引导
        丢弃条件）。对玩具模型，一半样本做 RecA，另一半用场景的简短描述做文生图
        （即 `recakit.reproduce.arm_loss`，玩具实验所用的配方）。`recakit.train`
        根据 `(SEED, 步数)` 抽取每一批数据，显示进度条，每一步之后更新实时损失曲线；训练记录写入
        `OUT_DIR/train/history.jsonl`。
        """),
    code('''
        from recakit.reproduce import arm_loss
        from recakit.training import reca_loss_fn

        # scenes with captions: the toy recipe (half RecA, half text-to-image); a folder of images: RecA alone
        loss_fn = reca_loss_fn(processor) if DATA_DIR else arm_loss("reca", processor)
        '''),
    code('''
        from recakit.training import default_lora_targets, train

        live_plot = viz.LiveLossPlot(every=5, title="RecA fine-tuning", save_to=OUT_DIR / "loss.png")
        # LoRA goes on the linear layers RecA trains (after freeze_for_reca), never on the frozen encoders
        lora = {"r": LORA_RANK, "lora_alpha": 2 * LORA_RANK, "target_modules": default_lora_targets(model)} if LORA_RANK else None
        model.train()
        history = train(model, loss_fn, data, steps=STEPS, batch_size=BATCH_SIZE, lr=LR, seed=SEED,
                        warmup_steps=STEPS // 20, lora=lora,
                        out_dir=OUT_DIR / "train", callback=live_plot)
        live_plot.finish()
        print(f"{len(history)} steps: loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}")
        '''),
    markdown(
        """
        ## 5. After: the same prompts, the same seeds

        Top row: the base model; bottom row: after RecA. Quick mode trains only a few steps, far too
        few to expect better pictures; the full run (`-p QUICK False`) trains long enough for the change to show.
        Notebook 04 measures it properly with GenEval-mini.
        """,
        """
        ## 5. 训练后：同样的提示词，同样的种子

        第一行是基础模型，第二行是 RecA 之后的模型。快速模式只训练寥寥几步，不要指望图像明显变好；
        完整运行（`-p QUICK False`）训练得足够久，变化才会显现。notebook 04 会用 GenEval-mini 做正式的量化评估。
        """),
    code('''
        model.eval()
        after = generate_images(model, processor, PROMPTS, cfg_scale=CFG_SCALE, seed=SEED)
        viz.image_grid([before, after], titles=[PROMPTS, PROMPTS], row_labels=["base", "RecA"],
                       save_to=OUT_DIR / "before_after.png");
        '''),
    markdown(
        """
        Finally save the fine-tuned model next to the figures. `load_model` reads the folder back (for
        the toy, `recakit.toy.load_toy`). With LoRA, `recakit.train` already stored the adapter weights
        in `OUT_DIR/train/checkpoint`.
        """,
        """
        最后把微调好的模型保存在图片旁边。`load_model` 可以读回这个目录（玩具模型用
        `recakit.toy.load_toy`）。如果用了 LoRA，`recakit.train` 已经把适配器权重存进了
        `OUT_DIR/train/checkpoint`。
        """),
    code('''
        SAVE_DIR = OUT_DIR / "reca_model"
        if IS_TOY:
            model.save_pretrained(SAVE_DIR, processor)
        elif not LORA_RANK:
            model.save_pretrained(SAVE_DIR)
            processor.save_pretrained(SAVE_DIR)
        print("saved to", SAVE_DIR if (IS_TOY or not LORA_RANK) else OUT_DIR / "train" / "checkpoint")
        '''),
    markdown(
        """
        ## 6. The toy study: which design lets RecA help?

        The toy model was not designed on the first try. In the first toy, built like Janus (one
        language model reads either the caption or the understanding embeddings, and generates), RecA
        was learned well, yet text-to-image got *worse*: the model learned a second, image-embedding
        route to generation that competed with the text route and made it forget. The reason: an
        understanding encoder trained from scratch gives one token per grid cell, so reconstruction
        became copying, with nothing shared between image embeddings and text.

        The design that worked is the one where upstream RecA also saw its largest gains (OpenUni /
        MetaQuery): a frozen understanding model turns *either* an image *or* a caption into a few
        query states, trained so that both agree, and the generator reads only those query states.
        RecA's condition then lives in the very space the text prompt uses, so what the generator
        learns from reconstruction transfers to text-to-image. The full study, `docs/toy_study.md`:
        """,
        """
        ## 6. 玩具实验：什么样的设计能让 RecA 起作用？

        玩具模型并不是一次就设计成现在这样的。第一版仿照 Janus：同一个语言模型既读图像描述，也读理解嵌入，
        并负责生成。结果 RecA 本身学得很好，文生图却*变差*了：模型学出了第二条由图像嵌入通往生成的路径，
        它与文本路径相互竞争，导致模型遗忘了文本路径。原因在于从零训练的理解编码器给每个网格单元输出一个
        token，重建于是退化成照搬，图像嵌入和文本之间没有任何共享的表示。

        真正奏效的设计，恰好也是 RecA 原论文收益最大的那一类（OpenUni / MetaQuery）：冻结的理解模型把图像
        *或*描述都转换成少量查询状态，并训练二者保持一致，生成器只读取这些查询状态。这样 RecA 的条件
        与文本提示词位于同一个表示空间，生成器从重建中学到的东西就能迁移到文生图上。
        下面显示的是 `docs/toy_study.md`（英文原文，中文版见 `docs/toy_study_zh.md`）：
        """),
    code('''
        from IPython.display import Markdown, display

        import recakit

        study = Path(recakit.__file__).resolve().parent.parent / "docs" / "toy_study.md"
        display(Markdown(study.read_text(encoding="utf-8")) if study.exists() else "docs/toy_study.md is not in this install")
        '''),
    markdown(
        """
        ## 7. Running it on Janus-Pro-1B

        ```bash
        papermill notebooks/en/02_reca_finetuning.ipynb runs/janus.ipynb \\
            -p QUICK False -p MODEL deepseek-community/Janus-Pro-1B -p DEVICE cuda -p DATA_DIR /path/to/images
        ```

        Measured at Janus-Pro-1B size on an H100 (bf16): a RecA step at batch 8 (sequence 1176) takes
        0.26 s and peaks at 30.4 GiB. On a 16 GB card use `-p QUANTIZATION nf4 -p LORA_RANK 16`:
        NF4 weights take 1.27 GiB instead of 3.48 GiB, and a RecA step with LoRA r16 on the language
        model (15 M trainable parameters) and gradient checkpointing (`recakit train
        --gradient-checkpointing`) peaks at 2.75 GiB at batch 4 and 4.0 GiB at batch 8. The published RecA recipes run 1000 to 5000 steps at learning rates of
        1e-5 to 4e-5.
        """,
        """
        ## 7. 在 Janus-Pro-1B 上运行

        ```bash
        papermill notebooks/zh/02_reca_finetuning.ipynb runs/janus.ipynb \\
            -p QUICK False -p MODEL deepseek-community/Janus-Pro-1B -p DEVICE cuda -p DATA_DIR /path/to/images
        ```

        在 H100 上按 Janus-Pro-1B 的规模实测（bf16）：批大小 8（序列长 1176）时，一步 RecA 耗时 0.26 秒，
        显存峰值 30.4 GiB。16 GB 显存的显卡请加上 `-p QUANTIZATION nf4 -p LORA_RANK 16`：NF4 权重只占
        1.27 GiB（bf16 为 3.48 GiB）；在语言模型上挂 r16 的 LoRA（可训练参数 1500 万）并开启梯度检查点（`recakit train --gradient-checkpointing`）后，
        一步 RecA 的显存峰值在批大小 4 时为 2.75 GiB，批大小 8 时为 4.0 GiB。RecA 论文公开的训练配方为
        1000 到 5000 步，学习率在 1e-5 到 4e-5 之间。
        """),
]
