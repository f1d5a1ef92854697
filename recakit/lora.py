"""LoRA and gradient checkpointing for RecA fine-tuning: which layers get adapters, adding them,
and merging them back into the weights."""

from __future__ import annotations

import torch


def add_lora(model, lora):
    """Wrap `model` with peft LoRA adapters (`lora`: a `peft.LoraConfig` or its keyword dict).

    The adapters are injected into `model` itself; everything else is frozen, except the
    parameters whose names start with one of `model.trained_alongside_lora` (OpenUni's queries,
    connector and projector) that were trainable before."""
    import peft

    config = lora if isinstance(lora, peft.LoraConfig) else peft.LoraConfig(**lora)
    kept = [
        p
        for name, p in model.named_parameters()
        if p.requires_grad and name.startswith(tuple(getattr(model, "trained_alongside_lora", ())))
    ]
    wrapped = peft.get_peft_model(model, config)
    for parameter in kept:
        parameter.requires_grad_(True)
    return wrapped


def enable_gradient_checkpointing(model):
    """Recompute activations in the backward pass instead of keeping them: less memory, about a
    third more compute. Returns the model."""
    if not hasattr(model, "gradient_checkpointing_enable"):
        raise ValueError(f"{type(model).__name__} does not support gradient checkpointing")
    # Non-reentrant checkpointing also works when the inputs (RecA's prefix embeddings of a
    # frozen encoder, or a frozen base under LoRA) carry no gradient.
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def merge_lora(model):
    """Fold the LoRA adapters that `train(..., lora=...)` injected into `model` into its own
    weights, in place, and remove them, so the model saves and loads like the original."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, child_name = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child_name, module.get_base_layer())
    return model


def default_lora_targets(model) -> list[str]:
    """Every linear layer in the part of the model RecA trains (after `freeze_for_reca`), by name.

    The text output head is left out: RecA's image loss never reaches it, and it is often tied to
    the input embeddings, which merging an adapter into it would change as well. So are the
    parts add_lora keeps fully trainable (`model.trained_alongside_lora`: OpenUni's glue)."""
    get_text_head = getattr(model, "get_output_embeddings", None)
    text_head = get_text_head() if get_text_head is not None else None
    modules = dict(model.named_modules())
    kept = tuple(getattr(model, "trained_alongside_lora", ()))
    targets = [
        name
        for name, module in modules.items()
        if isinstance(module, torch.nn.Linear)
        and module is not text_head
        and _in_trained_part(name, modules)
        and not (kept and f"{name}.".startswith(kept))
    ]
    if not targets:
        raise ValueError("no trainable linear layers to put LoRA on: name them with --lora-targets")
    return targets


def _in_trained_part(name: str, modules: dict) -> bool:
    # A quantized weight can never require grad, so the question goes to the nearest enclosing
    # module with ordinary float parameters (a bias, the block's norms): does RecA train those?
    while True:
        floating = [p for p in modules[name].parameters() if p.is_floating_point()]
        if floating:
            return any(p.requires_grad for p in floating)
        if not name:
            return False
        name = name.rpartition(".")[0]
