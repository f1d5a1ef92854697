"""Small helpers the tutorial notebooks share, kept here so the notebooks stay prose and calls.

- `in_colab()` tells the install cell whether it needs to `%pip install` recakit.
- `check_device()` turns "auto" / "cuda" / "cpu" into a device string and explains, in plain
  words, what to do when a GPU was asked for but none is visible.
- `coerce_parameters()` fixes the types of papermill parameters: `papermill -p QUICK false`
  injects the *string* "false", which is truthy, so every notebook re-types its parameters from
  the annotations of its `parameters` cell before using them.
- `generation_panel()` builds the ipywidgets panel of notebook 03. It only wires callbacks and
  returns, so a papermill run (where nobody clicks) never waits on it.
- `summarize_figures()` gives every matplotlib figure a text form that is a digest of what it
  plots. The notebooks are stored with their outputs and re-executed under nbval, which compares
  text but not PNG bytes (those change with the matplotlib and font versions); the digest makes a
  changed image, curve, bar or label fail that comparison all the same.
- `run_record()` names a benchmark run's model and prompt set, and the folder its samples go to.
- `restart_notice()` tells a Colab user when the install replaced a package the running kernel
  had already imported, the one case where Colab needs its session restarted.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import sys
from pathlib import Path

import numpy as np
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
            "DEVICE='cpu'."
        )
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


def generation_panel(
    render, *, prompt: str = "a red circle", seed: int = 0, cfg_scale: float = 3.0, max_cfg: float = 10.0
):
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
        from IPython.core.interactiveshell import InteractiveShell

        result = self.render(self.prompt.value, int(self.seed.value), float(self.cfg.value))
        # The outputs are set on the widget's model, not captured from the kernel's display messages:
        # capturing works only where the front end routes those messages (JupyterLab, nbclient), and
        # elsewhere (nbval, some Colab runtimes) the image would land in the cell instead.
        formatted = [
            InteractiveShell.instance().display_formatter.format(item)
            for item in (result if isinstance(result, list) else [result])
        ]
        self.output.outputs = tuple(
            {"output_type": "display_data", "data": data, "metadata": metadata} for data, metadata in formatted
        )
        return result


# -- outputs that can be compared as text -----------------------------------------------------------
def figure_summary(figure) -> str:
    """`<Figure 6.0x3.0 in, 2 axes, data 1a2b3c4d5e6f>`: the digest covers every axes' titles and
    labels, the colours of its images as drawn, and the data of its lines and bars (numbers to 4
    significant digits), so the last bits of a float do not count. Rendering details (fonts,
    antialiasing) do not enter it."""
    digest = hashlib.sha256()
    for text in figure.texts:
        digest.update(text.get_text().encode())
    for axis in figure.axes:
        for text in (
            axis.get_title(),
            axis.get_xlabel(),
            axis.get_ylabel(),
            *(t.get_text() for t in axis.texts),
            *(t.get_text() for t in axis.get_xticklabels()),
        ):
            digest.update(text.encode())
        for image in axis.get_images():
            # the colours drawn (8 bits a channel), not the floats behind them: their last bits vary
            # with the CPU and thread count while the picture does not
            digest.update(np.ascontiguousarray(image.to_rgba(image.get_array(), bytes=True)).tobytes())
        numbers = [point for line in axis.get_lines() for point in np.asarray(line.get_xydata()).ravel()]
        numbers += [
            value
            for patch in axis.patches
            if hasattr(patch, "get_height")
            for value in (patch.get_x(), patch.get_height())
        ]
        digest.update(" ".join(f"{value:.4g}" for value in numbers).encode())
    width, height = figure.get_size_inches()
    return f"<Figure {width:.1f}x{height:.1f} in, {len(figure.axes)} axes, data {digest.hexdigest()[:12]}>"


def summarize_figures() -> None:
    """Make `figure_summary` the text form of every matplotlib figure this IPython kernel shows
    (the PNG is unchanged). Outside IPython it does nothing."""
    import matplotlib.pyplot as plt
    from IPython import get_ipython
    from matplotlib.figure import Figure

    shell = get_ipython()
    if shell is not None:
        # the first figure loads the inline backend, which resets the figure formatters: load it first
        plt.close(plt.figure())
        shell.display_formatter.formatters["text/plain"].for_type(
            Figure, lambda figure, printer, cycle: printer.text(figure_summary(figure))
        )


# -- benchmark folders -----------------------------------------------------------------------------
def run_record(model: str, prompt_set: str) -> dict:
    """What a benchmark run records about its model (for `geneval.sample_prompts(run_info=...)`):
    the model's name, the prompt set and, for a local folder, when its files were last written,
    so that a rerun into the same folder with another or a retrained model stops instead of reusing
    the old images. `folder` is a name for the samples folder made of model and prompt set."""
    record = {"model": str(model), "prompt_set": str(prompt_set)}
    local = Path(model).expanduser()
    if local.is_dir():
        record["written"] = max((path.stat().st_mtime_ns for path in local.rglob("*") if path.is_file()), default=0)
    record["folder"] = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{prompt_set}-{model}").strip("_")
    return record


# -- Colab ------------------------------------------------------------------------------------------
#: modules a fresh Colab kernel may already have imported, and their pip distributions
_PRELOADED = {
    "numpy": "numpy",
    "PIL": "pillow",
    "matplotlib": "matplotlib",
    "torch": "torch",
    "transformers": "transformers",
    "ipywidgets": "ipywidgets",
    "tqdm": "tqdm",
}


def stale_modules() -> list[str]:
    """Modules imported in this process whose installed version is no longer the loaded one."""
    stale = []
    for module, distribution in _PRELOADED.items():
        loaded = getattr(sys.modules.get(module), "__version__", None)
        try:
            installed = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        if loaded is not None and loaded != installed:
            stale.append(f"{module} {loaded} -> {installed}")
    return stale


def restart_notice() -> bool:
    """Print what to do when the install upgraded an already imported package; True if it did."""
    stale = stale_modules()
    if stale:
        print(
            "The install upgraded packages this session had already loaded (" + ", ".join(stale) + "). "
            "Choose Runtime > Restart session, then run the notebook again from the top; "
            "the second run finds everything installed."
        )
    return bool(stale)
