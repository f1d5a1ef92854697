"""Every figure the tutorial notebooks draw, in one place so the notebooks stay short.

Each function returns its matplotlib figure and, given `save_to`, also writes it to that file, so
a notebook run leaves its figures in its output folder beside the executed notebook.
Figures: image grids, the coloured token layout of a RecA training sequence, an embedding
similarity heat map and a live loss curve that doubles as a `recakit.training.train` callback.
(Benchmark plots beside the published numbers live in `recakit.report`.)
"""
from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Patch

#: colours of the token roles in `token_layout`; "target" marks the positions that carry the loss
ROLE_COLORS = {
    "text": "#9ecae1",       # system prompt, instruction, prompt text
    "special": "#bdbdbd",    # bos, begin-of-image and other markers
    "condition": "#fdae6b",  # understanding embeddings fed in place of a prompt
    "target": "#74c476",     # generation tokens the model must predict
    "pad": "#f0f0f0",
}


def save_figure(figure, save_to: str | Path | None):
    """Write `figure` to `save_to` (parent folders created) when a path is given; returns the figure."""
    if save_to is not None:
        path = Path(save_to)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120, bbox_inches="tight")
    return figure


def _as_rows(images, ncols):
    if images and isinstance(images[0], (list, tuple)):
        return [list(row) for row in images]
    ncols = ncols or min(len(images), 8)
    return [list(images[start:start + ncols]) for start in range(0, len(images), ncols)]


def image_grid(images, *, titles=None, row_labels=None, ncols=None, suptitle=None,
               cell_size: float = 1.8, save_to=None):
    """Show PIL images in a grid. `images` is a flat list (wrapped every `ncols`) or a list of rows;
    `titles` follows the same shape as the images (flat or per row)."""
    rows = _as_rows(list(images), ncols)
    if not rows or not rows[0]:
        raise ValueError("image_grid needs at least one image")
    title_rows = _as_rows(list(titles), len(rows[0])) if titles is not None else None
    width = max(len(row) for row in rows)
    figure, axes = plt.subplots(len(rows), width, figsize=(cell_size * width, cell_size * len(rows) + 0.3),
                                squeeze=False)
    for r, row in enumerate(rows):
        for c in range(width):
            axis = axes[r][c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c >= len(row):
                axis.axis("off")
                continue
            axis.imshow(row[c], interpolation="nearest")
            if title_rows is not None and c < len(title_rows[r]):
                axis.set_title(textwrap.fill(str(title_rows[r][c]), 24), fontsize=8)
        if row_labels is not None:
            axes[r][0].set_ylabel(str(row_labels[r]), fontsize=9)
    if suptitle:
        figure.suptitle(suptitle)
    figure.tight_layout()
    return save_figure(figure, save_to)


def token_layout(segments, *, title: str = "", save_to=None):
    """The coloured layout of one training sequence.

    `segments` is a list of `(label, n_tokens, role)` with role one of ROLE_COLORS. Long segments
    are drawn on a log scale (1 + log2 n) so a single begin-of-image token stays visible next to
    576 image tokens; each block is labelled with its real token count."""
    unknown = {role for _label, _count, role in segments} - set(ROLE_COLORS)
    if unknown:
        raise ValueError(f"unknown token roles {sorted(unknown)}; use {sorted(ROLE_COLORS)}")
    figure, axis = plt.subplots(figsize=(11, 1.8))
    left = 0.0
    for label, count, role in segments:
        width = max(3.0, 1 + math.log2(max(count, 1)))  # wide enough for a label
        axis.barh(0, width, left=left, color=ROLE_COLORS[role], edgecolor="black", height=0.6)
        axis.text(left + width / 2, 0, f"{label}\n{count}", ha="center", va="center", fontsize=8)
        if role == "target":
            axis.text(left + width / 2, -0.5, "loss here", ha="center", va="center", fontsize=8, color="#238b45")
        left += width
    handles = [Patch(color=color, label=role) for role, color in ROLE_COLORS.items()
               if any(role == segment_role for _label, _count, segment_role in segments)]
    axis.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.05), ncol=len(handles), fontsize=8)
    axis.set_xlim(0, left)
    axis.set_ylim(-0.8, 0.5)
    axis.axis("off")
    axis.set_title(title or "token layout (block widths grow with log2 of the token count)")
    return save_figure(figure, save_to)


