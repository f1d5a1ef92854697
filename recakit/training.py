"""The training loop behind `recakit.train(...)` and `recakit train`.

One plain loop serves the RecA runs, the toy's base training and the notebooks: AdamW over the
parameters that require gradients, warmup then a cosine or constant schedule, gradient
accumulation and clipping, with `accelerate` supplying mixed precision and multi-process (DDP)
training. The loop knows nothing about models or losses: `loss_fn(model, examples, sample_seeds)`
does the work, so the same code trains Janus, the ShapesWorld toy or a test MLP.

Reproducibility is built in rather than hoped for:
- the global batch of step s is a function of (seed, s) only (a fresh permutation per epoch), and
  each process takes its contiguous slice of it, so a resumed run and an N-process run see exactly
  the examples a single uninterrupted process would;
- every example gets a seed derived from (seed, step, its position in the global batch), which
  the loss uses for its own random choices (instruction drawn, dropped or not);
- `out_dir/checkpoint/` holds the trainable weights, optimizer, scheduler, step and RNG states. It
  is written beside the old one and swapped in with `os.replace`, so an interruption never leaves
  a half-written checkpoint, and resuming reproduces the uninterrupted run's losses.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import torch

from recakit.lora import add_lora

CHECKPOINT = "checkpoint"
HISTORY = "history.jsonl"
SCHEDULES = ("cosine", "constant")


def batch_indices(num_examples: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Dataset indices of the global batch of optimizer step `step` (0-based).

    Batches walk through one random permutation per epoch, so every example is seen once per
    epoch, and the batch depends only on (seed, step): not on the process count or on resuming."""
    indices = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(position, num_examples)
        indices.append(int(_epoch_order(num_examples, seed, epoch)[offset]))
    return indices


@functools.lru_cache(maxsize=4)
def _epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def sample_seeds(batch_size: int, step: int, seed: int) -> list[int]:
    """One seed per position of the global batch of `step`, for the loss's own random choices."""
    return [int(word) for word in np.random.SeedSequence([seed, step]).generate_state(batch_size)]


