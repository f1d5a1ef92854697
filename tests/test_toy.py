"""The ShapesWorld toy model: shipped base, adapter contract with reca_loss, save/load, training stages."""

import json
import math
import random

import pytest
import torch
from conftest import cross_entropy_by_hand, full_forward_image_logits

from recakit.toy.model import PAD, UNK, ToyAdapter, ToyProcessor, ToyUnifiedModel, default_config, load_toy
from recakit.toy.shapes import random_scene, render


@pytest.fixture(scope="module")
def shipped():
    return load_toy()


@pytest.fixture()
def scenes():
    return [render(random_scene(seed)) for seed in range(4)]


def test_shipped_base_loads_offline_and_generates(shipped):
    from recakit.sampling import generate_images

    model, processor = shipped
    prompts = ["a photo of a red circle", "a photo of two stars"]
    first = generate_images(model, processor, prompts, seed=[3, 4], cfg_scale=3.0, progress=False)
    again = generate_images(model, processor, prompts[:1], seed=[3], cfg_scale=3.0, progress=False)
    assert [image.size for image in first] == [(64, 64), (64, 64)]
    assert first[0].tobytes() == again[0].tobytes()  # image 0 depends on its prompt and seed only
    assert first[0].tobytes() != first[1].tobytes()


def test_adapter_shapes_and_codes(shipped, scenes):
    model, processor = shipped
    adapter = model.reca_adapter(processor)
    assert isinstance(adapter, ToyAdapter)
    embeddings = adapter.understanding_embeddings(scenes)
    assert embeddings.shape == (4, model.config["num_queries"], 128)
    tokens = adapter.image_tokens(scenes)
    assert tokens.shape == (4, adapter.num_image_tokens)
    assert int(tokens.max()) < adapter.codebook_size
    prefix, mask = adapter.prefix_from_text(["a photo of a red circle", "shapes"], torch.tensor([False, True]))
    assert prefix.shape[:2] == mask.shape == (2, model.config["num_queries"] + 1)
    # a dropped row is the learned null condition, whatever the prompt
    other, _ = adapter.prefix_from_text(["a photo of a blue star", "clip art"], torch.tensor([False, True]))
    assert torch.equal(prefix[1], other[1]) and not torch.equal(prefix[0], other[0])


def test_bottleneck_resolution_changes_what_the_encoder_sees(shipped, scenes):
    model, processor = shipped
    adapter = model.reca_adapter(processor)
    full = adapter.understanding_embeddings(scenes[:1])
    coarse = adapter.understanding_embeddings(scenes[:1], resolution=8)
    assert not torch.allclose(full, coarse)


def test_reca_loss_trains_only_the_generation_side(shipped, scenes):
    from recakit.objective import reca_loss

    model, processor = shipped
    model = ToyUnifiedModel(model.config)
    model.load_state_dict(shipped[0].state_dict())
    counts = model.freeze_for_reca()
    assert counts["trainable"] > 0 and counts["frozen"] > 0
    model.train()
    assert not model.vq.training and not model.understanding.training
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    images = scenes[:2]
    losses = []
    for step in range(8):
        loss = reca_loss(model, processor, images, sample_seeds=[0, 1], instruction_dropout=0.0)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            for name, parameter in model.named_parameters():
                frozen = name.startswith(("vq.", "vision.", "aligner.", "understanding.", "queries", "describer."))
                assert (parameter.grad is None) == frozen, name
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] * 0.8


def test_reca_loss_is_the_teacher_forced_cross_entropy_of_the_image_codes(shipped, scenes):
    """The toy's loss takes the factored head's shortcut; the reference takes the full table of
    logits, one scene at a time, from one forward over [prefix, codes[:-1]]."""
    from recakit.objective import reca_loss

    model, processor = shipped
    adapter = model.reca_adapter(processor)
    expected = []
    with torch.no_grad():
        loss = reca_loss(model, processor, scenes, instruction_dropout=0.0, sample_seeds=range(4))
        for scene in scenes:
            codes = adapter.image_tokens([scene])
            prefix, mask = adapter.prefix_from_embeddings(adapter.understanding_embeddings([scene]))
            logits = full_forward_image_logits(adapter, prefix, mask, codes)
            expected.append(cross_entropy_by_hand(logits[0], codes[0]))
    torch.testing.assert_close(loss, torch.stack(expected).mean(), rtol=0, atol=1e-5)


