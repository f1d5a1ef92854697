"""recakit.optim.CompensatedAdamW8bit: bf16 weights that follow a float32 AdamW run, and a state
that survives a checkpoint."""

import io

import pytest
import torch

pytest.importorskip("bitsandbytes")

from recakit.optim import CHUNK, CompensatedAdamW8bit  # noqa: E402


def steps(weights, optimizer, gradients):
    for step_gradients in gradients:
        for p, g in zip(weights, step_gradients):
            p.grad = g.to(p.dtype)
        optimizer.step()


def test_bf16_weights_follow_float32_adamw_where_plain_bf16_rounds_updates_away():
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(CHUNK + 1000, generator=generator) * 0.05  # more than one chunk
    gradients = [[torch.randn(start.shape, generator=generator)] for _ in range(10)]
    options = {"lr": 1e-5, "betas": (0.9, 0.95), "weight_decay": 0.02}

    reference = [torch.nn.Parameter(start.clone())]
    steps(reference, torch.optim.AdamW(reference, **options), gradients)
    compensated = [torch.nn.Parameter(start.to(torch.bfloat16))]
    optimizer = CompensatedAdamW8bit(compensated, **options)
    steps(compensated, optimizer, gradients)
    plain = [torch.nn.Parameter(start.to(torch.bfloat16))]
    steps(plain, torch.optim.AdamW(plain, **options), gradients)

    wanted = reference[0].detach() - start
    begin = start.to(torch.bfloat16).float()

    def error(update):
        return ((update - wanted).norm() / wanted.norm()).item()

    assert error(optimizer.exact_weight(compensated[0]) - begin) < 0.05
    assert error(plain[0].detach().float() - begin) > 0.7
    assert compensated[0].dtype == torch.bfloat16


def test_a_saved_state_resumes_exactly():
    generator = torch.Generator().manual_seed(1)
    start = (torch.randn(3000, generator=generator) * 0.05).to(torch.bfloat16)
    gradients = [[torch.randn(3000, generator=generator)] for _ in range(4)]
    weights = [torch.nn.Parameter(start.clone())]
    optimizer = CompensatedAdamW8bit(weights, lr=1e-4)
    steps(weights, optimizer, gradients[:2])
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)

    resumed = [torch.nn.Parameter(weights[0].detach().clone())]
    resumed_optimizer = CompensatedAdamW8bit(resumed, lr=1e-4)
    resumed_optimizer.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed_optimizer.state[resumed[0]]["absmax1"].dtype == torch.float32
    steps(weights, optimizer, gradients[2:])
    steps(resumed, resumed_optimizer, gradients[2:])
    assert torch.equal(weights[0], resumed[0])
    assert torch.equal(optimizer.exact_weight(weights[0]), resumed_optimizer.exact_weight(resumed[0]))
