"""Training the ShapesWorld toy base model from scratch on the CPU (`recakit toy train-base`, in
`recakit.commands.toy`).

Three stages, each saved before the next starts; within a stage, `recakit.training.train` keeps a
checkpoint in `out/checkpoints/` (every CHECKPOINT_EVERY steps and on Ctrl-C or SIGTERM), so an
interrupted run resumes where it stopped:

0. `vq`: the image tokenizer, `recakit.toy.model.PatchTokenizer`, fitted by k-means in seconds.
1. `understanding`: the vision encoder first learns what sits in each of its cells (1a); then,
   around that encoder held fixed, the understanding LM + learnable queries + describer learn to
   write the DENSE caption of a scene from its query states, from the image and from the caption
   itself, while a contrastive + cosine loss makes the image's and the caption's query states
   agree (1b). This alignment is what lets RecA's image condition teach the text pathway.
   `shape_check` then captions unseen one-object scenes from their image query states: stage 1s
   that also trained the encoder in 1b lost shape there twice in four runs, and RecA gained
   nothing on such a base. A stage 1 that fails the check is trained again from another random
   start, up to `STAGE1_ATTEMPTS` times in all.
2. `generator`: with the understanding side frozen, the connector and generator learn
   text-to-image from SPARSE, web-like captions (colours, counts and relations mostly missing;
   10 % of rows unconditional for classifier-free guidance). The missing detail is the headroom
   RecA can recover from images alone.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from recakit.objective import text_to_image_loss
from recakit.toy.model import ToyProcessor, ToyUnifiedModel, default_config, load_toy
from recakit.toy.shapes import COLORS, SHAPES, random_scene, render, scene_dataset, sparse_caption
from recakit.training import train

STAGES = ("vq", "understanding", "generator")

# The sizes of the shipped base; `quick` shrinks every stage to a wiring check.
FULL = dict(
    n_scenes=6000,
    vision_steps=400,
    understanding_steps=1600,
    understanding_batch=32,
    generator_steps=2000,
    generator_batch=48,
)
QUICK = dict(
    n_scenes=64, vision_steps=3, understanding_steps=3, understanding_batch=8, generator_steps=3, generator_batch=8
)

SPARSE_DROP = 0.9  # probability a colour, count, relation or extra object is left out
UNCONDITIONAL_RATE = 0.1  # rows trained with the null condition, for classifier-free guidance
GENERATOR_DATA_SEED = 500  # stage 2's stream of fresh scenes (reproduce's arms draw from 1000 + seed)
SHAPE_CHECK_FLOOR = 0.5  # the shipped stage 1 scores 1.0; a stage 1 on which RecA gained nothing scored 0.19
STAGE1_ATTEMPTS = 3  # stage 1s trained at most, each from another random start, until one keeps shape
RETRY_SEED_STRIDE = 1000  # attempt k of stage 1 draws its weights and batches from seed + k * stride
LENGTH_GROUPS = 3  # stage 1b runs its captions in this many sets of similar length (fastest on 2 cores)
CHECKPOINT_EVERY = 200  # steps between a stage's checkpoints (each writes about 40 MB)


def _fit(model, loss_fn, data, steps, batch_size, lr, seed, description, log, checkpoint_dir=None):
    """One stage: `recakit.training.train` over the parameters of `model` that require gradients
    (AdamW, 30 warmup steps, cosine down to a tenth of `lr`, clipping at 1), its history appended
    to `log` under the stage's name. With `checkpoint_dir` it checkpoints there and resumes from
    it; a finished stage's checkpoint restores the weights it ended with and trains nothing."""
    history = train(
        model,
        loss_fn,
        data,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        weight_decay=0.01,
        warmup_steps=30,
        lr_floor=0.1,
        seed=seed,
        description=description,
        out_dir=checkpoint_dir,
        save_every=CHECKPOINT_EVERY,
    )
    log.extend({"stage": description, **record} for record in history)


class _CellProbe(torch.nn.Module):
    """The vision encoder with stage 1a's throwaway head on its cells, trained as one module."""

    def __init__(self, vision, head):
        super().__init__()
        self.vision, self.head = vision, head

    def forward(self, pixels):
        return self.head(self.vision(pixels))


# -- stage 1 --------------------------------------------------------------------------------------
def object_map(scene, side: int = 4) -> torch.Tensor:
    """What the vision encoder should see in each of its side x side cells: (shape index, colour
    index) of the object centred there, or (-1, -1) for none (the larger object wins a tie)."""
    colors = list(COLORS)
    targets = torch.full((side * side, 2), -1, dtype=torch.long)
    for obj in sorted(scene.objects, key=lambda o: o.size):
        cell = min(side - 1, int(obj.cy * side)) * side + min(side - 1, int(obj.cx * side))
        targets[cell] = torch.tensor([SHAPES.index(obj.shape), colors.index(obj.color)])
    return targets


