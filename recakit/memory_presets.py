"""Memory-budget presets: named settings to load a model and train it with RecA on a given card.

A preset is a small frozen dataclass of load settings (which checkpoint, dtype, quantization) and
training settings (batch, micro-batch, learning rate, LoRA, optimizer, gradient checkpointing),
chosen by name so that a notebook or a script says `get_preset("janus-pro-1b-full-16gb")`
instead of repeating a dozen numbers:

- `cpu-tiny`: the ShapesWorld toy on a laptop CPU (the tutorials' setting).
- `janus-pro-1b-full-16gb`: full fine-tuning of Janus-Pro-1B's language model and generation
  modules on one 16 GB GPU: bf16 weights updated by `recakit.optim.CompensatedAdamW8bit` (8-bit
  moments, Kahan-compensated steps, so no update is rounded away), gradient checkpointing,
  micro-batches of 4 with gradient accumulation.
- `janus-pro-7b-qlora-16gb`: RecA on Janus-Pro-7B on one 16 GB GPU: NF4 weights, LoRA r16 on the
  trained part, gradient checkpointing, fused AdamW on the adapters.
- `openuni-b-reca-24gb` / `openuni-l-reca-80gb`: upstream's OpenUni RecA recipe (InternVL frozen;
  SANA, connector, queries and projector trained; AdamW lr 1e-5, weight decay 0.05) with float32
  master weights under bf16 autocast. Their budgets are arithmetic, not measured: 16 bytes per
  trained parameter (weights, gradients, two Adam moments), 4 per frozen one, plus activations.
  OpenUni-B: 0.65 B trained (10.4 GB) + 1.26 B frozen (5.0 GB) + checkpointed activations of
  4 images (~2 GB) -> ~17.5 GB expected peak. OpenUni-L: 1.83 B trained (29.3 GB) + 2.41 B frozen
  (9.6 GB) + activations of 8 images without checkpointing (~2.4 GB each: ~1.5 GB for the frozen
  language model's 28 layers at ~550 positions, which the queries' gradient passes through, and
  ~0.8 GB for SANA's 20 layers) -> ~58 GB expected peak. No GPU has measured either yet.

`load_options()` gives the keywords of `recakit.registry.load_model`, `train_options(model)` those of
`recakit.training.train`, `prepare_model(model)` switches on gradient checkpointing, and
`make_optimizer(parameters)` builds the preset's optimizer (8-bit ones need bitsandbytes).
`memory_budget_gib` is the peak the preset is meant to stay under; `benchmarks/gpu.py` measures it.

Memory of the 1B full fine-tuning preset, at Janus-Pro-1B size (GiB = 2**30 bytes). The model
has about 2.08 B weights with an untied text head (1.87 B tied): 3.9 GiB in bf16. RecA's loss
reaches 1.485 B of them (language model with its input embeddings 1.443 B, generation head,
aligner and embeddings 0.042 B; the text head gets no gradient and so no optimizer state). Each of
those costs 2 bytes of bf16 gradient, 2 bytes of 8-bit Adam moments (plus one float32 maximum per
256 values), and 2 bytes of bf16 compensation: 6.03 bytes, 8.3 GiB. Weights + training state:
12.2 GiB; activations under gradient checkpointing at micro-batch 4 (about 1,180 positions) add
roughly 1 to 1.5 GiB, inside the 15 GiB budget. A float32 master copy instead of the compensation
(4 bytes) would give 14.9 GiB before any activation, which does not fit. Mixing image-to-text in
trains an untied text head too (0.21 B weights, +1.2 GiB): close to the budget, so measure it.
Why the compensation: bf16 keeps 8 significant bits, so on plain bf16 weights an update smaller than
about 1/256 of a weight rounds away, and at lr 1e-5 only weights below ~0.003 would move at all.
`benchmarks/gpu.py` measures the real peak on a GPU.
"""

from __future__ import annotations

import dataclasses

import torch

from recakit.optim import CompensatedAdamW8bit