def test_caption_loss_counts_each_caption_token_and_its_end_once(shipped, scenes):
    """The describer's loss against one built by hand, caption by caption: the targets are the
    caption's words and the end token, never the begin token or the padding of shorter rows."""
    from recakit.toy.model import BOS, EOS

    model, processor = shipped
    adapter = model.reca_adapter(processor)
    captions = ["a photo of a red circle", "a photo of two blue stars left of a green cross", "three squares"]
    total, count = 0.0, 0
    with torch.no_grad():
        loss = adapter.caption_loss(scenes[:3], captions)
        states = adapter.understanding_embeddings(scenes[:3])
        for row, text in enumerate(captions):
            answer = processor.encode(text) + [EOS]
            ids = torch.tensor([[BOS] + answer[:-1]])
            embeds = torch.cat([states[row : row + 1], model.describer.model.embed_tokens(ids)], dim=1)
            logits = model.describer(inputs_embeds=embeds).logits[0, -len(answer) :]
            total += cross_entropy_by_hand(logits, torch.tensor(answer)) * len(answer)
            count += len(answer)
    torch.testing.assert_close(loss, total / count, rtol=0, atol=1e-5)


def test_save_load_round_trip(tmp_path, scenes):
    processor = ToyProcessor.from_captions(["a photo of a red circle left of a blue star"])
    torch.manual_seed(0)
    model = ToyUnifiedModel(default_config(len(processor), num_queries=4)).eval()
    model.save_pretrained(tmp_path, processor)
    loaded, loaded_processor = load_toy(tmp_path)
    assert loaded_processor.vocab == processor.vocab
    assert json.loads((tmp_path / "config.json").read_text())["num_queries"] == 4
    # weights are stored in fp16: the loaded model equals the original rounded to fp16
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value.half().float()), name
    a = loaded.reca_adapter(loaded_processor)
    assert a.image_tokens(scenes).shape == (4, 64)


def test_load_model_recognises_a_saved_toy_folder(tmp_path):
    from recakit.registry import load_model

    processor = ToyProcessor.from_captions(["a photo of a red circle"])
    model = ToyUnifiedModel(default_config(len(processor), num_queries=4))
    model.save_pretrained(tmp_path, processor)
    loaded, loaded_processor = load_model(tmp_path, device="cpu")
    assert isinstance(loaded, ToyUnifiedModel) and loaded_processor.vocab == processor.vocab


def test_load_toy_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_toy(tmp_path / "nothing")


def test_processor_words_and_images(scenes):
    processor = ToyProcessor.from_captions(["a photo of a red circle", "two stars"])
    ids = processor.encode("A photo of two red stars")
    assert UNK not in ids and PAD not in ids
    assert processor.decode(ids) == "a photo of two red stars"
    assert processor.encode("a purple hexagon")[-1] == UNK
    pixels = processor.pixel_values(scenes[:1])
    assert pixels.shape == (1, 3, 64, 64) and pixels.min() >= -1 and pixels.max() <= 1
    assert processor.postprocess(pixels)[0].tobytes() == scenes[0].convert("RGB").tobytes()
    with pytest.raises(TypeError):
        processor.pixel_values(["not an image"])


def test_shipped_vq_roundtrip_keeps_the_scene(scenes):
    adapter = ToyAdapter(*load_toy())
    rebuilt = adapter.decode_image_tokens(adapter.image_tokens(scenes))
    assert [image.size for image in rebuilt] == [(64, 64)] * 4
    import numpy as np

    error = np.mean(
        [np.abs(np.asarray(a, float) - np.asarray(b.convert("RGB"), float)).mean() for a, b in zip(rebuilt, scenes)]
    )
    assert error < 3  # mean absolute error on 0..255, over every pixel; the shipped VQ: 1.13


