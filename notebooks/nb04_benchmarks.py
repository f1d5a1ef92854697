"""Notebook 04: GenEval(-mini) for a base model and its RecA fine-tune, beside the published gains."""
from cells import SETUP, SETUP_TEXT, code, markdown, opening, parameters

CELLS = opening(
    "04_benchmarks",
    "04 · Benchmarks: does RecA help?",
    "04 · 基准测试：RecA 有没有用？",
    """
    RecA's claim is measured with GenEval: short compositional prompts ("a red cup and a blue clock"),
    an object detector on every generated image, and a yes/no check of the prompt's objects, counts,
    colours and positions. This chapter scores a base model and its RecA fine-tune the same way and
    puts the gains next to the ones published in the RecA paper.

    On a CPU it uses *GenEval-mini*, the same six tasks and judging rules over ShapesWorld prompts,
    scored by an exact shapes detector. On a GPU, the parameters switch to the official 553 prompts
    and the Mask2Former detector, through the same functions as `recakit geneval sample | score`.
    """,
    """
    RecA 的效果是用 GenEval 衡量的：一组简短的组合式提示词（例如“一个红色杯子和一个蓝色时钟”），
    对每张生成的图跑目标检测，再逐条核对提示词要求的物体、数量、颜色和位置是否满足。本章用同样的方法
    给基础模型和它的 RecA 微调版本打分，并把提升幅度与 RecA 论文公开的结果放在一起比较。

    在 CPU 上使用 *GenEval-mini*：任务类别和判分规则与 GenEval 完全相同，只是提示词换成 ShapesWorld 场景，
    并用一个精确的形状检测器打分。在 GPU 上，只需改参数即可切换到官方的 553 条提示词和 Mask2Former 检测器，
    调用的函数与 `recakit geneval sample | score` 命令相同。
    """,
) + [
    parameters('''
        QUICK: bool = True        # two prompts per task and one image each: a few minutes on a CPU
        BASE_MODEL: str = "toy"   # "toy", or a hub id / folder such as deepseek-community/Janus-Pro-1B
        RECA_MODEL: str = ""      # folder of the RecA model; empty means fine-tune the toy base here
        DEVICE: str = "auto"      # "auto", "cpu" or "cuda"
        SEED: int = 0             # sampling seeds are SEED + prompt_index * N_PER_PROMPT + k
        STEPS: int = 0            # toy fine-tune steps when RECA_MODEL is empty; 0 means 5 quick, 600 full
        PROMPT_SET: str = "mini"  # "mini" (ShapesWorld), "official" (553 prompts) or a .jsonl path
        SCORER: str = "shapes"    # "shapes" for GenEval-mini, "mask2former" for real images
        N_PER_PROMPT: int = 0     # images per prompt; 0 means 1 in quick mode, 4 otherwise (the paper used 12 seeds)
        CFG_SCALE: float = 3.0    # classifier-free guidance scale used for both models
        RUN_DPG: bool = False     # also sample and score DPG-Bench (downloads its questions and a VQA model)
        OUT_DIR: str = "runs/04_benchmarks"  # samples, scores and figures
        '''),
    SETUP_TEXT,
    SETUP,
    markdown(
        """
        ## 1. The prompts

        GenEval has six tasks: `single_object`, `two_object`, `counting`, `colors`, `position` and
        `color_attr` (two objects with a colour each). Each task score is the share of its images
        judged correct, and the overall score is the plain mean of the six. Quick mode keeps the first
        few prompts of each task.
        """,
        """
        ## 1. 提示词

        GenEval 共有六类任务：`single_object`（单个物体）、`two_object`（两个物体）、`counting`（计数）、
        `colors`（颜色）、`position`（位置）和 `color_attr`（两个物体各有指定颜色）。每类任务的得分是
        判为正确的图像所占比例，总分是六类得分的简单平均。快速模式只取每类任务的前几条提示词。
        """),
    code('''
        from collections import Counter

        from recakit import geneval

        entries = geneval.load_prompts(PROMPT_SET)
        if QUICK:  # the first two prompts of every task
            entries = [entry for task in geneval.TASKS for entry in [e for e in entries if e["tag"] == task][:2]]
        N_PER_PROMPT = N_PER_PROMPT or (1 if QUICK else 4)
        print(f"{len(entries)} prompts x {N_PER_PROMPT} images;", dict(Counter(e["tag"] for e in entries)))
        print("for example:", entries[0]["prompt"], "|", entries[-1]["prompt"])
        '''),
    markdown(
        """
        ## 2. The two models

        The base model is `BASE_MODEL`. The RecA model is read from `RECA_MODEL` (for example the folder
        notebook 02 saved); if it is empty, the toy base is fine-tuned here with the toy recipe of
        notebook 02 (RecA plus text-to-image, half and half).
        """,
        """
        ## 2. 两个模型

        基础模型由 `BASE_MODEL` 指定。RecA 模型从 `RECA_MODEL` 读取（比如 notebook 02 保存的目录）；
        如果它为空，就在这里用 notebook 02 的玩具配方（RecA 与文生图各占一半）把玩具基础模型微调一遍。
        """),
    code('''
        from recakit import freeze_for_reca, load_model
        from recakit.reproduce import arm_loss
        from recakit.shapes import scene_dataset
        from recakit.toy import load_toy
        from recakit.training import train
        '''),
    code('''
        base, processor = load_model(BASE_MODEL, device=DEVICE)
        if RECA_MODEL:
            reca, _ = load_toy(RECA_MODEL, device=DEVICE) if BASE_MODEL == "toy" else load_model(RECA_MODEL, device=DEVICE)
        elif BASE_MODEL != "toy":
            raise ValueError("set RECA_MODEL to the fine-tuned folder: only the toy is fine-tuned in this notebook")
        else:
            reca, _ = load_model(BASE_MODEL, device=DEVICE)
            freeze_for_reca(reca)
            STEPS = STEPS or (5 if QUICK else 600)
            history = train(reca.train(), arm_loss("reca", processor), scene_dataset(256 if QUICK else 20_000, seed=SEED),
                            steps=STEPS, batch_size=8 if QUICK else 48, lr=3e-4, seed=SEED, warmup_steps=STEPS // 20)
            print(f"fine-tuned {STEPS} steps: loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}")
        reca.eval();
        '''),
    markdown(
        """
        ## 3. Sample and score

        `geneval.sample_prompts` writes the official folder layout (`00000/metadata.jsonl`,
        `00000/samples/0000.png`, ...), so the same folder can also go to the official scorer. Sampling
        resumes where it stopped if interrupted. `geneval.score_folder` judges every image with the
        detector and the official rules.
        """,
        """
        ## 3. 采样与打分

        `geneval.sample_prompts` 按官方目录结构写出样本（`00000/metadata.jsonl`、`00000/samples/0000.png`……），
        所以同一个目录也可以直接交给官方评测脚本。采样中断后再次运行会从中断处继续。`geneval.score_folder`
        用检测器和官方规则逐张判分。
        """),
    code('''
        detector = geneval.make_detector(SCORER)
        summaries = {}
        for name, model in [("base", base), ("RecA", reca)]:
            folder = OUT_DIR / "geneval" / name
            geneval.sample_prompts(model, processor, entries, folder, n_per_prompt=N_PER_PROMPT, seed=SEED,
                                   cfg_scale=CFG_SCALE, run_info={"model": name})
            summaries[name] = geneval.score_folder(folder, detector)
            print(f"{name}:\\n{geneval.format_summary(summaries[name])}\\n")
        '''),
    code('''
        from IPython.display import Markdown, display

        from recakit import report

        display(Markdown(report.results_table(summaries, published=["Harmon-1.5B", "OpenUni-2-1.6B"])))
        '''),
    markdown(
        """
        ## 4. Our gains beside the published ones

        The table above and the plots below put this run's base and RecA scores next to two models of the
        RecA paper (`recakit/data/published_results.csv`): Harmon-1.5B (72.9 -> 85.7 overall) and
        OpenUni-2 (61.9 -> 74.1). The published gains are largest on `position`, `color_attr` and
        `two_object`, the tasks where the generator must follow what the understanding side knows.
        In quick mode the toy run is far too short and too small for its bars to mean much: with two
        images per task, one image moves a task score by 50 points.
        """,
        """
        ## 4. 与论文公开结果并排比较

        上面的表格和下面的柱状图把本次运行的基础模型与 RecA 模型得分，同 RecA 论文中的两个模型并排比较
        （数据来自 `recakit/data/published_results.csv`）：Harmon-1.5B（总分 72.9 -> 85.7）和 OpenUni-2
        （61.9 -> 74.1）。论文中提升最大的是 `position`、`color_attr` 和 `two_object`，这几类任务最需要生成器
        紧跟理解侧掌握的信息。快速模式下玩具模型训练太短、样本太少，柱子的高低说明不了什么：每类任务只有
        两张图，一张图的对错就会让该任务的得分变动 50 分。
        """),
    code('''
        from IPython.display import Image

        for published in ["Harmon-1.5B", "OpenUni-2-1.6B"]:
            figure = report.plot_vs_published(summaries, OUT_DIR / f"geneval_vs_{published}.png", model=published)
            display(Image(filename=str(figure)))
        '''),
    markdown(
        """
        ## 5. The full path on a GPU

        The same cells run the real benchmark when the parameters say so, for example

        ```bash
        papermill notebooks/en/04_benchmarks.ipynb runs/geneval.ipynb -p QUICK False \\
            -p BASE_MODEL deepseek-community/Janus-Pro-1B -p RECA_MODEL runs/janus/reca_model \\
            -p PROMPT_SET official -p SCORER mask2former -p DEVICE cuda
        ```

        or, step by step from the shell:

        ```bash
        recakit geneval sample --model runs/janus/reca_model --set official --n-per-prompt 4 --out runs/geneval/reca
        recakit geneval score runs/geneval/reca --scorer mask2former --out runs/geneval/reca.json
        ```

        The Mask2Former scorer applies the official rules (score above 0.3, above 0.9 for counting;
        colours by CLIP on the masked object) without mmdet, which avoids the official scorer's known
        trouble with mmcv builds on new GPUs. DPG-Bench (1065 dense prompts, judged by a VQA model) is
        sampled and scored by the next cell when `RUN_DPG` is true (or with `recakit dpg`); its default
        VQA model is BLIP rather than the paper's mPLUG, so compare its scores between runs, not with
        the published DPG numbers. Expect about 10 s per 384 px image at batch 1
        and 0.7 s per image at batch 16 on an H200 for Janus-Pro-1B with the plain KV-cache sampler.
        """,
        """
        ## 5. 在 GPU 上跑完整评测

        只要改参数，同样的单元格就会跑真正的基准测试，例如：

        ```bash
        papermill notebooks/zh/04_benchmarks.ipynb runs/geneval.ipynb -p QUICK False \\
            -p BASE_MODEL deepseek-community/Janus-Pro-1B -p RECA_MODEL runs/janus/reca_model \\
            -p PROMPT_SET official -p SCORER mask2former -p DEVICE cuda
        ```

        也可以在命令行里一步步来：

        ```bash
        recakit geneval sample --model runs/janus/reca_model --set official --n-per-prompt 4 --out runs/geneval/reca
        recakit geneval score runs/geneval/reca --scorer mask2former --out runs/geneval/reca.json
        ```

        Mask2Former 打分器执行的是官方规则（置信度高于 0.3，计数任务高于 0.9；颜色由 CLIP 在抠出的物体上判断），
        但不依赖 mmdet，因此避开了官方评测脚本在新一代 GPU 上编译 mmcv 的老问题。DPG-Bench（1065 条长提示词，
        由 VQA 模型判分）在 `RUN_DPG` 为真时由下一个单元格采样和打分（也可以用 `recakit dpg` 命令）；
        它默认的 VQA 模型是 BLIP 而不是论文用的 mPLUG，所以它的分数只适合在不同运行之间比较，
        不宜与论文公开的 DPG 分数直接对比。Janus-Pro-1B 使用朴素的 KV 缓存采样器时，
        在 H200 上批大小为 1 时每张 384 像素的图约需 10 秒，批大小为 16 时每张约 0.7 秒。
        """),
    code('''
        if RUN_DPG:
            from recakit import dpg

            items, vqa = dpg.load_items(), dpg.BlipVQA(device=DEVICE)
            for name, model in [("base", base), ("RecA", reca)]:
                folder = OUT_DIR / "dpg" / name
                dpg.sample_items(model, processor, items, folder, n_per_prompt=N_PER_PROMPT, seed=SEED, cfg_scale=CFG_SCALE)
                summaries[name]["dpg"] = dpg.score_folder(folder, vqa, items, n_per_prompt=N_PER_PROMPT)["dpg"]
            display(Markdown(report.results_table(summaries, published=["Harmon-1.5B", "OpenUni-2-1.6B"])))
        '''),
]