def train(
    model,
    loss_fn,
    data,
    *,
    steps: int,
    batch_size: int = 8,
    lr: float = 1e-5,
    grad_accum: int = 1,
    weight_decay: float = 0.0,
    betas=(0.9, 0.95),
    warmup_steps: int = 0,
    schedule: str = "cosine",
    lr_floor: float = 0.0,
    max_grad_norm: float | None = 1.0,
    seed: int = 0,
    out_dir=None,
    save_every: int | None = None,
    resume: bool = True,
    lora=None,
    progress: bool = True,
    callback=None,
    mixed_precision: str | None = None,
    optimizer_factory=None,
    description: str = "train",
) -> list[dict]:
    """Train the parameters of `model` that require gradients; returns the history, one dict per
    optimizer step: `step` (steps done), `loss` (mean over the global batch), `lr`, `grad_norm`.

    `loss_fn(model, examples, sample_seeds)` returns the mean loss of `examples` (items of the
    sequence `data`), or (loss, {name: number}) to log more numbers, averaged like the loss, in
    each step's record; it always receives the plain model (never a DDP or peft wrapper).
    `batch_size` is the global batch per optimizer step: each process runs `grad_accum`
    micro-batches of batch_size / grad_accum / processes examples. The cosine schedule decays to
    `lr_floor` x `lr`. `lora` (a dict or `peft.LoraConfig`) trains LoRA adapters instead,
    injected into `model`; a `peft.PeftModel` may also be passed directly. With `out_dir`, a
    checkpoint is saved every `save_every` steps, at the end and on KeyboardInterrupt or SIGTERM,
    the history goes to `out_dir/history.jsonl`, and `resume=True` continues from an existing
    checkpoint. `callback(record)` runs after every step on every process. The model keeps the
    train/eval mode it arrives in. `optimizer_factory` (trainable parameters -> optimizer, e.g. a
    preset's 8-bit AdamW) replaces the default AdamW built from `lr`, `betas` and `weight_decay`.
    `description` labels the progress bar.
    """
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    for name, value in (("steps", steps), ("batch_size", batch_size), ("grad_accum", grad_accum)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if len(data) == 0:
        raise ValueError("data is empty: nothing to train on")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not 0.0 <= lr_floor <= 1.0:
        raise ValueError(f"lr_floor is a fraction of lr, between 0 and 1; got {lr_floor}")
    if save_every is not None and save_every < 1:
        raise ValueError(f"save_every must be at least 1, got {save_every}")

    # Each call is a run of its own: forget the precision an earlier call in this process chose,
    # which accelerate would otherwise refuse to change (the process group itself is kept).
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        cpu=_launched_on_cpu(),
        mixed_precision=mixed_precision or _default_precision(),
        # RecA may leave trainable parameters unused in a step (e.g. the text head when no
        # image-to-text batch is mixed in); DDP must not wait for their gradients.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    processes, rank = accelerator.num_processes, accelerator.process_index
    if processes != _launched_processes():
        raise RuntimeError(
            f"launched as {_launched_processes()} processes but accelerate joined {processes}: on a "
            "machine without GPU, create any accelerate state with recakit.training.distributed_state() "
            "before calling train, or every process would train alone and overwrite the others' files"
        )
    if batch_size % (grad_accum * processes):
        raise ValueError(
            f"batch_size {batch_size} must be a multiple of grad_accum x processes = {grad_accum} x {processes}"
        )
    per_process = batch_size // processes
    micro_batch = per_process // grad_accum

    # Seeded before LoRA is added so its initialisation, and any global randomness in the model,
    # is the same on every process and in every run.
    set_seed(seed)
    if lora is not None:
        model = add_lora(model, lora)
    peft_model = model if _is_peft_model(model) else None
    plain_model = peft_model.get_base_model() if peft_model is not None else model
    trainable = [(name, p) for name, p in plain_model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no parameters with requires_grad: nothing to train")

    # DDP only synchronises gradients of work done inside its forward(), so the loss itself is
    # the module accelerate wraps (this also puts the loss under mixed-precision autocast).
    loss_module = accelerator.prepare_model(
        _LossModule(plain_model, loss_fn), device_placement=not _placed_by_loader(plain_model)
    )
    if optimizer_factory is not None:
        optimizer = optimizer_factory([p for _, p in trainable])
    else:
        # Weight decay is for weight matrices; biases and norm scales are left alone.
        groups = [
            {"params": [p for _, p in trainable if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for _, p in trainable if p.ndim < 2], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas)
    # The scheduler is kept away from accelerate, which would step it once per process.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(schedule, warmup_steps, steps, lr_floor))
    optimizer = accelerator.prepare_optimizer(optimizer)

    settings = {
        "seed": seed,
        "batch_size": batch_size,
        "steps": steps,
        "grad_accum": grad_accum,
        "processes": processes,
    }
    out_dir = Path(out_dir) if out_dir is not None else None
    done, history = 0, []
    if out_dir is not None:
        found = _existing_checkpoint(out_dir) if resume else None
        if found is not None:
            done = _load_checkpoint(found, trainable, optimizer, scheduler, rank, settings)
        history = _restart_history(out_dir / HISTORY, done, accelerator)

    def save(everyone=True):
        _save_checkpoint(out_dir, done, trainable, peft_model, optimizer, scheduler, accelerator, settings, everyone)

    bar = tqdm(
        total=steps, initial=done, desc=description, unit="step", disable=not (progress and accelerator.is_main_process)
    )
    trained_now = updating = False
    previous_sigterm = _sigterm_as_interrupt()
    try:
        for step in range(done, steps):
            global_indices = batch_indices(len(data), batch_size, step, seed)
            global_seeds = sample_seeds(batch_size, step, seed)
            mine = slice(rank * per_process, (rank + 1) * per_process)
            indices, seeds = global_indices[mine], global_seeds[mine]
            lr_now = scheduler.get_last_lr()[0]

            loss_sum, metric_sums = 0.0, {}
            for k in range(grad_accum):
                part = slice(k * micro_batch, (k + 1) * micro_batch)
                examples = [data[i] for i in indices[part]]
                # Gradients are all-reduced once per optimizer step, on the last micro-batch.
                last = k == grad_accum - 1
                with contextlib.nullcontext() if last else accelerator.no_sync(loss_module):
                    loss, metrics = _loss_and_metrics(loss_module(examples, seeds[part]))
                    accelerator.backward(loss / grad_accum)
                loss_sum = loss_sum + loss.detach().float() / grad_accum
                for name, value in metrics.items():
                    metric_sums[name] = metric_sums.get(name, 0.0) + float(value) / grad_accum
            loss_value = accelerator.reduce(loss_sum, "mean").item()
            if not math.isfinite(loss_value):
                raise FloatingPointError(
                    f"the loss became {loss_value} at step {step + 1}; the weights were not updated"
                    + (f" and {out_dir / CHECKPOINT} holds the last good state" if out_dir else "")
                    + ": try a lower lr or more warmup"
                )
            grad_norm = accelerator.clip_grad_norm_([p for _, p in trainable], max_grad_norm or math.inf)
            updating = True
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done, trained_now = step + 1, True
            record = {"step": done, "loss": loss_value, "lr": lr_now, "grad_norm": float(grad_norm)}
            if metric_sums:
                means = accelerator.reduce(torch.tensor(list(metric_sums.values()), device=accelerator.device), "mean")
                record.update(zip(metric_sums, means.tolist()))
            history.append(record)
            if out_dir is not None and accelerator.is_main_process:
                with open(out_dir / HISTORY, "a") as file:
                    file.write(json.dumps(record) + "\n")
            updating = False

            if out_dir is not None and save_every and done % save_every == 0 and done < steps:
                save()
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr_now:.2e}", refresh=False)
            bar.update()
            if callback is not None:
                callback(record)
        if out_dir is not None and trained_now:
            save()
    except KeyboardInterrupt:
        # An interrupt inside the update (weights half-stepped, or the step not yet in the
        # history) is not saved: the last checkpoint stays, and resuming redoes the step.
        if out_dir is not None and trained_now and not updating:
            # Other processes may already be gone, so no collective calls: the main process
            # saves alone (the weights and optimizer state are the same on every process).
            save(everyone=False)
        raise
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        bar.close()
        # Drops accelerate's references to the optimizer state, so notebooks get the memory back.
        accelerator.free_memory()
    return history


class _LossModule(torch.nn.Module):
    """The model and its loss as one module, so DDP and autocast wrap the whole loss."""

    def __init__(self, model, loss_fn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, examples, seeds):
        return self.loss_fn(self.model, examples, seeds)


def _loss_and_metrics(output) -> tuple[torch.Tensor, dict]:
    """A loss function's result as (loss, extra numbers to log)."""
    if not isinstance(output, tuple):
        return output, {}
    loss, metrics = output
    clashing = set(metrics) & {"step", "loss", "lr", "grad_norm"}
    if clashing:
        raise ValueError(f"loss_fn logged {sorted(clashing)}, names the training loop records itself")
    return loss, metrics


def _launched_processes() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _launched_on_cpu() -> bool:
    # Under torchrun without a GPU, accelerate only joins the processes when told it runs on CPU.
    return _launched_processes() > 1 and not torch.cuda.is_available()


def distributed_state():
    """accelerate's process state (rank, main process, device), joined across torchrun processes
    on a CPU-only machine too."""
    from accelerate import PartialState

    return PartialState(cpu=_launched_on_cpu())


def _is_peft_model(model) -> bool:
    # peft takes long to import; a model can only be a PeftModel if peft is already loaded.
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def _sigterm_as_interrupt():
    """Make SIGTERM (what job schedulers send before preempting, and torchrun on shutdown) stop
    training like Ctrl-C, so the progress is saved. Returns the handler it replaced, or None where
    handlers cannot be set (outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the save short
        raise KeyboardInterrupt("terminated by SIGTERM")

    return signal.signal(signal.SIGTERM, interrupt)


def _default_precision() -> str:
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _placed_by_loader(model) -> bool:
    """Quantized or device-mapped models stay where their loader put them."""
    return bool(
        getattr(model, "hf_device_map", None)
        or getattr(model, "is_loaded_in_4bit", False)
        or getattr(model, "is_loaded_in_8bit", False)
    )


def scheduled_lr(
    step: int, steps: int, peak: float, warmup_steps: int, *, schedule: str = "cosine", floor: float = 0.0
) -> float:
    """The learning rate of optimizer step `step` (0-based) of `steps`: linear warmup to `peak`
    over `warmup_steps`, then constant or a cosine decay to `floor` x peak."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if schedule == "constant":
        return peak
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def _lr_factor(schedule: str, warmup_steps: int, steps: int, floor: float = 0.0):
    """scheduled_lr as a multiple of the peak, what LambdaLR takes (a plain function, so the
    scheduler's state_dict holds no state of it)."""

    def factor(step: int) -> float:
        return scheduled_lr(step, steps, 1.0, warmup_steps, schedule=schedule, floor=floor)

    return factor


# -- checkpoints -------------------------------------------------------------------------------
def _existing_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint to resume from; `checkpoint.old` only exists on its own if a save was cut
    off between its two renames."""
    for name in (CHECKPOINT, CHECKPOINT + ".old"):
        if (out_dir / name / "trainer_state.json").exists():
            return out_dir / name
    return None


def _save_checkpoint(out_dir, step, trainable, peft_model, optimizer, scheduler, accelerator, settings, everyone=True):
    from safetensors.torch import save_file

    staging, final, previous = (out_dir / (CHECKPOINT + suffix) for suffix in (".tmp", "", ".old"))
    main = accelerator.is_main_process
    if main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    if everyone:
        accelerator.wait_for_everyone()
    if everyone or main:
        torch.save(_rng_state(), staging / f"rng_state_{accelerator.process_index}.pt")
    if main:
        save_file({name: p.detach().contiguous().cpu() for name, p in trainable}, staging / "trainable.safetensors")
        if peft_model is not None:
            peft_model.save_pretrained(staging / "adapter")
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        (staging / "trainer_state.json").write_text(json.dumps({**settings, "step": step}, indent=1))
    if everyone:
        accelerator.wait_for_everyone()
    if main:
        # A folder cannot replace a non-empty folder in one rename: move the old one aside
        # first, and only delete it once the new one is in place.
        if final.exists():
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(final, previous)
        os.replace(staging, final)
        shutil.rmtree(previous, ignore_errors=True)
    if everyone:
        accelerator.wait_for_everyone()


def _load_checkpoint(folder: Path, trainable, optimizer, scheduler, rank: int, settings) -> int:
    from safetensors.torch import load_file

    state = json.loads((folder / "trainer_state.json").read_text())
    for key in ("seed", "batch_size"):
        if state[key] != settings[key]:
            raise ValueError(
                f"{folder} was written with {key}={state[key]} but this run has "
                f"{key}={settings[key]}: use the same {key} to resume it, or "
                "resume=False (--no-resume) to start over"
            )
    weights = load_file(folder / "trainable.safetensors")
    names = {name for name, _ in trainable}
    if set(weights) != names:
        raise ValueError(
            f"{folder} does not match the model's trainable parameters "
            f"(missing {sorted(names - set(weights))[:3]}, "
            f"unexpected {sorted(set(weights) - names)[:3]})"
        )
    with torch.no_grad():
        for name, p in trainable:
            p.copy_(weights[name])
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    rng_file = folder / f"rng_state_{rank}.pt"
    if rng_file.exists():
        _set_rng_state(torch.load(rng_file, weights_only=True))
    return state["step"]


def _rng_state() -> dict:
    _, keys, position, has_gauss, cached_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_rest": (position, has_gauss, cached_gauss),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), *state["numpy_rest"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _restart_history(path: Path, done: int, accelerator) -> list[dict]:
    """The records of the steps the checkpoint covers; later ones (from a run cut off after its
    last save) are dropped from the file, since the resumed run redoes those steps."""
    kept = []
    if done and path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line torn by an interruption
                continue
            if record["step"] <= done:
                kept.append(record)
    if accelerator.is_main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".jsonl.tmp")
        partial.write_text("".join(json.dumps(record) + "\n" for record in kept))
        os.replace(partial, path)
    accelerator.wait_for_everyone()
    return kept