def test_token_cache_gives_the_codes_encoding_gives(scenes):
    # RecA re-reads its images through the cache; stage 2's never-repeating scenes skip it.
    model, processor = load_toy()  # its own model: other tests fill the shared one's cache
    pixels = processor.pixel_values(scenes)
    direct = model.encode_image_tokens(pixels, cache=False)
    assert model._token_cache == {}
    cached = model.encode_image_tokens(pixels)
    assert len(model._token_cache) == len(scenes)
    assert torch.equal(cached, direct) and torch.equal(model.encode_image_tokens(pixels[[2, 0]]), direct[[2, 0]])


def test_shipped_base_describes_images(shipped, scenes):
    from recakit.sampling import caption

    model, processor = shipped
    captions = caption(model, processor, scenes[:2])
    assert all(text.startswith("a photo of") for text in captions)


def test_shipped_understanding_sees_shape_and_colour(shipped):
    """Neither a prompt nor RecA's image condition can tell the generator what to draw unless the
    frozen understanding side encodes it; an earlier base gave every shape the same query states
    (cosine 0.9999) and called every red shape "a red square"."""
    import torch.nn.functional as F

    from recakit.sampling import caption
    from recakit.toy.shapes import COLORS, SHAPES, Scene, ShapeObject

    model, processor = shipped
    red_shapes = [render(Scene([ShapeObject(shape, "red", 0.5, 0.5, 0.35)])) for shape in SHAPES]
    named = [shape in text.split() for shape, text in zip(SHAPES, caption(model, processor, red_shapes))]
    assert sum(named) >= 7  # the shipped base: 8 of 8
    stars = [render(Scene([ShapeObject("star", color, 0.3, 0.7, 0.3)])) for color in COLORS]
    named = [color in text.split() for color, text in zip(COLORS, caption(model, processor, stars))]
    assert sum(named) >= 9  # the shipped base: 10 of 10
    with torch.no_grad():
        states = model.understand_text([processor.encode(f"a photo of a {shape}") for shape in SHAPES])
    states = F.normalize(states.flatten(1), dim=-1)
    others = ~torch.eye(len(SHAPES), dtype=torch.bool)
    assert (states @ states.T)[others].mean() < 0.8  # the shipped base: 0.64


def test_train_base_stages_resume(tmp_path):
    from recakit.toy.train_base import QUICK, shape_check, train_base

    sizes = dict(QUICK, n_scenes=8, vq_steps=1, understanding_steps=1, generator_steps=1)
    model, processor, progress = train_base(tmp_path, sizes=sizes, quick=True)
    assert progress["done"] == ["vq", "understanding", "generator"]
    # the recorded check is that of the understanding side the base was saved with
    saved, saved_processor = load_toy(tmp_path)
    assert progress["shape_check"] == shape_check(saved, saved_processor)
    assert (tmp_path / "model.safetensors").exists()
    # a second run finds every stage done and trains nothing
    lines = (tmp_path / "train_log.jsonl").read_text().splitlines()
    train_base(tmp_path, sizes=sizes, quick=True)
    assert (tmp_path / "train_log.jsonl").read_text().splitlines() == lines


def test_stage_1b_trains_the_understanding_side_around_a_fixed_vision_encoder():
    # Trained by stage 1b's caption and alignment losses too, the encoder forgot the shapes stage
    # 1a had taught it; stage 1b must leave it exactly as it was and still train the rest.
    from recakit.toy.shapes import scene_dataset
    from recakit.toy.train_base import train_understanding

    dataset = scene_dataset(8, seed=0)
    examples = [dataset[i] for i in range(8)]
    processor = ToyProcessor.from_captions([e.dense for e in examples])
    torch.manual_seed(0)
    model = ToyUnifiedModel(default_config(len(processor)))
    for p in model.vision.parameters():
        p.requires_grad_(True)  # as stage 1a leaves it
    vision = {k: v.clone() for k, v in model.vision.state_dict().items()}
    queries = model.queries.detach().clone()
    train_understanding(
        model,
        processor,
        [e.scene for e in examples],
        processor.pixel_values([e.image for e in examples]),
        [e.dense for e in examples],
        steps=2,
        batch_size=4,
        seed=0,
        log=[],
    )
    assert all(torch.equal(vision[k], v) for k, v in model.vision.state_dict().items())
    assert not torch.equal(model.queries, queries)


