"""The fast sampler draws the plain sampler's codes; the chunked loss is the plain loss."""

import pytest
import torch
import torch.nn.functional as F

from recakit.fast import fast_sample_image_tokens, generation_stack, one_query_attention
from recakit.models.janus import tiny_janus
from recakit.objective import chunked_image_loss, use_chunked_loss
from recakit.registry import adapter_for
from recakit.sampling import generate_image_tokens, reconstruct

PROMPTS = ["a red circle", "two blue squares left of a star", "a cat", "a green triangle"]


@pytest.fixture(scope="module")
def tiny():
    return tiny_janus(seed=1)


@pytest.mark.parametrize(
    "options",
    [
        {"cfg_scale": 5.0},
        {"cfg_scale": 1.0},
        {"cfg_scale": 3.0, "temperature": 0},
        {"cfg_scale": 2.0, "temperature": 0.7, "top_k": 10},
    ],
)
def test_fast_sampler_draws_the_plain_codes(tiny, options):
    model, processor = tiny
    plain = generate_image_tokens(model, processor, PROMPTS, seed=11, batch_size=3, progress=False, **options)
    fast = generate_image_tokens(model, processor, PROMPTS, seed=11, batch_size=3, progress=False, fast=True, **options)
    assert torch.equal(plain, fast)


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_one_query_attention_is_masked_attention(kv_heads):
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(3, 4, 1, 8, generator=generator)
    keys, values = (torch.randn(3, kv_heads, 20, 8, generator=generator) for _ in range(2))
    visible = torch.rand(3, 1, 1, 20, generator=generator) < 0.6
    visible[..., 0] = True
    expected = F.scaled_dot_product_attention(
        query, keys, values, attn_mask=visible, scale=0.3, enable_gqa=kv_heads != 4
    )
    assert torch.allclose(one_query_attention(query, keys, values, visible, 0.3), expected, atol=1e-6)
    # hidden slots do not count, whatever they hold
    keys[~visible[:, 0, 0][:, None, :].expand(-1, kv_heads, -1)] = 1e4
    assert torch.allclose(one_query_attention(query, keys, values, visible, 0.3), expected, atol=1e-6)


def test_fast_codes_do_not_depend_on_the_batch(tiny):
    model, processor = tiny
    together = generate_image_tokens(
        model, processor, PROMPTS, seed=[5, 6, 7, 8], batch_size=4, progress=False, fast=True
    )
    alone = generate_image_tokens(model, processor, PROMPTS[2:3], seed=[7], progress=False, fast=True)
    assert torch.equal(together[2:3], alone)


