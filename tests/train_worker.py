"""Trains a tiny regression net with `recakit.train` and writes the losses and final weights as
JSON; tests/test_train_distributed.py runs it in one process and under torchrun to compare."""

import argparse
import json
import time

import torch

from recakit.training import train


def noisy_mse(model, examples, seeds):
    """Mean squared error with per-example input noise drawn from the example's own seed."""
    x = torch.stack([x for x, _ in examples])
    y = torch.stack([y for _, y in examples])
    noise = torch.stack([torch.randn(4, generator=torch.Generator().manual_seed(s)) for s in seeds])
    return torch.nn.functional.mse_loss(model(x + 0.1 * noise), y)


def slow_noisy_mse(model, examples, seeds):
    time.sleep(0.05)  # leaves time to interrupt the run from outside
    return noisy_mse(model, examples, seeds)


def run(out_dir, steps=6, batch_size=8, grad_accum=1, slow=False) -> dict:
    """Train the net; returns {"losses": per step, "weights": final parameters, flattened}."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(30, 4, generator=generator)
    data = list(zip(x, x[:, :1] - 2 * x[:, 1:2] * x[:, 2:3]))
    history = train(
        model,
        slow_noisy_mse if slow else noisy_mse,
        data,
        steps=steps,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=3e-3,
        warmup_steps=2,
        weight_decay=0.01,
        out_dir=out_dir,
        save_every=3,
        progress=False,
        mixed_precision="no",
    )
    weights = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
    return {"losses": [record["loss"] for record in history], "weights": weights}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--result", required=True)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--slow", action="store_true")
    args = parser.parse_args()
    result = run(args.out_dir, args.steps, args.batch_size, args.grad_accum, args.slow)
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return
    with open(args.result, "w") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main()
