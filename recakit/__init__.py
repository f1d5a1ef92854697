"""recakit: learn, run and reproduce RecA (reconstruction alignment of unified multimodal models).

The public names below load their module on first use, so `import recakit` stays fast and the
command line starts quickly.
"""

import logging
from importlib import import_module

__version__ = "0.1.0"

# bitsandbytes, on import on a CPU with AVX512-BF16, warns that an optional hub kernel is missing
# and then uses its own: a red notice in every notebook that asks nothing of the user
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    lambda record: "gemm_4bit_forward from kernels-community" not in record.getMessage()
)

_PUBLIC = {
    "load_model": "recakit.registry",
    "tiny_janus": "recakit.models.janus",
    "tiny_openuni": "recakit.models.openuni",
    "load_openuni": "recakit.models.openuni",
    "reca_loss": "recakit.objective",
    "freeze_for_reca": "recakit.objective",
    "RECONSTRUCTION_INSTRUCTIONS": "recakit.instructions",
    "generate_images": "recakit.sampling",
    "reconstruct": "recakit.sampling",
    "caption": "recakit.sampling",
    "train": "recakit.training",
    "adapter_for": "recakit.registry",
    "UnifiedAdapter": "recakit.adapter",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'recakit' has no attribute {name!r}")


def __dir__():
    return __all__