OPTIMIZERS = ("adamw", "adamw_fused", "adamw_8bit", "paged_adamw_8bit", "compensated_adamw_8bit")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    description: str
    model: str  # a load_model name: hub id, folder or "toy"
    dtype: str = "bfloat16"  # weights and compute dtype (a key of DTYPES)
    quantization: str | None = None  # None, "nf4" or "int8"
    lora: dict | None = None  # peft LoraConfig keywords; target_modules None = RecA's trained part
    optimizer: str = "adamw"  # one of OPTIMIZERS
    gradient_checkpointing: bool = False
    batch_size: int = 8  # images per optimizer step
    micro_batch: int = 8  # images per forward/backward pass
    lr: float = 1e-5
    betas: tuple = (0.9, 0.95)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    steps: int = 1000
    max_grad_norm: float | None = 1.0
    resolution: int | None = None  # understanding-encoder input side (RecA's bottleneck knob)
    memory_budget_gib: float | None = None

    @property
    def grad_accum(self) -> int:
        return self.batch_size // self.micro_batch

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def validate(self) -> Preset:
        """Raise ValueError on settings that cannot work together; return self."""
        problems = []
        if self.dtype not in DTYPES:
            problems.append(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.quantization not in (None, "nf4", "int8"):
            problems.append(f"quantization {self.quantization!r} is not None, 'nf4' or 'int8'")
        if self.quantization is not None and self.lora is None:
            problems.append("quantized weights cannot be trained: a quantized preset needs lora")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.micro_batch < 1 or self.batch_size < 1 or self.batch_size % self.micro_batch:
            problems.append(
                f"batch_size {self.batch_size} must be a positive multiple of micro_batch {self.micro_batch}"
            )
        if self.lr <= 0 or self.steps < 1:
            problems.append(f"lr must be > 0 and steps >= 1, got lr={self.lr}, steps={self.steps}")
        if self.lora is not None and int(self.lora.get("r", 0)) < 1:
            problems.append("lora needs a rank r >= 1")
        if problems:
            raise ValueError(f"preset {self.name!r}: " + "; ".join(problems))
        return self

    def load_options(self) -> dict:
        """Keywords for recakit.registry.load_model(preset.model, **options)."""
        return {"dtype": self.torch_dtype, "quantization": self.quantization}

    def lora_config(self, model) -> dict | None:
        """The LoRA keywords with target_modules filled in for `model` (after freeze_for_reca)."""
        if self.lora is None:
            return None
        config = dict(self.lora)
        if config.get("target_modules") is None:
            from recakit.lora import default_lora_targets

            config["target_modules"] = default_lora_targets(model)
        return config

    def train_options(self, model=None) -> dict:
        """Keywords for recakit.training.train(model, loss_fn, data, **options), the preset's
        optimizer included."""
        options = {
            "steps": self.steps,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "lr": self.lr,
            "betas": tuple(self.betas),
            "weight_decay": self.weight_decay,
            "warmup_steps": self.warmup_steps,
            "max_grad_norm": self.max_grad_norm,
            "optimizer_factory": self.make_optimizer,
        }
        if self.lora is not None:
            if model is None:
                raise ValueError(f"preset {self.name!r} uses LoRA: pass the model so its targets can be found")
            options["lora"] = self.lora_config(model)
        return options

    def prepare_model(self, model):
        """Apply the preset's memory settings to a loaded model (gradient checkpointing)."""
        if self.gradient_checkpointing:
            # non-reentrant checkpointing also works when the inputs need no gradient (frozen encoder);
            # newer transformers call it activation checkpointing
            kwargs = {"use_reentrant": False}
            if hasattr(model, "activation_checkpointing_enable"):
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            elif hasattr(model, "gradient_checkpointing_enable"):
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
            else:
                raise TypeError(f"{type(model).__name__} cannot checkpoint activations")
            if self.lora is not None and hasattr(model, "enable_input_require_grads"):
                model.enable_input_require_grads()
        return model

    def make_optimizer(self, parameters) -> torch.optim.Optimizer:
        """The preset's optimizer over `parameters` (weight decay on matrices only)."""
        parameters = [p for p in parameters if p.requires_grad]
        if not parameters:
            raise ValueError("no trainable parameters for the optimizer")
        groups = [
            {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": self.weight_decay},
            {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
        ]
        groups = [group for group in groups if group["params"]]
        options = {"lr": self.lr, "betas": tuple(self.betas)}
        if self.optimizer == "adamw":
            return torch.optim.AdamW(groups, **options)
        if self.optimizer == "adamw_fused":
            # the fused kernel exists for CUDA tensors; elsewhere the ordinary one does the same sums
            return torch.optim.AdamW(groups, fused=parameters[0].is_cuda, **options)
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise ImportError(
                f"preset {self.name!r} uses the {self.optimizer} optimizer from bitsandbytes: pip install bitsandbytes"
            ) from None
        if self.optimizer == "compensated_adamw_8bit":
            return CompensatedAdamW8bit(groups, **options)
        if self.optimizer == "adamw_8bit":
            return bnb.optim.AdamW8bit(groups, **options)
        return bnb.optim.PagedAdamW8bit(groups, **options)


PRESETS = {
    preset.name: preset.validate()
    for preset in (
        Preset(
            name="cpu-tiny",
            description="the ShapesWorld toy on a CPU: float32, plain AdamW, small batches",
            model="toy",
            dtype="float32",
            optimizer="adamw",
            batch_size=16,
            micro_batch=16,
            lr=3e-4,
            steps=300,
            max_grad_norm=1.0,
        ),
        Preset(
            name="janus-pro-1b-full-16gb",
            description="full fine-tuning of Janus-Pro-1B (language model + generation modules) on a 16 GB GPU",
            model="deepseek-community/Janus-Pro-1B",
            dtype="bfloat16",
            optimizer="compensated_adamw_8bit",
            gradient_checkpointing=True,
            batch_size=32,
            micro_batch=4,
            lr=1e-5,
            weight_decay=0.02,
            warmup_steps=50,
            steps=5000,
            memory_budget_gib=15.0,
        ),
        Preset(
            name="janus-pro-7b-qlora-16gb",
            description="RecA on Janus-Pro-7B on a 16 GB GPU: NF4 weights + LoRA r16, gradient checkpointing",
            model="deepseek-community/Janus-Pro-7B",
            dtype="bfloat16",
            quantization="nf4",
            lora={"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": None},
            optimizer="adamw_fused",
            gradient_checkpointing=True,
            batch_size=16,
            micro_batch=4,
            lr=1e-4,
            warmup_steps=50,
            steps=5000,
            memory_budget_gib=15.0,
        ),
        Preset(
            name="openuni-b-reca-24gb",
            description="RecA on OpenUni-B (InternVL3-1B + SANA 0.6B) on a 24 GB GPU: upstream's split and "
            "optimizer, float32 master weights, gradient checkpointing; ~17.5 GB expected (arithmetic)",
            model="openuni-b",
            dtype="float32",
            optimizer="adamw_fused",
            gradient_checkpointing=True,
            batch_size=16,
            micro_batch=4,
            lr=1e-5,
            weight_decay=0.05,
            steps=10000,
            memory_budget_gib=22.0,
        ),
        Preset(
            name="openuni-l-reca-80gb",
            description="RecA on OpenUni-L (InternVL3-2B + SANA 1.6B) on an 80 GB GPU: upstream's split and "
            "optimizer, float32 master weights, no checkpointing; ~58 GB expected (arithmetic)",
            model="openuni-l",
            dtype="float32",
            optimizer="adamw_fused",
            batch_size=16,
            micro_batch=8,
            lr=1e-5,
            weight_decay=0.05,
            steps=5000,
            memory_budget_gib=75.0,
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called `name`; ValueError listing the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None