def pretrain_vision(model, scenes, pixels, steps, batch_size, seed, log, lr=2e-3, checkpoint_dir=None):
    """Stage 1a: each cell of the vision encoder predicts whether an object is centred there and,
    if so, its shape and colour (a throwaway linear head). Learned through captioning alone, the
    encoder picked up colour within a few hundred steps but shape not at all in 800 (the caption's
    one shape word is a faint signal three models deep); this direct signal teaches both in ~400,
    the way real understanding encoders arrive pretrained."""
    maps = torch.stack([object_map(scene) for scene in scenes])
    probe = _CellProbe(model.vision, torch.nn.Linear(model.vision.hidden_size, 1 + len(SHAPES) + len(COLORS)))

    def loss_fn(probe, rows, sample_seeds):
        logits, targets = probe(pixels[rows]), maps[rows]
        occupied = targets[..., 0] >= 0
        loss = F.binary_cross_entropy_with_logits(logits[..., 0], occupied.float())
        picked, (shape, colour) = logits[occupied], targets[occupied].T
        shape_loss = F.cross_entropy(picked[:, 1 : 1 + len(SHAPES)], shape)
        loss = loss + shape_loss + F.cross_entropy(picked[:, 1 + len(SHAPES) :], colour)
        return loss, {"shape_loss": float(shape_loss.detach())}

    probe.requires_grad_(True)
    probe.train()
    description = "stage 1a: vision encoder"
    _fit(probe, loss_fn, range(len(scenes)), steps, batch_size, lr, seed + 3, description, log, checkpoint_dir)


def alignment_loss(image_states: torch.Tensor, text_states: torch.Tensor, temperature: float = 0.1):
    """Symmetric InfoNCE over whole query-state sets plus 1 - cosine per query: the image and the
    caption of one scene should give the same query states, and other scenes' should differ."""
    image_flat = F.normalize(image_states.flatten(1), dim=-1)
    text_flat = F.normalize(text_states.flatten(1), dim=-1)
    logits = image_flat @ text_flat.T / temperature
    targets = torch.arange(len(logits), device=logits.device)
    contrastive = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    cosine = F.cosine_similarity(image_states, text_states, dim=-1).mean()
    return contrastive + (1 - cosine), float(cosine.detach())


