"""recakit.sampling on the tiny Janus: seeds, batch independence, guidance, reconstruct, caption."""

import pytest
import torch
from conftest import full_forward_image_logits
from PIL import Image

from recakit.instructions import RECONSTRUCTION_INSTRUCTIONS
from recakit.registry import adapter_for
from recakit.sampling import caption, generate_image_tokens, generate_images, reconstruct

PROMPTS = ["a red circle", "two blue squares", "a photo of a dog", "a yellow star above a green cross"]
QUIET = {"progress": False}
SAMPLERS = [pytest.param(False, id="plain"), pytest.param("eager", id="fast")]


def image_bytes(images):
    return [image.tobytes() for image in images]


def teacher_forced_logits(adapter, prompt, drop, tokens):
    """Image-token logits of one prompt given all earlier tokens, in one full forward (no cache)."""
    prefix, mask = adapter.prefix_from_text([prompt], torch.tensor([drop]))
    return full_forward_image_logits(adapter, prefix, mask, tokens[None])[0]


def greedy_codes_by_full_forwards(adapter, prefix, mask):
    """Greedy decoding the slow way: each code is the argmax of a full forward (no cache) over the
    prefix and every code so far."""
    codes = torch.zeros((prefix.shape[0], adapter.num_image_tokens), dtype=torch.long)
    for step in range(adapter.num_image_tokens):
        codes[:, step] = full_forward_image_logits(adapter, prefix, mask, codes[:, : step + 1])[:, step].argmax(-1)
    return codes


def test_same_seed_same_bytes_other_seed_other_image(janus_tiny):
    model, processor = janus_tiny
    first = generate_images(model, processor, PROMPTS[:2], seed=7, cfg_scale=3.0, **QUIET)
    again = generate_images(model, processor, PROMPTS[:2], seed=7, cfg_scale=3.0, **QUIET)
    other = generate_images(model, processor, PROMPTS[:2], seed=8, cfg_scale=3.0, **QUIET)
    assert all(isinstance(image, Image.Image) and image.mode == "RGB" for image in first)
    assert first[0].size == (model.config.vision_config.image_size,) * 2
    assert image_bytes(first) == image_bytes(again)
    assert image_bytes(first) != image_bytes(other)
    # seed=7 means image i gets 7 + i: the second image of the seed-7 run is the first of seed 8
    assert image_bytes(first[1:]) == image_bytes(
        generate_images(model, processor, PROMPTS[1:2], seed=8, cfg_scale=3.0, **QUIET)
    )


def test_an_image_does_not_depend_on_its_batch(janus_tiny):
    model, processor = janus_tiny
    seeds = [11, 12, 13, 14]
    together = generate_image_tokens(model, processor, PROMPTS, seed=seeds, cfg_scale=4.0, batch_size=4, **QUIET)
    for i, prompt in enumerate(PROMPTS):
        alone = generate_image_tokens(model, processor, [prompt], seed=[seeds[i]], cfg_scale=4.0, **QUIET)
        assert torch.equal(alone[0], together[i]), i
    pairs = generate_image_tokens(model, processor, PROMPTS, seed=seeds, cfg_scale=4.0, batch_size=3, **QUIET)
    assert torch.equal(pairs, together)
    images_together = generate_images(model, processor, PROMPTS, seed=seeds, cfg_scale=4.0, batch_size=4, **QUIET)
    image_alone = generate_images(model, processor, PROMPTS[2:3], seed=seeds[2:3], cfg_scale=4.0, **QUIET)
    assert image_bytes(image_alone) == image_bytes(images_together[2:3])


@pytest.mark.parametrize("cfg_scale", [1.0, 3.0])
def test_cached_guided_sampling_matches_a_full_forward(janus_tiny, cfg_scale):
    """Greedy tokens from the cached loop are the argmax of uncond + s * (cond - uncond) computed
    without a cache; at s = 1 that is the conditional model alone."""
    model, processor = janus_tiny
    adapter = adapter_for(model, processor)
    tokens = generate_image_tokens(model, processor, PROMPTS[:2], cfg_scale=cfg_scale, temperature=0, **QUIET)
    assert tokens.shape == (2, adapter.num_image_tokens)
    with torch.no_grad():
        for prompt, row in zip(PROMPTS[:2], tokens):
            conditional = teacher_forced_logits(adapter, prompt, False, row)
            unconditional = teacher_forced_logits(adapter, prompt, True, row)
            guided = unconditional + cfg_scale * (conditional - unconditional)
            assert torch.equal(guided.argmax(-1), row)
            if cfg_scale == 1.0:
                assert torch.equal(conditional.argmax(-1), row)


def test_guidance_and_top_k_change_the_draw(janus_tiny):
    model, processor = janus_tiny
    plain = generate_image_tokens(model, processor, PROMPTS, cfg_scale=1.0, seed=0, **QUIET)
    guided = generate_image_tokens(model, processor, PROMPTS, cfg_scale=5.0, seed=0, **QUIET)
    assert not torch.equal(plain, guided)
    top1 = generate_image_tokens(model, processor, PROMPTS[:1], cfg_scale=1.0, seed=0, top_k=1, **QUIET)
    greedy = generate_image_tokens(model, processor, PROMPTS[:1], cfg_scale=1.0, seed=5, temperature=0, **QUIET)
    assert torch.equal(top1, greedy)


@pytest.mark.parametrize("fast", SAMPLERS)
def test_the_prompt_decides_the_draw_at_a_fixed_seed(janus_sensitive, fast):
    """Every prompt drawn with the same seed: on a model whose logits matter, each gets its own
    image (on the unscaled tiny model the seed alone decides, and all four come out the same)."""
    model, processor = janus_sensitive
    tokens = generate_image_tokens(model, processor, PROMPTS, seed=[0] * 4, cfg_scale=1.0, fast=fast, **QUIET)
    assert len({tuple(row.tolist()) for row in tokens}) == len(PROMPTS)


