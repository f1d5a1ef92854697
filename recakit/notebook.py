"""Small helpers the tutorial notebooks share, kept here so the notebooks stay prose and calls.

- `in_colab()` tells the install cell whether it needs to `%pip install` recakit.
- `check_device()` turns "auto" / "cuda" / "cpu" into a device string and explains, in plain
  words, what to do when a GPU was asked for but none is visible.
- `coerce_parameters()` fixes the types of papermill parameters: `papermill -p QUICK false`
  injects the *string* "false", which is truthy, so every notebook re-types its parameters from
  the annotations of its `parameters` cell before using them.
- `generation_panel()` builds the ipywidgets panel of notebook 03. It only wires callbacks and
  returns, so a papermill run (where nobody clicks) never waits on it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

_TRUE_WORDS = {"true", "yes", "on", "1"}
_FALSE_WORDS = {"false", "no", "off", "0"}


def in_colab() -> bool:
    """True inside a Google Colab runtime (its kernel imports google.colab at start-up)."""
    return "google.colab" in sys.modules


def check_device(requested: str = "auto") -> str:
    """Resolve `requested` ("auto", "cpu", "cuda", "cuda:1", ...) to a usable device string and
    print one line saying what will run where."""
    requested = requested.strip().lower()
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            "DEVICE asks for a CUDA GPU but none is visible. In Colab choose Runtime > Change runtime "
            "type > GPU; elsewhere check `nvidia-smi`. The toy model (MODEL='toy') runs fine with "
            "DEVICE='cpu'.")
    if requested.startswith("cuda"):
        properties = torch.cuda.get_device_properties(torch.device(requested))
        print(f"GPU: {properties.name}, {properties.total_memory / 2**30:.1f} GiB")
    elif requested == "cpu":
        print("Running on the CPU: fine for the toy model; a real Janus-Pro run wants a GPU.")
    else:
        raise ValueError(f"DEVICE must be 'auto', 'cpu' or 'cuda[:N]', got {requested!r}")
    return requested


def _as_bool(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    word = str(value).strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(f"parameter {name} must be true or false, got {value!r}")


def coerce_value(name: str, value, kind: type):
    """`value` converted to `kind` (bool, int, float, str or Path); ValueError names the parameter."""
    if kind is bool:
        return _as_bool(name, value)
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(f"parameter {name} must be a whole number, got {value!r}")
    if kind in (int, float, str, Path):
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name} must be {kind.__name__}, got {value!r}") from None
    raise TypeError(f"parameter {name}: recakit cannot coerce to {kind!r}")


def coerce_parameters(namespace: dict, types: dict | None = None) -> dict:
    """Re-type every annotated parameter in `namespace` (a notebook's `globals()`) in place.

    `types` defaults to the namespace's own `__annotations__`, i.e. the `NAME: type = value` lines
    of the parameters cell. Returns {name: value} of the parameters, for printing."""
    types = types if types is not None else namespace.get("__annotations__", {})
    if not types:
        raise ValueError("no typed parameters found: write them as `NAME: type = value`")
    for name, kind in types.items():
        if isinstance(kind, str):  # `from __future__ import annotations` leaves the type as text
            kind = {"bool": bool, "int": int, "float": float, "str": str, "Path": Path}[kind]
        namespace[name] = coerce_value(name, namespace[name], kind)
    return {name: namespace[name] for name in types}


def generation_panel(render, *, prompt: str = "a red circle", seed: int = 0, cfg_scale: float = 3.0,
                     max_cfg: float = 10.0):
    """An ipywidgets panel: prompt box, seed, CFG slider, a Generate button and an output area.

    `render(prompt, seed, cfg_scale)` returns a matplotlib figure or a list of PIL images. The
    panel object has `.widget` (display it) and `.generate()` (what the button does), so a
    notebook can also run one generation without anyone clicking."""
    return GenerationPanel(render, prompt=prompt, seed=seed, cfg_scale=cfg_scale, max_cfg=max_cfg)


class GenerationPanel:
    """See `generation_panel`. Widgets are created here so the module imports without ipywidgets."""

    def __init__(self, render, *, prompt, seed, cfg_scale, max_cfg):
        import ipywidgets as widgets

        self.render = render
        self.prompt = widgets.Text(value=prompt, description="prompt")
        self.seed = widgets.IntText(value=seed, description="seed")
        self.cfg = widgets.FloatSlider(value=cfg_scale, min=1.0, max=max_cfg, step=0.5, description="cfg")
        self.button = widgets.Button(description="Generate", button_style="primary")
        self.output = widgets.Output()
        self.button.on_click(lambda _button: self.generate())
        self.widget = widgets.VBox([widgets.HBox([self.prompt, self.seed]), self.cfg, self.button, self.output])

    def generate(self):
        """Render with the current widget values into the output area; returns what `render` gave."""
        from IPython.display import display

        result = self.render(self.prompt.value, int(self.seed.value), float(self.cfg.value))
        self.output.clear_output(wait=True)
        with self.output:
            for item in (result if isinstance(result, list) else [result]):
                display(item)
        return result