def cosine_similarity_matrix(embeddings, *, centered: bool = False) -> np.ndarray:
    """(N, D) vectors -> (N, N) cosine similarities. `centered` subtracts the mean vector first, so
    a component that every embedding shares does not make all pairs look alike."""
    vectors = torch.as_tensor(embeddings).detach().float()
    if vectors.dim() != 2:
        raise ValueError(f"expected (N, D) embeddings, got shape {tuple(vectors.shape)}")
    if centered:
        vectors = vectors - vectors.mean(dim=0, keepdim=True)
    vectors = torch.nn.functional.normalize(vectors, dim=-1)
    return (vectors @ vectors.T).numpy()


def similarity_heatmap(embeddings, *, labels=None, centered: bool = False, title: str = "cosine similarity",
                       save_to=None):
    """Heat map of the pairwise cosine similarity of (N, D) embeddings (token positions or images)."""
    matrix = cosine_similarity_matrix(embeddings, centered=centered)
    size = min(3 + 0.3 * len(matrix), 8)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    shown = axis.imshow(matrix, cmap="viridis", vmin=-1, vmax=1)
    figure.colorbar(shown, ax=axis, fraction=0.046)
    if labels is not None:
        axis.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        axis.set_yticks(range(len(labels)), labels, fontsize=7)
    axis.set_title(title)
    figure.tight_layout()
    return save_figure(figure, save_to)


class LiveLossPlot:
    """A loss curve that redraws itself while training runs.

    Call it with each step's record (a dict with "step" and "loss", as `recakit.training.train`
    reports them) or with `(step, loss)`; pass it as the training callback. Inside a notebook the
    plot updates in place every `every` calls; elsewhere it only records. `finish()` draws the last
    state and saves it."""

    def __init__(self, *, every: int = 5, title: str = "training loss", save_to=None):
        self.every = max(1, int(every))
        self.title = title
        self.save_to = save_to
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.figure, self.axis = plt.subplots(figsize=(6, 3))
        plt.close(self.figure)  # drawn through the display handle only, never twice by the backend
        self._handle = None

    def __call__(self, record, loss=None):
        step, value = (record["step"], record["loss"]) if isinstance(record, dict) else (record, loss)
        self.steps.append(int(step))
        self.losses.append(float(value))
        if len(self.losses) % self.every == 0:
            self._redraw()

    def _redraw(self):
        self.axis.clear()
        self.axis.plot(self.steps, self.losses, color="#3182bd")
        self.axis.set_xlabel("step")
        self.axis.set_ylabel("loss")
        self.axis.set_title(f"{self.title} (last {self.losses[-1]:.3f})" if self.losses else self.title)
        self.figure.tight_layout()
        if _in_ipython():
            from IPython.display import display

            if self._handle is None:
                self._handle = display(_LiveFigure(self.figure, self.title), display_id=True)
            else:
                self._handle.update(_LiveFigure(self.figure, self.title))

    def finish(self):
        """Draw the final curve, save it to `save_to`, return the figure."""
        self._redraw()
        return save_figure(self.figure, self.save_to)


class _LiveFigure:
    """A figure shown as PNG with a fixed text form. A display updated in place keeps its last
    image in a saved notebook, while nbval (which ignores display updates) sees the first one;
    a text form that does not change with the curve keeps the two comparable."""

    def __init__(self, figure, title: str):
        self.figure, self.title = figure, title

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png")
        return buffer.getvalue()

    def __repr__(self) -> str:
        return f"<live plot: {self.title}>"


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None
