"""recakit.sampling on the tiny Janus: seeds, batch independence, guidance, reconstruct, caption."""
import pytest
import torch
from PIL import Image

from recakit.adapter import adapter_for
from recakit.sampling import caption, generate_image_tokens, generate_images, reconstruct

PROMPTS = ["a red circle", "two blue squares", "a photo of a dog", "a yellow star above a green cross"]
QUIET = {"progress": False}


def image_bytes(images):
    return [image.tobytes() for image in images]


def teacher_forced_logits(adapter, prompt, drop, tokens):
    """Image-token logits of one prompt given all earlier tokens, in one full forward (no cache)."""
    prefix, mask = adapter.prefix_from_text([prompt], torch.tensor([drop]))
    embeds = torch.cat([prefix, adapter.embed_image_tokens(tokens[None, :-1])], dim=1)
    mask = torch.cat([mask, mask.new_ones(1, tokens.numel() - 1)], dim=1)
    hidden, _ = adapter.forward_generation(embeds, mask, (mask.cumsum(-1) - 1).clamp(min=0))
    return adapter.image_logits(hidden[0, prefix.shape[1] - 1:]).float()


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
    assert image_bytes(first[1:]) == image_bytes(generate_images(model, processor, PROMPTS[1:2], seed=8,
                                                                 cfg_scale=3.0, **QUIET))


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
    from recakit.janus import tiny_janus

    model, processor = tiny_janus(seed=0, text_config={"attention_dropout": 0.5})
    reference = generate_image_tokens(model, processor, PROMPTS[:2], seed=1, **QUIET)
    model.train()
    assert torch.equal(generate_image_tokens(model, processor, PROMPTS[:2], seed=1, **QUIET), reference)
    caption(model, processor, square_images[:1], max_new_tokens=2)
    assert model.training and model.model.language_model.training


def test_decoding_leaves_cudnn_attention_out_and_restores_it(janus_tiny, square_images, monkeypatch):
    """cuDNN's attention plans every new key length on the CPU, which made the plain loop's step
    several times slower on a GPU; image and caption decoding run without it, and put it back."""
    from recakit.janus import JanusAdapter

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
