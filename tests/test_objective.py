"""recakit.objective on the tiny Janus: the RecA loss, its randomness, mixing, and the freeze policy."""

import math

import pytest
import torch
from conftest import cross_entropy_by_hand, full_forward_image_logits

from recakit import objective
from recakit.models.janus import JanusAdapter, tiny_janus
from recakit.objective import (
    DROPPED_INSTRUCTION,
    RECONSTRUCTION_INSTRUCTIONS,
    _rngs,
    freeze_for_reca,
    reca_choices,
    reca_loss,
    sample_choices,
)


def test_instructions_are_many_and_distinct():
    assert len(RECONSTRUCTION_INSTRUCTIONS) >= 200
    assert len(set(RECONSTRUCTION_INSTRUCTIONS)) == len(RECONSTRUCTION_INSTRUCTIONS)
    normalised = {" ".join(text.lower().split()) for text in RECONSTRUCTION_INSTRUCTIONS}
    assert len(normalised) == len(RECONSTRUCTION_INSTRUCTIONS)
    assert all(text.strip() and text == " ".join(text.split()) for text in RECONSTRUCTION_INSTRUCTIONS)


def test_dropout_draws_are_those_the_toy_numbers_were_measured_with():
    # seeds dropped at rate 0.1 when the toy's reproduction numbers were measured; drawing the
    # instruction first must leave these draws alone
    measured = [
        0,
        12,
        17,
        27,
        30,
        40,
        42,
        44,
        59,
        60,
        74,
        82,
        88,
        90,
        91,
        97,
        103,
        110,
        116,
        117,
        125,
        131,
        142,
        152,
        156,
        170,
        176,
        185,
        189,
        203,
        205,
        210,
        214,
        223,
        243,
        248,
        253,
        262,
        283,
        294,
        299,
    ]
    rngs = _rngs(300, list(range(300)), "reca")
    assert [seed for seed, rng in enumerate(rngs) if sample_choices(rng, 0.1)[1]] == measured


class RecordingAdapter(JanusAdapter):
    """The real Janus adapter, remembering what reca_loss asked of it."""

    def __init__(self, model, processor):
        super().__init__(model, processor)
        self.embeddings, self.drops, self.instructions = [], [], []

    def understanding_embeddings(self, images, resolution=None):
        embeddings = super().understanding_embeddings(images, resolution)
        self.embeddings.append(embeddings)
        return embeddings

    def reca_views(self, images, resolution=None):
        targets, embeddings = super().reca_views(images, resolution)
        self.embeddings.append(embeddings)
        return targets, embeddings

    def prefix_from_embeddings(self, embeddings, drop=None, instructions=None):
        self.drops += [bool(flag) for flag in drop]
        self.instructions += list(instructions)
        return super().prefix_from_embeddings(embeddings, drop, instructions)


