"""The model families recakit knows, and the two questions asked of them: which family loads a
checkpoint name (`load_model`), and which adapter drives a loaded model (`adapter_for`).

Each family is one module, listed once in FAMILIES and imported only when asked about, so
`import recakit` and `recakit --help` stay fast. A family module provides
- `claims_checkpoint(name) -> bool` and `load_checkpoint(name, *, device, dtype, quantization)
  -> (model, processor)`;
- `claims_model(model) -> bool`, `make_adapter(model, processor)` and
  `freeze_for_reca(model, *, train_aligner) -> dict` for models that do not carry their own
  `reca_adapter(processor)` / `freeze_for_reca(train_aligner=...)` methods (the toy and OpenUni
  carry them; Janus is transformers' class, so its rules live in its module).
Family modules import only the bottom of the core (adapter, images, decoding, instructions), never
this module, so there is no import cycle.
"""

from __future__ import annotations

from importlib import import_module

import torch

from recakit.adapter import UnifiedAdapter

#: in the order their names are tried; Janus, last, takes every name the others do not claim
FAMILIES = ("recakit.toy.model", "recakit.models.openuni", "recakit.models.janus")

#: the bitsandbytes quantizations load_model accepts (Janus checkpoints only)
QUANTIZATIONS = ("nf4", "int8")


def default_device(device=None) -> torch.device:
    """`device`, or cuda where available, else cpu."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(name_or_path: str, *, device=None, dtype=None, quantization: str | None = None):
    """Load a checkpoint -> (model, processor), in eval mode.

    name_or_path: a Janus-Pro hub id (e.g. "deepseek-community/Janus-Pro-1B") or a local folder
    written by `save_pretrained`; "toy" for the shipped ShapesWorld toy model ("toy-reca" and
    "toy-control" for its two trained arms of the toy study, seed 0; a folder of a saved toy, one
    with processor.json, loads as the toy too); "openuni-b", "openuni-l", an OpenUni folder or
    checkpoint (see recakit.models.openuni.load_openuni).
    device: default cuda if available, else cpu. dtype: default bfloat16 on cuda, float32 on cpu.
    quantization: None, "nf4" or "int8" (bitsandbytes, Janus only; works on the CPU too)."""
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)} or None")
    name = str(name_or_path)
    device = default_device(device)
    for module_name in FAMILIES:
        family = import_module(module_name)
        if family.claims_checkpoint(name):
            return family.load_checkpoint(name, device=device, dtype=dtype, quantization=quantization)
    raise AssertionError("the last family claims every name")


def family_of(model):
    """The family module whose `claims_model` accepts `model` (a peft wrapper is unwrapped)."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    for module_name in FAMILIES:
        family = import_module(module_name)
        if family.claims_model(model):
            return family
    raise TypeError(
        f"recakit has no RecA adapter for {type(model).__name__}; wrap it in a recakit.adapter.UnifiedAdapter subclass"
    )


def adapter_for(model, processor=None) -> UnifiedAdapter:
    """The adapter for a loaded model (or a peft wrapper of one): the model's own
    `reca_adapter()` if it has one, else its family's adapter."""
    if isinstance(model, UnifiedAdapter):
        return model
    if hasattr(model, "get_base_model"):  # a peft wrapper: the adapter drives the wrapped model
        model = model.get_base_model()
    if hasattr(model, "reca_adapter"):
        return model.reca_adapter(processor)
    return family_of(model).make_adapter(model, processor)