def test_length_groups_change_no_row_of_stage_1b(shipped):
    # Stage 1b runs captions in sets of similar length to waste less compute on padding; every
    # row's query states and caption loss must come out as one padded call gives them, in order.
    from recakit.toy.shapes import dense_caption, random_scene, sparse_caption
    from recakit.toy.train_base import in_length_groups

    model, processor = shipped
    scenes = [random_scene(seed) for seed in range(10)]
    rng = random.Random(0)
    captions = [processor.encode(dense_caption(s)) for s in scenes]
    captions += [processor.encode(sparse_caption(s, rng, 0.9)) for s in scenes]
    assert len({len(c) for c in captions}) > 3  # lengths differ, so the groups reorder rows
    with torch.no_grad():
        together = model.understand_text(captions)
        grouped = in_length_groups(lambda rows: model.understand_text([captions[i] for i in rows]), captions)
        torch.testing.assert_close(grouped, together, atol=1e-5, rtol=1e-5)
        row_losses = in_length_groups(
            lambda rows: model.describe_loss(together[rows], [captions[i] for i in rows], per_row=True), captions
        )
        for row, caption in enumerate(captions):  # each row's summed loss, back in its own place
            alone = model.describe_loss(together[row : row + 1], [caption]) * (len(caption) + 1)  # + end
            torch.testing.assert_close(row_losses[row], alone, atol=1e-4, rtol=1e-4)
        tokens = sum(len(c) + 1 for c in captions)
        torch.testing.assert_close(row_losses.sum() / tokens, model.describe_loss(together, captions))


def test_shape_check_tells_the_shipped_stage_1_from_an_untrained_one():
    # A from-scratch stage 1 whose image states kept colour but lost shape (0.19 here) made a
    # base RecA did not help; the check after stage 1 must tell such a stage 1 from a good one.
    from recakit.toy.train_base import SHAPE_CHECK_FLOOR, shape_check

    model, processor = load_toy()
    shipped = shape_check(model, processor)
    assert shipped["shape"] >= 0.9 and shipped["colour"] >= 0.9
    torch.manual_seed(0)
    untrained = ToyUnifiedModel(default_config(len(processor))).eval()
    assert shape_check(untrained, processor)["shape"] < SHAPE_CHECK_FLOOR


def test_a_stage_1_that_loses_shape_is_trained_again_from_another_start(tmp_path, monkeypatch):
    from recakit.toy import train_base as toy_train

    verdicts = iter([0.1, 0.9])  # the first stage 1 loses shape, the second keeps it
    monkeypatch.setattr(toy_train, "shape_check", lambda model, processor: {"shape": next(verdicts), "colour": 1.0})
    trained = []  # (seed, the queries it ended with) for every stage 1b run
    original = toy_train.train_understanding

    def recording(model, *args, **kwargs):
        original(model, *args, **kwargs)
        trained.append((args[-2], model.queries.detach().clone()))

    monkeypatch.setattr(toy_train, "train_understanding", recording)

    sizes = dict(toy_train.QUICK, n_scenes=8, vq_steps=1, understanding_steps=1, generator_steps=1)
    model, _, progress = toy_train.train_base(tmp_path, sizes=sizes, stage1_attempts=3)
    assert [seed for seed, _ in trained] == [0, toy_train.RETRY_SEED_STRIDE]
    assert not torch.equal(trained[0][1], trained[1][1])  # a new random start, not more training
    assert torch.equal(model.queries, trained[1][1])  # the base keeps the stage 1 that passed
    assert [check["shape"] for check in progress["shape_checks"]] == [0.1, 0.9]
    saved = json.loads((tmp_path / "progress.json").read_text())
    assert saved["shape_check"]["shape"] == 0.9 and saved["done"][-1] == "generator"