def test_fast_reconstruction_gives_the_plain_images(tiny):
    model, processor = tiny
    pictures = [
        torch.randint(0, 255, (32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
        for i in range(2)
    ]
    from PIL import Image

    images = [Image.fromarray(array.numpy()) for array in pictures]
    plain = reconstruct(model, processor, images, seed=2, progress=False)
    fast = reconstruct(model, processor, images, seed=2, progress=False, fast="eager")
    assert [a.tobytes() for a in plain] == [b.tobytes() for b in fast]


def test_fast_modes_are_checked(tiny):
    model, processor = tiny
    with pytest.raises(ValueError, match="unknown fast mode"):
        generate_image_tokens(model, processor, PROMPTS[:1], progress=False, fast="turbo")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs a CUDA device"):
            generate_image_tokens(model, processor, PROMPTS[:1], progress=False, fast="graph")


def test_generation_stack_refuses_models_without_a_llama():
    class NotLlama:
        model = torch.nn.Linear(2, 2)

    with pytest.raises(TypeError, match="Llama generation stack"):
        generation_stack(NotLlama())
    with pytest.raises(TypeError, match="Llama generation stack"):
        fast_sample_image_tokens(
            NotLlama(), None, 1, cfg_scale=1, seeds=[0], temperature=1, top_k=None, batch_size=None, mode="eager"
        )


@pytest.mark.parametrize("chunk_tokens", [1, 7, 64, 10_000])
def test_chunked_loss_matches_plain_value_and_gradient(tiny, chunk_tokens):
    model, processor = tiny
    adapter = adapter_for(model, processor)
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 17, model.config.text_config.hidden_size, generator=generator)
    targets = torch.randint(0, adapter.codebook_size, (3, 17), generator=generator)
    head = list(model.model.generation_head.parameters())

    def value_and_grads(loss_of):
        leaf = hidden.clone().requires_grad_(True)
        for parameter in head:
            parameter.grad = None
        loss = loss_of(leaf)
        loss.backward()
        return loss.detach(), leaf.grad, [parameter.grad.clone() for parameter in head]

    plain = value_and_grads(
        lambda h: F.cross_entropy(
            adapter.image_logits(h).float().reshape(-1, adapter.codebook_size), targets.reshape(-1)
        )
    )
    chunked = value_and_grads(lambda h: chunked_image_loss(adapter, h, targets, chunk_tokens=chunk_tokens))
    torch.testing.assert_close(chunked[0], plain[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked[1], plain[1], rtol=1e-4, atol=1e-7)
    for got, expected in zip(chunked[2], plain[2]):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)
    for parameter in head:
        parameter.grad = None


def test_chunked_loss_checks_its_input(tiny):
    adapter = adapter_for(*tiny)
    hidden = torch.zeros(2, 4, tiny[0].config.text_config.hidden_size)
    with pytest.raises(ValueError, match="chunk_tokens"):
        chunked_image_loss(adapter, hidden, torch.zeros(2, 4, dtype=torch.long), chunk_tokens=0)
    with pytest.raises(ValueError, match="hidden positions"):
        chunked_image_loss(adapter, hidden, torch.zeros(2, 3, dtype=torch.long))


def test_only_large_codebooks_take_the_chunked_loss(tiny):
    adapter = adapter_for(*tiny)
    assert not use_chunked_loss(adapter)
    adapter.codebook_size = 16384
    assert use_chunked_loss(adapter)
    with torch.no_grad():
        assert not use_chunked_loss(adapter)


def test_objective_uses_the_chunked_loss_for_large_codebooks(tiny, monkeypatch):
    from recakit import objective
    from recakit.objective import reca_loss

    model, processor = tiny
    images = [torch.zeros(32, 32, 3, dtype=torch.uint8).numpy()]
    from PIL import Image

    images = [Image.fromarray(array) for array in images]
    torch.manual_seed(0)
    plain = reca_loss(model, processor, images, sample_seeds=[3])
    monkeypatch.setattr(objective, "CHUNKED_LOSS_MIN_CODES", 2)
    calls = []
    original = objective.chunked_image_loss
    monkeypatch.setattr(
        objective, "chunked_image_loss", lambda *a, **k: calls.append(1) or original(*a, chunk_tokens=5)
    )
    chunked = reca_loss(model, processor, images, sample_seeds=[3])
    assert calls
    torch.testing.assert_close(chunked, plain, rtol=1e-5, atol=1e-6)


def test_capturing_the_step_leaves_the_codes_unchanged(tiny, monkeypatch):
    """Graph capture runs the decode step a few times before the real first step; the cache slot
    and visibility it touches must not change what is drawn. A stand-in capture does the same
    on the CPU."""
    from recakit import fast

    def capture_like_cuda(step):
        for _ in range(3):  # two warm-ups and the recorded run, on whatever codes the buffers hold
            step()
        return step

    model, processor = tiny
    plain = generate_image_tokens(model, processor, PROMPTS, seed=4, batch_size=2, progress=False)
    monkeypatch.setattr(fast, "_resolve_mode", lambda mode, device: "graph")
    monkeypatch.setattr(fast, "_capture", capture_like_cuda)
    captured = generate_image_tokens(model, processor, PROMPTS, seed=4, batch_size=2, progress=False, fast=True)
    assert torch.equal(plain, captured)


def test_auto_mode_samples_eagerly_when_capture_fails(tiny, monkeypatch):
    from recakit import fast

    def broken_capture(step):
        raise RuntimeError("capture not supported here")

    model, processor = tiny
    plain = generate_image_tokens(model, processor, PROMPTS[:2], seed=9, progress=False)
    monkeypatch.setattr(fast, "_resolve_mode", lambda mode, device: "graph")
    monkeypatch.setattr(fast, "_capture", broken_capture)
    with pytest.warns(UserWarning, match="sampling eagerly"):
        fallen_back = generate_image_tokens(model, processor, PROMPTS[:2], seed=9, progress=False, fast=True)
    assert torch.equal(plain, fallen_back)
    with pytest.raises(RuntimeError, match="capture not supported"):
        generate_image_tokens(model, processor, PROMPTS[:2], seed=9, progress=False, fast="graph")