def in_length_groups(run, token_lists: list[list[int]], groups: int = LENGTH_GROUPS) -> torch.Tensor:
    """`run(rows)` -> one result per row, computed on `groups` sets of rows of similar caption
    length and returned in the original row order. Padded to the longest caption of the batch
    (dense captions run from 5 to 49 tokens), a third of stage 1b's compute went into padding."""
    order = sorted(range(len(token_lists)), key=lambda row: len(token_lists[row]))
    size = -(-len(order) // groups)
    results = torch.cat([run(order[start : start + size]) for start in range(0, len(order), size)])
    return results[torch.tensor(order).argsort()]


def train_understanding(
    model, processor, scenes, pixels, dense, steps, batch_size, seed, log, lr=2e-3, checkpoint_dir=None
):
    # The vision encoder stays as stage 1a left it. Trained on by these losses too, it lost shape
    # in a run where stage 1 failed (a linear probe on its cells: shape 60 % after stage 1b), as a
    # caption's one shape word is a fainter signal than its colour words. Fixed, it is run once
    # per scene here rather than every step.
    for p in model.vision.parameters():
        p.requires_grad_(False)
    model.vision.eval()
    with torch.no_grad():
        cells = torch.cat(
            [
                model.vision(pixels[i : i + 256])
                for i in tqdm(range(0, len(pixels), 256), desc="stage 1: encoding scenes")
            ]
        )
    dense_ids = [processor.encode(caption) for caption in dense]

    def loss_fn(model, rows, sample_seeds):
        tokens = [dense_ids[i] for i in rows]
        # The generator will read the query states of sparse captions and of short prompts, never
        # of dense ones: trained on dense captions alone, the LM learned to ignore words a dense
        # caption makes redundant ("a photo of a circle" and "... of a star" gave the same states).
        # Restating sparse captions from their own query states keeps every word in them.
        rngs = [random.Random(sample_seed) for sample_seed in sample_seeds]
        sparse = [sparse_caption(scenes[i], r, r.choice((0.5, SPARSE_DROP))) for i, r in zip(rows, rngs)]
        sparse = [processor.encode(caption) for caption in sparse]
        image_states = model.understand_vision_cells(cells[rows])
        captions = tokens + sparse
        states = in_length_groups(lambda group: model.understand_text([captions[i] for i in group]), captions)
        text_states, sparse_states = states[: len(rows)], states[len(rows) :]
        # The caption's query states are the target the image's must reach, not the other way
        # round: pulled both ways, the text states drifted towards what the image side had
        # learned so far (colour, not yet shape) and lost the shape word.
        align, cosine = alignment_loss(image_states, text_states.detach())
        # Three captioning losses -- the dense caption from the image's and from its own query
        # states, the sparse one from its own -- each the mean over its caption tokens, in one
        # pass of the describer over all rows.
        described = torch.cat([image_states, text_states, sparse_states])
        targets = tokens + tokens + sparse
        row_losses = in_length_groups(
            lambda group: model.describe_loss(described[group], [targets[i] for i in group], per_row=True), targets
        )
        caption_tokens = torch.tensor([len(target) + 1 for target in targets])  # + end of caption
        describe_image, describe_text, describe_sparse = (
            row_losses[part].sum() / caption_tokens[part].sum() for part in torch.arange(len(targets)).split(len(rows))
        )
        loss = describe_image + describe_text + describe_sparse + align
        return loss, {"describe_image": float(describe_image.detach()), "cosine": cosine}

    model.requires_grad_(False)
    for part in (model.aligner, model.understanding, model.describer, model.queries):
        part.requires_grad_(True)
    model.train()
    description = "stage 1: understanding"
    _fit(model, loss_fn, range(len(dense_ids)), steps, batch_size, lr, seed + 1, description, log, checkpoint_dir)
    model.requires_grad_(False)
    model.eval()


def shape_check(model, processor, n_scenes: int = 64, seed: int = 9000) -> dict:
    """What the image query states hold of a lone object: the describer captions `n_scenes`
    unseen one-object scenes from the image alone; returns the share whose caption names exactly
    the object's shape, and exactly its colour. A stage 1 whose states kept colour but lost shape
    made a base on which RecA gained nothing (docs/toy_study.md)."""
    rng = random.Random(seed)
    scenes = [random_scene(rng, n_objects=1) for _ in range(n_scenes)]
    captions = model.reca_adapter(processor).caption([render(scene) for scene in scenes])
    shape = colour = 0
    for scene, caption in zip(scenes, captions):
        words = caption.replace(".", " ").split()
        shape += [w for w in words if w in SHAPES] == [scene.objects[0].shape]
        colour += [w for w in words if w in COLORS] == [scene.objects[0].color]
    return {"shape": shape / n_scenes, "colour": colour / n_scenes}


# -- stage 2 --------------------------------------------------------------------------------------
def train_generator(model, processor, data, steps, batch_size, seed, log, lr=2e-3, checkpoint_dir=None):
    """Sparse text-to-image on scenes never seen before: `data` holds steps x batch_size examples,
    rendered and tokenized on demand (under a millisecond a scene), and each is drawn once.
    Cycling through the 6000 stage-1 scenes instead, 16 times over, the generator memorised them
    (training loss 0.61, 0.98 on unseen scenes) and scored unseen scenes better with no condition
    than with a caption."""
    if len(data) < steps * batch_size:
        raise ValueError(f"stage 2 draws each example once: {steps} x {batch_size} needs that many, got {len(data)}")

    def loss_fn(model, examples, sample_seeds):
        rngs = [random.Random(sample_seed) for sample_seed in sample_seeds]
        captions = [sparse_caption(example.scene, r, SPARSE_DROP) for example, r in zip(examples, rngs)]
        drop = torch.tensor([r.random() < UNCONDITIONAL_RATE for r in rngs])
        return text_to_image_loss(model, processor, [example.image for example in examples], captions, drop)

    model.freeze_for_reca()
    model.train()
    _fit(model, loss_fn, data, steps, batch_size, lr, seed, "stage 2: generator", log, checkpoint_dir)
    model.eval()


# -- the whole base ---------------------------------------------------------------------------------
def _render_training_set(n_scenes: int, seed: int):
    dataset = scene_dataset(n_scenes, seed=seed, p_drop=SPARSE_DROP)
    examples = [dataset[i] for i in tqdm(range(n_scenes), desc="rendering scenes")]
    return [e.scene for e in examples], [e.image for e in examples], [e.dense for e in examples]


def caption_vocabulary(scenes, dense) -> list[str]:
    """Every caption the base trains on, dense and sparse, so no training word is unknown."""
    rng = random.Random(0)
    sparse = [sparse_caption(scene, rng, p) for scene in scenes for p in (0.0, 0.5, SPARSE_DROP)]
    return list(dense) + sparse


def _train_stage1(
    model, processor, scenes, pixels, dense, sizes, seed, attempts, progress, save_progress, log, checkpoints
):
    """Stages 1a and 1b, then `shape_check`; while the image query states fail it, train stage 1
    again on the same scenes from another random start (a stage 1 that also trains the encoder in
    1b can lose shape; docs/toy_study.md). Every attempt's check is kept in progress["shape_checks"],
    so an interrupted run resumes at the next attempt, and within an attempt from the checkpoints
    of its 1a and 1b in `checkpoints`. Returns the model of the last attempt."""
    checks = progress.setdefault("shape_checks", [])
    for attempt in range(len(checks), max(attempts, len(checks) + 1)):
        attempt_seed = seed + attempt * RETRY_SEED_STRIDE
        if attempt:  # a new understanding side (and generator) around the tokenizer already fitted
            torch.manual_seed(attempt_seed)
            fresh = ToyUnifiedModel(model.config)
            fresh.vq.load_state_dict(model.vq.state_dict())
            model = fresh
        pretrain_vision(
            model,
            scenes,
            pixels,
            sizes["vision_steps"],
            sizes["understanding_batch"],
            attempt_seed,
            log,
            checkpoint_dir=checkpoints / f"attempt{attempt}-1a",
        )
        train_understanding(
            model,
            processor,
            scenes,
            pixels,
            dense,
            sizes["understanding_steps"],
            sizes["understanding_batch"],
            attempt_seed,
            log,
            checkpoint_dir=checkpoints / f"attempt{attempt}-1b",
        )
        checks.append(shape_check(model, processor))
        progress["shape_check"] = checks[-1]
        save_progress()
        if checks[-1]["shape"] >= SHAPE_CHECK_FLOOR:
            break
    return model


def train_base(
    out, *, seed: int = 0, quick: bool = False, sizes: dict | None = None, stage1_attempts: int = STAGE1_ATTEMPTS
):
    """Train (or resume) the toy base in `out`; returns (model, processor, progress). Stage 1 is
    trained up to `stage1_attempts` times until its image query states keep shape (once in quick
    mode, whose few steps never do)."""
    sizes = {**(QUICK if quick else FULL), **(sizes or {})}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    progress_path = out / "progress.json"
    progress = json.loads(progress_path.read_text()) if progress_path.exists() else {"done": [], "seconds": {}}
    if progress.get("sizes", sizes) != sizes:
        raise ValueError(f"{out} holds a base trained with sizes {progress['sizes']}, not {sizes}: use another folder")
    checkpoints = out / "checkpoints"

    torch.manual_seed(seed)
    scenes, images, dense = _render_training_set(sizes["n_scenes"], seed)
    if progress["done"]:
        model, processor = load_toy(out)
    else:
        processor = ToyProcessor.from_captions(caption_vocabulary(scenes, dense))
        model = ToyUnifiedModel(default_config(len(processor)))
    pixels = processor.pixel_values(images)
    log: list[dict] = []

    def save_progress():
        progress_path.write_text(json.dumps(progress, indent=1))

    for stage in STAGES:
        if stage in progress["done"]:
            continue
        started = time.time()
        if stage == "vq":
            model.vq.fit(pixels, seed=seed)
        elif stage == "understanding":
            model = _train_stage1(
                model,
                processor,
                scenes,
                pixels,
                dense,
                sizes,
                seed,
                1 if quick else stage1_attempts,
                progress,
                save_progress,
                log,
                checkpoints,
            )
        else:
            stream = scene_dataset(sizes["generator_steps"] * sizes["generator_batch"], seed=GENERATOR_DATA_SEED + seed)
            steps, batch = sizes["generator_steps"], sizes["generator_batch"]
            train_generator(model, processor, stream, steps, batch, seed, log, checkpoint_dir=checkpoints / "2")
        model.save_pretrained(out, processor)
        progress["done"].append(stage)
        progress["seconds"][stage] = round(time.time() - started, 1)  # of the last (resumed) run only
        progress["sizes"] = sizes
        save_progress()
        with open(out / "train_log.jsonl", "a") as handle:
            for record in log:
                handle.write(json.dumps(record) + "\n")
        log.clear()
        shutil.rmtree(checkpoints, ignore_errors=True)  # the saved stage supersedes them
    model.freeze_for_reca()
    return model.eval(), processor, progress