def test_an_interrupted_retry_resumes_at_the_next_attempt(tmp_path, monkeypatch):
    from recakit.toy import train_base as toy_train

    monkeypatch.setattr(toy_train, "shape_check", lambda model, processor: {"shape": 0.1, "colour": 1.0})
    seeds = []
    original = toy_train.train_understanding

    def interrupted_on_the_second_attempt(model, *args, **kwargs):
        seeds.append(args[-2])
        if len(seeds) == 2:
            raise KeyboardInterrupt
        original(model, *args, **kwargs)

    monkeypatch.setattr(toy_train, "train_understanding", interrupted_on_the_second_attempt)
    sizes = dict(toy_train.QUICK, n_scenes=8, vq_steps=1, understanding_steps=1, generator_steps=1)
    with pytest.raises(KeyboardInterrupt):
        toy_train.train_base(tmp_path, sizes=sizes, stage1_attempts=3)
    assert len(json.loads((tmp_path / "progress.json").read_text())["shape_checks"]) == 1

    seeds.clear()
    monkeypatch.setattr(toy_train, "train_understanding", lambda model, *args, **kwargs: seeds.append(args[-2]))
    progress = toy_train.train_base(tmp_path, sizes=sizes, stage1_attempts=3)[2]
    stride = toy_train.RETRY_SEED_STRIDE
    assert seeds == [stride, 2 * stride]  # attempts 2 and 3; the first is not trained again
    assert len(progress["shape_checks"]) == 3 and progress["done"][-1] == "generator"


@pytest.mark.parametrize("stage", ["stage 1: understanding", "stage 2: generator"])
def test_a_stage_interrupted_midway_resumes_from_its_last_checkpoint(tmp_path, monkeypatch, stage):
    # An 18-minute command must not lose a stage's work to Ctrl-C: the resumed run trains only
    # the steps after the interruption, and stage 1b keeps the encoder stage 1a trained.
    from recakit.toy import train_base as toy_train

    monkeypatch.setattr(toy_train, "CHECKPOINT_EVERY", 2)
    sizes = dict(toy_train.QUICK, n_scenes=8, vision_steps=3, understanding_steps=5, generator_steps=5)
    trained, encoder_after_1a = [], []
    original_train = toy_train.train

    def watched(*args, interrupt_at=None, **kwargs):
        def callback(record):
            trained.append((kwargs["description"], record["step"]))
            if kwargs["description"] == interrupt_at and record["step"] == 3:
                raise KeyboardInterrupt

        history = original_train(*args, callback=callback, **kwargs)
        if kwargs["description"].startswith("stage 1a"):
            encoder_after_1a.append({k: v.clone() for k, v in args[0].vision.state_dict().items()})
        return history

    monkeypatch.setattr(toy_train, "train", lambda *a, **k: watched(*a, interrupt_at=stage, **k))
    with pytest.raises(KeyboardInterrupt):
        toy_train.train_base(tmp_path, sizes=sizes, quick=True)
    trained.clear()
    monkeypatch.setattr(toy_train, "train", watched)
    toy_train.train_base(tmp_path, sizes=sizes, quick=True)

    in_stage_1 = stage.startswith("stage 1")
    after = [("stage 2: generator", step) for step in range(1, 6)] if in_stage_1 else []
    assert trained == [(stage, 4), (stage, 5)] + after
    if in_stage_1:  # stage 1a's checkpoint gave the resumed run the encoder it had trained
        first, resumed = encoder_after_1a
        assert all(torch.equal(first[k], resumed[k]) for k in first)
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["stage"] == stage] == [1, 2, 3, 4, 5]
    assert not (tmp_path / "checkpoints").exists()


def test_train_base_refuses_a_folder_trained_with_other_sizes(tmp_path):
    from recakit.toy.train_base import QUICK, train_base

    train_base(tmp_path, sizes=dict(QUICK, n_scenes=8), quick=True)
    with pytest.raises(ValueError, match="another folder"):
        train_base(tmp_path, sizes=dict(QUICK, n_scenes=8, generator_steps=4), quick=True)


def test_train_base_command_reports_the_shape_check(tmp_path, capsys):
    from recakit.commands.main import main

    assert main(["toy", "train-base", "--out", str(tmp_path), "--quick"]) == 0
    assert "lone object's shape for" in capsys.readouterr().out