@pytest.mark.parametrize("fast", SAMPLERS)
def test_left_padding_never_changes_a_draw(janus_sensitive, fast):
    """A short prompt batched with a long one is left-padded by many tokens; its codes must be
    those it gets alone, at temperature 1 and guided (pad tokens are never attended)."""
    model, processor = janus_sensitive
    prompts = ["a cat", "a yellow star above a green cross, left of two blue squares on a white background"]
    lengths = [len(processor.tokenizer(prompt)["input_ids"]) for prompt in prompts]
    assert lengths[1] > lengths[0] + 10
    together = generate_image_tokens(model, processor, prompts, seed=[5, 6], cfg_scale=3.0, fast=fast, **QUIET)
    for row, prompt in enumerate(prompts):
        alone = generate_image_tokens(model, processor, [prompt], seed=[5 + row], cfg_scale=3.0, fast=fast, **QUIET)
        assert torch.equal(alone[0], together[row]), prompt


def test_reconstruct_is_greedy_decoding_from_the_asked_resolution(janus_sensitive, square_images):
    """Greedy reconstruct gives the images of greedy decoding by full forwards from the
    understanding embeddings at its `resolution`, and an 8-pixel view gives other images than the
    native one (these squares sit off the 4-pixel grid, so shrinking blurs their edges; on this
    model the coarse view changes 14, 1 and 2 of the 16 codes)."""
    model, processor = janus_sensitive
    adapter = adapter_for(model, processor)
    images = square_images[1:]
    instructions = [RECONSTRUCTION_INSTRUCTIONS[0]] * len(images)
    rebuilt = {}
    for resolution in (None, 8):
        rebuilt[resolution] = reconstruct(
            model, processor, images, cfg_scale=1.0, temperature=0, resolution=resolution, **QUIET
        )
        with torch.no_grad():
            embeddings = adapter.understanding_embeddings(images, resolution)
            codes = greedy_codes_by_full_forwards(
                adapter, *adapter.prefix_from_embeddings(embeddings, None, instructions)
            )
        assert image_bytes(rebuilt[resolution]) == image_bytes(adapter.decode_image_tokens(codes)), resolution
    for native, coarse in zip(rebuilt[None], rebuilt[8]):
        assert native.tobytes() != coarse.tobytes()


def test_reconstruct_and_caption_return_one_result_per_image(janus_tiny, square_images, odd_mode_images):
    model, processor = janus_tiny
    images = square_images[:2] + list(odd_mode_images.values())
    rebuilt = reconstruct(model, processor, images, seed=3, cfg_scale=2.0, **QUIET)
    assert len(rebuilt) == 8 and all(isinstance(image, Image.Image) for image in rebuilt)
    again = reconstruct(model, processor, images, seed=3, cfg_scale=2.0, **QUIET)
    assert image_bytes(rebuilt) == image_bytes(again)
    bottleneck = reconstruct(model, processor, images[:1], seed=3, cfg_scale=1.0, resolution=8, **QUIET)
    assert len(bottleneck) == 1
    captions = caption(model, processor, images, max_new_tokens=4)
    assert len(captions) == 8 and all(isinstance(text, str) for text in captions)


def test_bad_inputs_are_explained(janus_tiny, square_images):
    model, processor = janus_tiny
    with pytest.raises(ValueError, match="no prompts"):
        generate_images(model, processor, [], **QUIET)
    with pytest.raises(ValueError, match="2 seeds for 3 images"):
        generate_images(model, processor, PROMPTS[:3], seed=[1, 2], **QUIET)
    with pytest.raises(ValueError, match="temperature"):
        generate_images(model, processor, PROMPTS[:1], temperature=-1, **QUIET)
    with pytest.raises(ValueError, match="no images"):
        reconstruct(model, processor, [], **QUIET)
    with pytest.raises(ValueError, match="1 seeds for 2 images"):
        reconstruct(model, processor, square_images[:2], seed=[4], **QUIET)
    with pytest.raises(ValueError, match="no images"):
        caption(model, processor, [])


def test_sampling_right_after_training_uses_eval_mode_and_restores_it(square_images):
    from recakit.models.janus import tiny_janus

    model, processor = tiny_janus(seed=0, text_config={"attention_dropout": 0.5})
    reference = generate_image_tokens(model, processor, PROMPTS[:2], seed=1, **QUIET)
    model.train()
    assert torch.equal(generate_image_tokens(model, processor, PROMPTS[:2], seed=1, **QUIET), reference)
    caption(model, processor, square_images[:1], max_new_tokens=2)
    assert model.training and model.model.language_model.training


def test_decoding_leaves_cudnn_attention_out_and_restores_it(janus_tiny, square_images, monkeypatch):
    """cuDNN's attention plans every new key length on the CPU, which made the plain loop's step
    several times slower on a GPU; image and caption decoding run without it, and put it back."""
    from recakit.models.janus import JanusAdapter

    model, processor = janus_tiny
    seen = []
    original = JanusAdapter.forward_generation

    def recording(self, *args, **kwargs):
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(JanusAdapter, "forward_generation", recording)
    before = torch.backends.cuda.cudnn_sdp_enabled()
    generate_image_tokens(model, processor, PROMPTS[:1], cfg_scale=3.0, **QUIET)
    sampled = len(seen)
    caption(model, processor, square_images[:1], max_new_tokens=3)
    assert sampled and len(seen) > sampled and not any(seen)
    assert torch.backends.cuda.cudnn_sdp_enabled() == before
