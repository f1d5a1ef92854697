"""Notebook 01: what RecA's reconstruction objective is, computed by hand on the toy model."""
from cells import SETUP, SETUP_TEXT, code, markdown, opening, parameters

CELLS = opening(
    "01_reconstruction_objective",
    "01 · The reconstruction objective",
    "01 · 重建目标",
    """
    RecA (reconstruction alignment) post-trains a unified multimodal model with one self-supervised
    loss: show the model its *own understanding* of an unlabeled image and ask it to generate that
    image again, scored with its ordinary image-generation loss. No captions are needed.

    In this chapter you will
    1. look at the two ways a unified model represents an image: understanding embeddings and VQ tokens;
    2. see the exact token sequence RecA trains on;
    3. compute the RecA loss step by step and check it against `recakit.reca_loss`;
    4. see why an information bottleneck matters: a condition that lets the model *copy* is useless;
    5. compare how RecA is wired into different architectures.

    Everything runs on the CPU in about a minute with the ShapesWorld toy model (`MODEL = "toy"`);
    set `MODEL` to a Janus-Pro id and `DEVICE` to `cuda` to look at the real model instead.
    """,
    """
    重建对齐（RecA）只用一个自监督损失来后训练统一多模态模型：把模型*自己*对一张无标注图像的
    理解交给它，让它把这张图重新生成出来，损失就是它平时做图像生成时用的那个损失。整个过程不需要任何图像描述。

    本章内容：
    1. 统一多模态模型表示一张图像的两种方式：理解嵌入与 VQ 图像 token；
    2. RecA 训练时拼出的完整 token 序列；
    3. 一步步手算 RecA 损失，并与 `recakit.reca_loss` 的结果核对；
    4. 信息瓶颈为什么重要——如果条件输入能让模型直接照搬答案，训练就失去了意义；
    5. 不同架构里 RecA 分别接在哪里。

    使用 ShapesWorld 玩具模型（`MODEL = "toy"`）时，全部内容在 CPU 上大约一分钟跑完；
    把 `MODEL` 换成 Janus-Pro 的模型名、`DEVICE` 设为 `cuda`，就可以在真实模型上观察同样的东西。
    """,
) + [
    parameters('''
        QUICK: bool = True     # small settings that finish in about a minute on a CPU
        MODEL: str = "toy"     # "toy", or a hub id / local path such as deepseek-community/Janus-Pro-1B
        DEVICE: str = "auto"   # "auto", "cpu" or "cuda"
        SEED: int = 0          # picks the ShapesWorld scenes shown
        OUT_DIR: str = "runs/01_reconstruction_objective"  # figures are saved here
        '''),
    SETUP_TEXT,
    SETUP,
    markdown(
        """
        ## 1. A unified model has two ways to see an image

        A *unified multimodal model* (UMM) both understands and generates images with one network.
        The two directions use different image representations:

        * **Understanding** runs the image through an *understanding encoder* (SigLIP in Janus-Pro) and
          hands the resulting continuous vectors, the *understanding embeddings*, to the language model,
          which can then answer questions about the image.
        * **Generation** works with *discrete* image tokens: a VQ tokenizer cuts the image into a grid of
          patches and replaces each patch by the id of its nearest codebook vector. Generating an image
          means predicting these ids one after another, like words, and decoding them to pixels.

        The toy model used here has the same two sides, only tiny: a 64 px image becomes 16 *query
        states* of a frozen understanding language model, and a grid of 8 x 8 = 64 codebook tokens.
        """,
        """
        ## 1. 统一模型看图像的两种方式

        *统一多模态模型*（UMM）用同一个网络既理解图像，也生成图像。两个方向用的图像表示并不相同：

        * **理解**：图像先经过*理解编码器*（Janus-Pro 里是 SigLIP），得到一组连续向量，即*理解嵌入*，
          再交给语言模型，语言模型据此回答关于这张图的问题。
        * **生成**：使用*离散*的图像 token。VQ 分词器把图像切成网格，每一小块换成码本中离它最近的
          向量的编号。生成图像就是像写字一样逐个预测这些编号，最后解码回像素。

        这里用的玩具模型也有这两条路，只是规模很小：一张 64 像素的图在理解侧变成冻结的理解语言模型
        给出的 16 个*查询状态*，在生成侧变成 8 × 8 = 64 个码本 token。
        """),
    code('''
        from recakit import adapter_for, load_model

        model, processor = load_model(MODEL, device=DEVICE)
        adapter = adapter_for(model, processor)  # the one interface RecA uses for every model family
        total = sum(p.numel() for p in model.parameters())
        print(f"{type(model).__name__}: {total / 1e6:.2f} M parameters")
        print(f"{adapter.num_image_tokens} image tokens per image, codebook of {adapter.codebook_size} codes")
        '''),
    markdown(
        """
        ### One image, two representations

        We render one ShapesWorld scene and encode it both ways. Note the shapes: the understanding side
        gives a few *continuous* vectors, the generation side a grid of *integer* ids.
        """,
        """
        ### 同一张图，两种表示

        先渲染一张 ShapesWorld 场景图，再分别用两种方式编码。注意两者的形状：理解侧得到的是少量
        *连续*向量，生成侧得到的是一格一格的*整数*编号。
        """),
    code('''
        from recakit.shapes import scene_dataset

        IMAGE_SIZE = 64 if MODEL == "toy" else 384
        scenes = scene_dataset(8, seed=SEED, image_size=IMAGE_SIZE)
        image = scenes[0].image
        with torch.no_grad():
            embeddings = adapter.understanding_embeddings([image])
            tokens = adapter.image_tokens([image])
        side = int(adapter.num_image_tokens ** 0.5)
        print("scene:", scenes[0].dense)
        print("understanding embeddings:", tuple(embeddings.shape), embeddings.dtype)
        print("VQ tokens:", tuple(tokens.shape), tokens.dtype, "- the first rows and columns of the token grid:")
        print(tokens[0].view(side, side)[:8, :8])
        '''),
    markdown(
        """
        The VQ tokens are a faithful but *literal* code: decoding them gives the picture back almost
        pixel for pixel. This is what the generator has to produce.
        """,
        """
        VQ token 是一种忠实但*逐字*的编码：把它们解码回去，几乎能逐像素还原原图。
        这正是生成器需要输出的东西。
        """),
    code('''
        from recakit import viz

        decoded = adapter.decode_image_tokens(tokens)[0]
        viz.image_grid([image, decoded], titles=["input image", "its VQ tokens, decoded"],
                       cell_size=2.5, save_to=OUT_DIR / "vq_roundtrip.png");
        '''),
    markdown(
        """
        The understanding embeddings are different in kind: they are meant to say *what* is in the
        image. A quick way to see it is to compare images by the cosine similarity of their (averaged)
        embeddings, after subtracting the mean embedding that all images share. Scenes with the same
        objects and colours should look alike to the understanding side even when their pixels are
        placed differently.
        """,
        """
        理解嵌入则是另一类东西：它要表达的是图里*有什么*。一个直观的办法是比较不同图像
        （按位置取平均后的）嵌入的余弦相似度，比较之前先减去所有图像共有的平均嵌入。
        物体和颜色相同的场景，即便像素位置不同，在理解侧看来也应当相近。
        """),
    code('''
        images = [example.image for example in scenes]
        with torch.no_grad():
            pooled = adapter.understanding_embeddings(images).float().mean(dim=1)
        labels = [example.dense.removeprefix("a photo of ")[:40] for example in scenes]
        viz.similarity_heatmap(pooled, labels=labels, centered=True, title="understanding embeddings, centred cosine",
                               save_to=OUT_DIR / "embedding_similarity.png");
        '''),
    markdown(
        """
        ## 2. The sequence RecA trains on

        RecA reuses the text-to-image format, but the text prompt is replaced by the understanding
        embeddings of the image to rebuild (Janus-style models add a short instruction such as
        "describe every visual detail"). Then comes the begin-of-image position and the image's own
        VQ tokens. Only the image-token positions carry a loss. The figure below is built from the real
        lengths returned by the model's adapter.
        """,
        """
        ## 2. RecA 训练用的序列

        RecA 沿用文生图的格式，只是把文本提示词换成了待重建图像的理解嵌入（Janus 这类模型还会再加
        一句简短的指令，例如“描述每一个视觉细节”）。后面接图像起始符，再后面是这张图自己的 VQ token。
        只有图像 token 的位置参与计算损失。下图中的长度都来自模型适配器的实际输出。
        """),
    code('''
        from recakit import RECONSTRUCTION_INSTRUCTIONS

        instruction = RECONSTRUCTION_INSTRUCTIONS[0]
        prefix, prefix_mask = adapter.prefix_from_embeddings(embeddings, instructions=[instruction])
        n_condition, n_prefix = embeddings.shape[1], int(prefix_mask[0].sum())
        segments = [("instruction + chat markers", n_prefix - n_condition - 1, "text"),
                    ("understanding embeddings", n_condition, "condition"),
                    ("begin-of-image", 1, "special"),
                    ("VQ image tokens", adapter.num_image_tokens, "target")]
        viz.token_layout([s for s in segments if s[1] > 0], save_to=OUT_DIR / "token_layout.png");
        print(f"prefix: {n_prefix} positions; instruction (when the model uses one): {instruction!r}")
        '''),
    markdown(
        """
        ## 3. The loss, step by step

        Training is ordinary teacher forcing. The generation transformer reads the prefix followed by
        the target tokens shifted right by one, and at every position predicts the next image token:
        the output at the begin-of-image position predicts token 0, the output at token 0 predicts
        token 1, and so on.

        **Step 1.** Embed the target tokens and append them to the prefix. Positions are counted from
        the attention mask, so padding never shifts them.
        """,
        """
        ## 3. 一步步计算损失

        训练就是普通的教师强制（teacher forcing）。生成 Transformer 读入前缀，再读入右移一位的目标
        token，并在每个位置预测下一个图像 token：图像起始符位置的输出预测第 0 个 token，第 0 个 token
        位置的输出预测第 1 个，依此类推。

        **第 1 步**：把目标 token 转成嵌入，接在前缀后面。位置编号由注意力掩码累加得到，
        因此填充不会让位置错位。
        """),
    code('''
        inputs = torch.cat([prefix, adapter.embed_image_tokens(tokens[:, :-1])], dim=1)
        mask = torch.cat([prefix_mask, prefix_mask.new_ones(tokens[:, :-1].shape)], dim=1)
        positions = mask.cumsum(-1) - 1
        print("prefix", tuple(prefix.shape), "+ shifted tokens ->", tuple(inputs.shape))
        '''),
    markdown(
        """
        **Step 2.** Run the generation stack and keep the outputs from the begin-of-image position on:
        exactly one prediction per target token.
        """,
        """
        **第 2 步**：让生成部分前向计算，只保留从图像起始符开始的输出：每个目标 token 恰好对应一个预测。
        """),
    code('''
        with torch.no_grad():
            hidden, _ = adapter.forward_generation(inputs, mask, positions)
            logits = adapter.image_logits(hidden[:, n_prefix - 1:]).float()
        print("logits", tuple(logits.shape), "= (batch, image tokens, codebook)")
        '''),
    markdown(
        """
        **Step 3.** Cross-entropy between those logits and the true tokens. For scale: a model that
        knows nothing scores ln(codebook size). `recakit.reca_loss` does the same computation (plus
        instruction sampling and dropout, turned off here), so the two numbers agree.
        """,
        """
        **第 3 步**：用这些 logits 与真实 token 计算交叉熵。作为参照，一个什么都不懂的模型得分是
        ln(码本大小)。`recakit.reca_loss` 做的是同样的计算（另外还有指令采样和指令丢弃，这里关掉了），
        所以两个数应当一致。
        """),
    code('''
        import math

        from recakit import reca_loss

        by_hand = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten())
        with torch.no_grad():
            library = reca_loss(model, processor, [image], instruction_dropout=0.0, sample_seeds=[SEED])
        print(f"by hand {by_hand.item():.4f} | recakit.reca_loss {library.item():.4f} | "
              f"uniform guess {math.log(adapter.codebook_size):.4f}")
        '''),
    markdown(
        """
        ## 4. Why the condition must be a bottleneck

        Suppose we conditioned the generator on the VQ tokens of the same image instead of its
        understanding embeddings. The answer would sit in the prompt: a model only has to *copy*
        token *i* of the prompt into position *i* to drive the loss to zero, on every image, seen or
        unseen, without learning anything about what images mean. Upstream RecA saw exactly this with
        Show-o's VQ variant: the loss fell to about 0 within a few thousand steps. Understanding
        embeddings at a modest resolution (SigLIP at 384 px for Janus-Pro, 224 px for BAGEL) are a
        natural *information bottleneck*: they keep the semantics and drop the pixel-exact detail, so
        the generator has to rebuild the image from its meaning.

        We can measure how much of the answer each condition hands over without training anything.
        With the VQ tokens as the condition, the copy rule gets 100 % of the target tokens right, by
        construction. With the understanding embeddings, the best we can do by lookup is to take the
        tokens of the training scene whose embeddings are closest. How many of those are right, for
        scenes the lookup has never seen? Much of a ShapesWorld image is plain background, which any
        guess gets right, so we count the tokens that cover objects.
        """,
        """
        ## 4. 为什么条件输入必须是一个瓶颈

        假如我们给生成器的条件不是理解嵌入，而是同一张图的 VQ token，那么答案就直接写在提示里了：
        模型只需把提示里第 *i* 个 token *照搬*到第 *i* 个位置，就能让损失降到零，无论图像见过与否，
        而它对图像的含义一无所知。RecA 原作者在 Show-o 的 VQ 版本上正好遇到了这种情况：几千步之内
        损失就掉到了 0 附近。分辨率不高的理解嵌入（Janus-Pro 用 384 像素的 SigLIP，BAGEL 用 224 像素）
        天然是一个*信息瓶颈*：保留语义，丢掉逐像素的细节，逼着生成器依据“含义”去重建图像。

        两种条件各自泄露了多少答案，不用训练就能量出来。以 VQ token 为条件时，照搬规则按定义就能
        猜对 100% 的目标 token。以理解嵌入为条件时，靠查表最多只能这样做：找到嵌入最接近的训练场景，
        把它的 token 当作答案。对于从没见过的场景，这样能猜对多少？ShapesWorld 图像大部分是纯色背景，
        背景 token 随便怎么猜都对，所以我们只统计覆盖物体的 token。
        """),
    code('''
        pool = [example.image for example in scene_dataset(128 if QUICK else 4096, seed=SEED + 1, image_size=IMAGE_SIZE)]
        unseen = [example.image for example in scene_dataset(8, seed=SEED + 2, image_size=IMAGE_SIZE)]
        with torch.no_grad():
            pool_embeddings = torch.cat([adapter.understanding_embeddings(pool[i:i + 64]) for i in range(0, len(pool), 64)])
            pool_tokens = torch.cat([adapter.image_tokens(pool[i:i + 64]) for i in range(0, len(pool), 64)])
            unseen_embeddings, unseen_tokens = adapter.understanding_embeddings(unseen), adapter.image_tokens(unseen)
        '''),
    code('''
        def unit_rows(embeddings):
            return torch.nn.functional.normalize(embeddings.float().flatten(1), dim=-1)


        nearest = (unit_rows(unseen_embeddings) @ unit_rows(pool_embeddings).T).argmax(dim=1)
        right = pool_tokens[nearest] == unseen_tokens.to(pool_tokens.device)
        on_objects = unseen_tokens.to(pool_tokens.device) != pool_tokens.flatten().mode().values  # not plain background
        print("VQ tokens as condition, copy rule:              100 % of the object tokens right")
        print(f"understanding embeddings, nearest-scene lookup: {right[on_objects].float().mean():.1%} of the object tokens right "
              f"({right.float().mean():.1%} of all tokens)")
        viz.image_grid([unseen, [pool[i] for i in nearest]], row_labels=["unseen scene", "nearest by embeddings"],
                       save_to=OUT_DIR / "bottleneck_lookup.png");
        '''),
    markdown(
        """
        The nearest scene by understanding embeddings tends to hold the same kinds of objects and
        colours, yet far fewer of its object tokens match than the copy rule's 100 %: the embeddings
        say *what* is in the picture, not *where every pixel goes*. The RecA loss can therefore not be driven to zero by
        a shortcut. To lower it, the generator has to get better at drawing a scene from its
        meaning, which is exactly the skill text-to-image needs. With VQ tokens as the condition the
        loss could reach zero while teaching nothing.
        """,
        """
        按理解嵌入找到的最近场景，往往包含同类的物体和颜色，但物体 token 能对上的远不到照搬规则的 100%：理解嵌入说明的是
        图里*有什么*，而不是*每个像素在哪里*。因此 RecA 损失没有捷径可走，无法被投机地压到零；要降低它，
        生成器只能提高“依据含义画出场景”的本事，而这正是文生图所需要的能力。反过来，如果以 VQ token 为条件，
        损失可以降到零，模型却什么也学不到。
        """),
    markdown(
        """
        ## 5. RecA across architectures

        RecA only needs *some* understanding representation to condition on and the model's *own*
        generation loss. How it is wired differs per architecture (published setups of the RecA paper;
        the last two rows are this kit):

        | model | condition (understanding side) | target and loss | frozen | mixed in |
        |---|---|---|---|---|
        | BAGEL | SigLIP-NaViT, penultimate layer, 224 px (256 tokens) + connector | FLUX-VAE latents, rectified-flow MSE | ViT, VAE, understanding expert | nothing |
        | Harmon | its MAR/MAE encoder on KL-16 latents (1088 tokens), gradient x0.1 | MAR masked-diffusion loss | nothing | image-to-text, 1:1 |
        | OpenUni | InternVL3 ViT + MLP at 448 px (256 tokens) | SANA flow matching on DC-AE latents | LMM, ViT | nothing |
        | Show-o | CLIP ViT-L/14-336, layer -2 (576 tokens) | masked-token cross-entropy on MAGVIT-v2 tokens | nothing | image-to-text, 1:1 |
        | Janus-Pro (recakit) | SigLIP at 384 px (576 tokens) + aligner, with an instruction | next-token cross-entropy on 576 VQ tokens | vision encoder, VQ tokenizer | image-to-text optional |
        | ShapesWorld toy (recakit) | 16 query states of a frozen understanding LM | next-token cross-entropy on 64 VQ tokens | VQ, ViT, understanding LM | text-to-image |

        Rules of thumb from the paper: feed the understanding encoder the smallest input it accepts (a
        bottleneck); freeze the understanding parts when they are separate from generation; when they
        share parameters (Harmon, Show-o, Janus), mix in image-to-text data so understanding does not
        drift. Published recipes run 1000 (BAGEL) to 5000 steps (Harmon, Show-o, OpenUni).

        **Next:** notebook 02 runs RecA fine-tuning end to end.
        """,
        """
        ## 5. 不同架构中的 RecA

        RecA 只需要两样东西：*某种*可以作为条件的理解表示，以及模型*自己的*生成损失。
        具体怎么接，各个架构不一样（前四行是 RecA 论文公开的设置，后两行是本工具包的实现）：

        | 模型 | 条件（理解侧） | 目标与损失 | 冻结部分 | 混入的数据 |
        |---|---|---|---|---|
        | BAGEL | SigLIP-NaViT 倒数第二层，224 像素（256 个 token）+ 连接层 | FLUX-VAE 隐变量，整流流 MSE | ViT、VAE、理解专家 | 无 |
        | Harmon | 自身的 MAR/MAE 编码器，作用于 KL-16 隐变量（1088 个 token），梯度乘 0.1 | MAR 掩码扩散损失 | 无 | 图生文，1:1 |
        | OpenUni | InternVL3 的 ViT + MLP，448 像素（256 个 token） | 在 DC-AE 隐变量上做 SANA 流匹配 | LMM、ViT | 无 |
        | Show-o | CLIP ViT-L/14-336 倒数第二层（576 个 token） | MAGVIT-v2 token 上的掩码交叉熵 | 无 | 图生文，1:1 |
        | Janus-Pro（recakit） | 384 像素 SigLIP（576 个 token）+ 对齐层，外加一句指令 | 576 个 VQ token 的下一 token 交叉熵 | 视觉编码器、VQ 分词器 | 可选图生文 |
        | ShapesWorld 玩具模型（recakit） | 冻结的理解语言模型给出的 16 个查询状态 | 64 个 VQ token 的下一 token 交叉熵 | VQ、ViT、理解语言模型 | 文生图 |

        论文给出的经验：给理解编码器喂它能接受的最小输入（也就是信息瓶颈）；理解部分与生成部分
        相互独立时把理解部分冻结；两者共享参数时（Harmon、Show-o、Janus）混入图生文数据，
        避免理解能力漂移。公开的训练配方从 1000 步（BAGEL）到 5000 步（Harmon、Show-o、OpenUni）不等。

        **下一章**：notebook 02 完整地跑一遍 RecA 微调。
        """),
]