def test_generator_stage_draws_unseen_scenes_every_step():
    # Cycling a fixed set of scenes, the stage-2 generator memorised them; every example of the
    # stream must be drawn once, none twice.
    from conftest import RecordedReads

    from recakit.toy.shapes import scene_dataset
    from recakit.toy.train_base import train_generator

    model, processor = load_toy()
    stream = RecordedReads(scene_dataset(12, seed=3))
    before = model.generator.lm_head.pattern.weight.clone()
    log = []
    train_generator(model, processor, stream, steps=3, batch_size=4, seed=0, log=log)
    assert sorted(stream.read) == list(range(12))
    assert len(log) == 3 and all(math.isfinite(record["loss"]) for record in log)
    assert not torch.equal(model.generator.lm_head.pattern.weight, before)
    with pytest.raises(ValueError, match="once"):  # a stream too short would be cycled
        train_generator(model, processor, scene_dataset(11, seed=3), steps=3, batch_size=4, seed=0, log=log)


def test_factored_head_scores_every_code_as_pattern_plus_colour():
    from recakit.toy.model import FactoredCodeEmbedding, FactoredCodeHead

    torch.manual_seed(0)
    head, embedding = FactoredCodeHead(16, num_masks=5, num_colors=3), FactoredCodeEmbedding(5, 3, 16)
    hidden = torch.randn(2, 4, 16)
    logits = head(hidden)
    assert logits.shape == (2, 4, 15)
    pattern, colour = head.pattern(hidden), head.color(hidden)
    # code = pattern * num_colors + colour, the PatchTokenizer's order
    for code in range(3, 15):
        assert torch.allclose(logits[..., code], pattern[..., code // 3] + colour[..., code % 3])
    # the empty pattern is one colourless code; its other colours can never be drawn
    assert torch.allclose(logits[..., 0], pattern[..., 0])
    assert (logits.softmax(-1)[..., 1:3] == 0).all()
    codes = torch.tensor([[0, 4, 14]])
    expected = embedding.pattern(torch.tensor([[0, 1, 4]])) + embedding.color(torch.tensor([[0, 1, 2]]))
    expected[0, 0] = embedding.pattern.weight[0]
    assert torch.allclose(embedding(codes), expected)


def test_factored_loss_equals_cross_entropy_over_every_code():
    """The head's loss from its pattern and colour logits alone is the cross-entropy over the
    full patterns x colours table, in value and in gradient."""
    from recakit.toy.model import FactoredCodeHead, code_loss

    torch.manual_seed(0)
    head = FactoredCodeHead(16, num_masks=7, num_colors=4)
    hidden = (3 * torch.randn(3, 5, 16)).requires_grad_()
    patterns, colours = torch.randint(0, 7, (3, 5)), torch.randint(0, 4, (3, 5))
    colours[patterns == 0] = 0  # the empty pattern has one code
    targets = patterns * 4 + colours
    assert (targets == 0).any() and (targets > 0).any()

    full = torch.nn.functional.cross_entropy(head(hidden).flatten(0, 1), targets.flatten(), reduction="none")
    factored = code_loss(head, hidden, targets)
    assert factored.shape == targets.shape
    assert torch.allclose(factored.flatten(), full, atol=1e-5, rtol=1e-5)
    (full_grad,) = torch.autograd.grad(full.sum(), hidden)
    (factored_grad,) = torch.autograd.grad(factored.sum(), hidden)
    assert torch.allclose(factored_grad, full_grad, atol=1e-5, rtol=1e-4)
    # a code the head rules out, (empty, colour 2), costs as much as the full table says
    assert code_loss(head, hidden[:1, :1], torch.tensor([[2]])).item() > 1e30


def test_toy_generation_loss_takes_the_factored_shortcut(shipped, scenes):
    """reca_loss and the training loops reach the head through adapter.image_token_loss: the
    toy's shortcut gives what the adapter's default (full logits) gives."""
    from recakit.adapter import UnifiedAdapter
    from recakit.objective import image_generation_loss

    model, processor = shipped
    adapter = model.reca_adapter(processor)
    with torch.no_grad():
        targets = adapter.image_tokens(scenes[:2])
        hidden = torch.randn(2, targets.shape[1], model.generator.config.hidden_size)
        assert torch.allclose(
            adapter.image_token_loss(hidden, targets),
            UnifiedAdapter.image_token_loss(adapter, hidden, targets),
            atol=1e-5,
        )
        prefix, mask = adapter.prefix_from_embeddings(adapter.understanding_embeddings(scenes[:2]))
        reference = UnifiedAdapter.image_token_loss
        loss = image_generation_loss(adapter, prefix, mask, targets)
        adapter.image_token_loss = lambda h, t: reference(adapter, h, t)
        assert loss.item() == pytest.approx(image_generation_loss(adapter, prefix, mask, targets).item(), abs=1e-5)
    # a 1024-pattern head has 12 288 codes, past the size where full logits are chunked: the
    # shortcut is still taken, since it never builds them
    from recakit.objective import CHUNKED_LOSS_MIN_CODES, use_chunked_loss

    large = model.reca_adapter(processor)
    large.codebook_size = CHUNKED_LOSS_MIN_CODES * 3
    assert not use_chunked_loss(large)


def test_background_does_not_lend_objects_its_colour():
    """Four patches in five are background. Scored as empty + colour 0, they trained colour 0 up
    for every pattern, and objects came out in colour 0 (brown) four times as often as in their
    own colour; with a colourless empty code the head learns the true split."""
    from recakit.toy.model import FactoredCodeHead

    torch.manual_seed(0)
    head = FactoredCodeHead(8, num_masks=4, num_colors=3)
    hidden = torch.randn(1, 8).expand(50, 8)
    targets = torch.tensor([0] * 40 + [1 * 3 + 2] * 10)  # background, and (pattern 1, colour 2)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(200):
        loss = torch.nn.functional.cross_entropy(head(hidden), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    probabilities = head(hidden[:1]).softmax(-1).view(4, 3).detach()
    assert probabilities[0, 0] == pytest.approx(0.8, abs=0.02)
    assert probabilities[1, 2] == pytest.approx(0.2, abs=0.02)
    assert probabilities[1, 0] < 0.01


def test_patch_tokenizer_gives_empty_patches_one_code(shipped, scenes):
    from recakit.toy.model import EMPTY_PATTERN

    model, processor = shipped
    pixels = processor.pixel_values(scenes)
    # faint specks: not background to the colour rule, yet nearest to the empty pattern
    specks = (torch.rand(pixels.shape, generator=torch.Generator().manual_seed(0)) < 0.01) * 0.5
    codes = model.vq.encode(pixels + specks)
    empty = codes // model.vq.num_colors == EMPTY_PATTERN
    assert empty.any() and (~empty).any()
    assert (codes[empty] == 0).all()


def test_factored_generator_trains_and_round_trips(tmp_path, scenes):
    processor = ToyProcessor.from_captions(["a photo of a red circle"])
    config = default_config(len(processor), num_queries=4)
    config["generator_head"] = "factored"
    torch.manual_seed(0)
    model = ToyUnifiedModel(config).eval()
    adapter = model.reca_adapter(processor)
    states = adapter.understanding_embeddings(scenes[:2])
    tokens = adapter.image_tokens(scenes[:2])
    loss = model.generation_loss(model.condition_prefix(states), tokens)
    loss.backward()
    assert model.generator.lm_head.color.weight.grad is not None
    model.save_pretrained(tmp_path, processor)
    loaded, _ = load_toy(tmp_path)
    assert isinstance(loaded.generator.lm_head, type(model.generator.lm_head))
    # weights are stored in fp16: the loaded model computes what the original does with its
    # weights rounded to fp16 (the unrounded loss is 1e-4 away)
    model.load_state_dict({name: value.half().float() for name, value in model.state_dict().items()})
    rounded = model.generation_loss(model.condition_prefix(states), tokens)
    torch.testing.assert_close(
        loaded.generation_loss(loaded.condition_prefix(states), tokens), rounded, rtol=0, atol=1e-6
    )
