"""Details of the published RecA recipe that reca_loss follows: square training images, an
instruction dropout that keeps the image, and Janus's own system prompt for image-to-text."""

import copy

import torch
from PIL import Image

from recakit.images import center_crop_square
from recakit.instructions import DROPPED_INSTRUCTION, RECONSTRUCTION_INSTRUCTIONS
from recakit.models.janus import UNDERSTANDING_SYSTEM_PROMPT, JanusAdapter, tiny_janus
from recakit.objective import reca_loss
from recakit.registry import adapter_for
from recakit.toy.model import ToyAdapter, load_toy
from recakit.toy.shapes import random_scene, render


def widen(square: Image.Image, band: int, colors=((255, 0, 255), (0, 255, 0))) -> Image.Image:
    """`square` with a loud band of `band` pixels on its left and right: its centre crop is `square`."""
    side = square.width
    wide = Image.new("RGB", (side + 2 * band, side), colors[0])
    wide.paste(Image.new("RGB", (band, side), colors[1]), (side + band, 0))
    wide.paste(square, (band, 0))
    return wide


def tall(square: Image.Image, band: int) -> Image.Image:
    return widen(square.transpose(Image.Transpose.TRANSPOSE), band).transpose(Image.Transpose.TRANSPOSE)


def test_center_crop_square():
    square = Image.new("RGB", (6, 6), (1, 2, 3))
    assert center_crop_square(square) is square
    assert center_crop_square(widen(square, 3)).tobytes() == square.tobytes()
    assert center_crop_square(tall(square, 2)).tobytes() == square.tobytes()
    odd = Image.new("RGB", (7, 4))
    assert center_crop_square(odd).size == (4, 4)


def test_janus_reca_loss_of_a_non_square_image_is_that_of_its_centre_crop(janus_tiny, square_images):
    model, processor = janus_tiny
    wide = [widen(square_images[0], 8), tall(square_images[1], 4)]
    seeds = [3, 4]
    pairs = (wide, ["a red square", "a blue square"])
    with torch.no_grad():
        cropped = reca_loss(
            model,
            processor,
            square_images[:2],
            instruction_dropout=0.0,
            sample_seeds=seeds,
            t2i=(square_images[:2], pairs[1]),
            i2t=(square_images[:2], pairs[1]),
        )
        uncropped = reca_loss(model, processor, wide, instruction_dropout=0.0, sample_seeds=seeds, t2i=pairs, i2t=pairs)
    assert uncropped.item() == cropped.item()


def test_toy_reca_loss_of_a_non_square_image_is_that_of_its_centre_crop():
    model, processor = load_toy()
    scenes = [render(random_scene(seed)) for seed in range(2)]
    wide = [widen(scenes[0], 20), tall(scenes[1], 12)]
    with torch.no_grad():
        cropped = reca_loss(model, processor, scenes, instruction_dropout=0.0, sample_seeds=[0, 1])
        uncropped = reca_loss(model, processor, wide, instruction_dropout=0.0, sample_seeds=[0, 1])
    assert uncropped.item() == cropped.item()


def test_full_instruction_dropout_still_conditions_on_the_understanding_encoder(square_images):
    model, processor = tiny_janus(seed=1)
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in perturbed.model.vision_model.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
        losses = [
            reca_loss(m, processor, square_images, instruction_dropout=1.0, sample_seeds=[0, 1, 2, 3]).item()
            for m in (model, perturbed)
        ]
    assert abs(losses[0] - losses[1]) > 1e-4, losses


class RecordingJanus(JanusAdapter):
    def prefix_from_embeddings(self, embeddings, drop=None, instructions=None):
        self.seen = ([bool(flag) for flag in drop], list(instructions))
        return super().prefix_from_embeddings(embeddings, drop, instructions)


class RecordingToy(ToyAdapter):
    def prefix_from_embeddings(self, embeddings, drop=None, instructions=None):
        self.seen = [bool(flag) for flag in drop]
        return super().prefix_from_embeddings(embeddings, drop, instructions)


def test_dropout_blanks_the_janus_instruction_and_drops_the_toy_condition(janus_tiny, square_images):
    janus = RecordingJanus(*janus_tiny)
    with torch.no_grad():
        reca_loss(janus, None, square_images, instruction_dropout=1.0)
    drops, instructions = janus.seen
    assert drops == [False] * 4 and instructions == [DROPPED_INSTRUCTION] * 4
    # the prefix of a blanked row still holds every understanding embedding
    embeddings = janus.understanding_embeddings(square_images[:1])
    ids = janus._with_image(janus._chat_ids(DROPPED_INSTRUCTION, with_image=True))
    assert ids.count(janus.image_token_id) == embeddings.shape[1]

    toy = RecordingToy(*load_toy())
    scenes = [render(random_scene(seed)) for seed in range(3)]
    with torch.no_grad():
        reca_loss(toy, None, scenes, instruction_dropout=1.0)
    assert toy.seen == [True] * 3  # the toy has no instruction: a dropped row is unconditional


def test_image_to_text_opens_with_the_official_understanding_system_prompt(janus_tiny, square_images):
    from transformers.models.janus.processing_janus import DEFAULT_SYSTEM_PROMPT

    assert UNDERSTANDING_SYSTEM_PROMPT + "\n\n" == DEFAULT_SYSTEM_PROMPT  # transformers' copy of the official one
    adapter = JanusAdapter(*janus_tiny)
    tokenizer = adapter.tokenizer
    caption_ids, _ = adapter._caption_prefix(square_images[:1])
    text = tokenizer.decode([i for i in caption_ids if i != adapter.image_token_id])
    assert text.startswith(tokenizer.bos_token + UNDERSTANDING_SYSTEM_PROMPT + "\n\n<|User|>:")
    assert caption_ids.count(tokenizer.bos_token_id) == 1
    # generation prompts (RecA and text-to-image) carry no system prompt, as in official Janus
    reca_ids = adapter._chat_ids(RECONSTRUCTION_INSTRUCTIONS[0], with_image=True)
    assert UNDERSTANDING_SYSTEM_PROMPT not in tokenizer.decode(reca_ids)


def test_text_to_image_dropout_leaves_the_unconditional_prefix(janus_tiny, square_images):
    # text-to-image rows keep the fully padded prefix when dropped: the one guidance reads at sampling
    model, processor = janus_tiny

    def loss(prompts, dropout):
        with torch.no_grad():
            return reca_loss(
                model,
                processor,
                square_images[:2],
                instruction_dropout=dropout,
                sample_seeds=[5, 6],
                t2i=(square_images[2:4], prompts),
            ).item()

    # Janus's unconditional row is as long as the prompt's chat (official Janus builds it so): same lengths
    red, other = ["red square", "red circle"], ["red star", "red square"]
    adapter = adapter_for(model, processor)
    lengths = [adapter.prefix_from_text(prompts)[1].sum(dim=1).tolist() for prompts in (red, other)]
    assert lengths[0] == lengths[1]
    assert loss(red, 1.0) == loss(other, 1.0)
    assert abs(loss(red, 0.0) - loss(other, 0.0)) > 1e-5