def test_loss_is_finite_and_conditions_on_every_understanding_embedding(janus_tiny, square_images):
    model, processor = janus_tiny
    recorder = RecordingAdapter(model, processor)
    loss = reca_loss(recorder, None, square_images[:2], sample_seeds=[0, 1])
    assert loss.ndim == 0 and torch.isfinite(loss)
    vision = model.config.vision_config
    expected = (vision.image_size // vision.patch_size) ** 2
    [embeddings] = recorder.embeddings
    assert embeddings.shape == (2, expected, model.config.text_config.hidden_size)


def reference_reca_loss(adapter, images, instructions):
    """The RecA loss computed the long way, one image at a time (so no padding): the adapter's
    prefix for the image and its instruction, one full forward over [prefix, codes[:-1]], the
    full logits and a hand-written cross-entropy; then the mean over images."""
    losses = []
    with torch.no_grad():
        for image, instruction in zip(images, instructions):
            codes = adapter.image_tokens([image])
            embeddings = adapter.understanding_embeddings([image])
            prefix, mask = adapter.prefix_from_embeddings(embeddings, torch.tensor([False]), [instruction])
            logits = full_forward_image_logits(adapter, prefix, mask, codes)
            losses.append(cross_entropy_by_hand(logits[0], codes[0]))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("path", ["plain", "chunked"])
def test_loss_is_the_teacher_forced_cross_entropy_of_the_image_codes(janus_sensitive, square_images, monkeypatch, path):
    """Image code t is predicted from the prefix and codes 0..t-1 only, in the plain and in the
    memory-light chunked loss. A random model shown code t itself scores almost the same (2e-3
    apart here, 4e-5 without the scaled head), so only a tight comparison catches that leak; the
    two computations agree to float32 rounding."""
    model, processor = janus_sensitive
    chunk_calls = []
    if path == "chunked":
        original = objective.chunked_image_loss
        monkeypatch.setattr(objective, "CHUNKED_LOSS_MIN_CODES", 2)
        monkeypatch.setattr(
            objective, "chunked_image_loss", lambda *a, **k: chunk_calls.append(1) or original(*a, chunk_tokens=5)
        )
    recorder = RecordingAdapter(model, processor)
    images = square_images[:3]
    loss = reca_loss(recorder, None, images, instruction_dropout=0.0, sample_seeds=[0, 1, 2])
    assert bool(chunk_calls) == (path == "chunked")
    # the drawn instructions differ in length, so the batched loss had left-padded rows
    lengths = {len(processor.tokenizer(text)["input_ids"]) for text in recorder.instructions}
    assert len(lengths) > 1
    expected = reference_reca_loss(JanusAdapter(model, processor), images, recorder.instructions)
    torch.testing.assert_close(loss.detach(), expected, rtol=0, atol=1e-5)


def test_instruction_dropout_rate_and_seeded_choices(janus_tiny, square_images):
    model, processor = janus_tiny
    recorder = RecordingAdapter(model, processor)
    rate, batches, per_batch = 0.3, 8, 40
    with torch.no_grad():
        for batch in range(batches):
            seeds = list(range(batch * per_batch, (batch + 1) * per_batch))
            images = [square_images[seed % 4] for seed in seeds]
            reca_loss(recorder, None, images, instruction_dropout=rate, sample_seeds=seeds)
    n = batches * per_batch
    drops = sum(instruction == DROPPED_INSTRUCTION for instruction in recorder.instructions)
    tolerance = 4 * math.sqrt(n * rate * (1 - rate))
    assert abs(drops - n * rate) < tolerance, (drops, n * rate)
    assert len(set(recorder.instructions)) > 30  # instructions really are drawn, not fixed

    # a sample's choices depend on its own seed only, not on its batch
    first_drops, first_instructions = recorder.drops[:per_batch], recorder.instructions[:per_batch]
    recorder.drops, recorder.instructions = [], []
    with torch.no_grad():
        reca_loss(
            recorder,
            None,
            [square_images[s % 4] for s in range(5, 15)],
            instruction_dropout=rate,
            sample_seeds=list(range(5, 15)),
        )
    assert recorder.drops == first_drops[5:15] and recorder.instructions == first_instructions[5:15]


def test_reca_choices_are_the_draws_reca_loss_makes(janus_tiny, square_images):
    # notebook 01 builds the RecA prefix by hand from reca_choices and compares with reca_loss
    model, processor = janus_tiny
    recorder = RecordingAdapter(model, processor)
    seeds = [0, 2, 3, 7]
    with torch.no_grad():
        reca_loss(recorder, None, square_images, instruction_dropout=0.5, sample_seeds=seeds)
    choices = reca_choices(len(seeds), seeds, instruction_dropout=0.5)
    # Janus keeps the image of a dropped row and empties its instruction
    assert [
        DROPPED_INSTRUCTION if dropped else instruction for instruction, dropped in choices
    ] == recorder.instructions
    assert recorder.drops == [False] * len(seeds)
    assert 0 < sum(dropped for _, dropped in choices) < len(seeds)  # both kinds of row are checked
    kept = [instruction for instruction in recorder.instructions if instruction != DROPPED_INSTRUCTION]
    assert len(set(kept)) > 1  # the seeds really draw different instructions


def test_no_dropout_and_full_dropout(janus_tiny, square_images):
    model, processor = janus_tiny
    recorder = RecordingAdapter(model, processor)
    with torch.no_grad():
        reca_loss(recorder, None, square_images, instruction_dropout=0.0)
        reca_loss(recorder, None, square_images, instruction_dropout=1.0)
    # a dropped Janus row keeps its image and loses only the instruction
    assert recorder.drops == [False] * 8
    assert DROPPED_INSTRUCTION not in recorder.instructions[:4]
    assert recorder.instructions[4:] == [DROPPED_INSTRUCTION] * 4
    with pytest.raises(ValueError, match="probability"):
        reca_loss(model, processor, square_images, instruction_dropout=1.5)


def test_same_seeds_same_loss(janus_tiny, square_images):
    model, processor = janus_tiny
    with torch.no_grad():
        first = reca_loss(model, processor, square_images, instruction_dropout=0.5, sample_seeds=[3, 4, 5, 6])
        again = reca_loss(model, processor, square_images, instruction_dropout=0.5, sample_seeds=[3, 4, 5, 6])
        other = [
            reca_loss(model, processor, square_images, instruction_dropout=0.5, sample_seeds=[s, s + 1, s + 2, s + 3])
            for s in (10, 20, 30)
        ]
    assert first.item() == again.item()
    assert any(loss.item() != first.item() for loss in other)
    with pytest.raises(ValueError, match="seeds"):
        reca_loss(model, processor, square_images, sample_seeds=[1, 2])


def test_mixing_changes_the_loss_and_weights_scale_it(janus_tiny, square_images):
    model, processor = janus_tiny
    seeds = [0, 1]
    t2i = (square_images[2:], ["a yellow square", "a black square"])
    i2t = (square_images[:2], ["a red square", "a blue square"])
    with torch.no_grad():
        alone = reca_loss(model, processor, square_images[:2], sample_seeds=seeds).item()
        for pair_name, pair in (("t2i", t2i), ("i2t", i2t)):
            weighted = {
                w: reca_loss(
                    model,
                    processor,
                    square_images[:2],
                    sample_seeds=seeds,
                    **{pair_name: pair, f"{pair_name}_weight": w},
                ).item()
                for w in (0.0, 1.0, 2.5)
            }
            assert weighted[0.0] == pytest.approx(alone, abs=1e-6)
            assert weighted[1.0] > alone + 0.5  # an untrained model's extra loss is large
            assert weighted[2.5] - alone == pytest.approx(2.5 * (weighted[1.0] - alone), rel=1e-4)
    with pytest.raises(ValueError, match="t2i"):
        reca_loss(model, processor, square_images[:2], t2i=(square_images[:2], ["only one"]))


def test_odd_image_modes_are_accepted(janus_tiny, odd_mode_images):
    model, processor = janus_tiny
    with torch.no_grad():
        loss = reca_loss(model, processor, list(odd_mode_images.values()), sample_seeds=list(range(6)))
    assert torch.isfinite(loss)


def test_freeze_policy_gradients_and_eval_mode(square_images):
    model, processor = tiny_janus(seed=1)
    counts = freeze_for_reca(model)
    assert counts["trainable"] > 0 and counts["frozen"] > 0
    assert counts["trainable"] + counts["frozen"] == sum(p.numel() for p in model.parameters())
    model.train()
    assert not model.model.vqmodel.training and not model.model.vision_model.training
    assert model.model.language_model.training
    reca_loss(model, processor, square_images[:2], sample_seeds=[0, 1]).backward()
    frozen = [model.model.vqmodel, model.model.vision_model, model.model.aligner]
    assert all(p.grad is None for module in frozen for p in module.parameters())
    trained = [
        model.model.language_model,
        model.model.generation_embeddings,
        model.model.generation_aligner,
        model.model.generation_head,
    ]
    assert all(p.grad is not None for module in trained for p in module.parameters())

    freeze_for_reca(model, train_aligner=True)
    assert all(p.requires_grad for p in model.model.aligner.parameters())
    assert not any(p.requires_grad for p in model.model.vision_model.parameters())
    model.zero_grad(set_to_none=True)
    reca_loss(model, processor, square_images[:2], instruction_dropout=0.0, sample_seeds=[0, 1]).backward()
    # the condition now carries gradient back through the aligner, and still stops there
    assert all(p.grad is not None for p in model.model.aligner.parameters())
    assert all(p.grad is None for p in model.model.vision_model.parameters())


def test_overfitting_two_images_lowers_the_loss(square_images):
    torch.manual_seed(0)
    model, processor = tiny_janus(seed=2)
    freeze_for_reca(model)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    images = square_images[:2]
    losses = []
    for _ in range(50):
        loss = reca_loss(model, processor, images, instruction_dropout=0.0, sample_seeds=[0, 1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses[::10]


def test_a_batch_split_in_two_gives_the_same_loss(janus_tiny, square_images):
    """What data-parallel training relies on: with per-sample seeds, the mean of the halves'
    losses is the whole batch's loss."""
    model, processor = janus_tiny
    seeds = [40, 41, 42, 43]
    with torch.no_grad():
        whole = reca_loss(model, processor, square_images, instruction_dropout=0.5, sample_seeds=seeds)
        halves = [
            reca_loss(
                model, processor, square_images[i : i + 2], instruction_dropout=0.5, sample_seeds=seeds[i : i + 2]
            )
            for i in (0, 2)
        ]
    assert whole.item() == pytest.approx((halves[0].item() + halves[1].item()) / 2, abs=1e-5)


def test_resolution_is_a_real_bottleneck(janus_tiny, square_images):
    model, processor = janus_tiny
    adapter = JanusAdapter(model, processor)
    with torch.no_grad():
        native = adapter.understanding_embeddings(square_images)
        coarse = adapter.understanding_embeddings(square_images, resolution=8)
        loss = reca_loss(model, processor, square_images, resolution=8, sample_seeds=[0, 1, 2, 3])
    assert coarse.shape == native.shape  # same number of condition tokens...
    assert not torch.allclose(coarse, native, atol=1e-4)  # ...holding less of the image
    assert torch.isfinite(loss)


def test_frozen_parts_stay_in_eval_after_a_deep_copy():
    import copy

    model, _ = tiny_janus(seed=1)
    freeze_for_reca(model)
    twin = copy.deepcopy(model)
    twin.train()
    assert not twin.model.vqmodel.training and twin.model.language_model.training
    assert not model.model.language_model.training  # switching the copy left the original alone
