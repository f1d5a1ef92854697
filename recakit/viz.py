"""Every figure the tutorial notebooks draw, in one place so the notebooks stay short.

Each function returns its matplotlib figure and, given `save_to`, also writes it to that file, so
a notebook run leaves its figures in its output folder beside the executed notebook.
Figures: image grids, the RecA pipeline (which parts train, which stay frozen), the coloured
token layout of a RecA training sequence, an embedding similarity heat map and a live loss curve
that doubles as a `recakit.training.train` callback.
(Benchmark plots beside the published numbers live in `recakit.bench.report`.)
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyBboxPatch, Patch

#: colours of the token roles in `token_layout`; "target" marks the positions that carry the loss
ROLE_COLORS = {
    "text": "#9ecae1",  # system prompt, instruction, prompt text
    "special": "#bdbdbd",  # bos, begin-of-image and other markers
    "condition": "#fdae6b",  # understanding embeddings fed in place of a prompt
    "target": "#74c476",  # generation tokens the model must predict
    "pad": "#f0f0f0",
}

#: colours of the boxes in `flow_diagram`
PART_COLORS = {
    "frozen": "#c6dbef",  # weights RecA never updates
    "trained": "#fdae6b",  # weights RecA updates
    "data": "#ffffff",  # inputs, conditions and targets
    "loss": "#a1d99b",
}

#: the RecA pipeline: (label, (x, y), role) per box, then (from, to, arrow label) per arrow
RECA_PIPELINE = (
    {
        "caption": ('caption c\n"a red circle"', (0.0, 3.0), "data"),
        "image": ("image x\n(unlabelled)", (0.0, 1.0), "data"),
        "encoder": (
            "understanding encoder\n+ aligner\n(Janus: SigLIP; toy: conv encoder\n+ understanding LM)",
            (2.9, 1.0),
            "frozen",
        ),
        "condition": ("[instruction; E_und(x)]\ndense prompt", (5.8, 1.0), "data"),
        "generator": ("generator p_θ\n(LLM + generation head;\ntoy: connector + generator)", (8.7, 2.0), "trained"),
        "vq": ("VQ tokenizer", (2.9, -0.6), "frozen"),
        "targets": ("image tokens\nv_1 ... v_T of x", (5.8, -0.6), "data"),
        "loss": ("cross-entropy\nL_RecA (or L_t2i\nfor a caption)", (11.6, 0.7), "loss"),
    },
    [
        ("caption", "generator", "text-to-image: sparse prompt"),
        ("image", "encoder", ""),
        ("encoder", "condition", ""),
        ("condition", "generator", "RecA"),
        ("image", "vq", ""),
        ("vq", "targets", ""),
        ("targets", "loss", "targets (teacher forcing)"),
        ("generator", "loss", "logits"),
    ],
)


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
    return [list(images[start : start + ncols]) for start in range(0, len(images), ncols)]


def image_grid(
    images, *, titles=None, row_labels=None, ncols=None, suptitle=None, cell_size: float = 1.8, save_to=None
):
    """Show PIL images in a grid. `images` is a flat list (wrapped every `ncols`) or a list of rows;
    `titles` follows the same shape as the images (flat or per row)."""
    rows = _as_rows(list(images), ncols)
    if not rows or not rows[0]:
        raise ValueError("image_grid needs at least one image")
    title_rows = _as_rows(list(titles), len(rows[0])) if titles is not None else None
    width = max(len(row) for row in rows)
    figure, axes = plt.subplots(
        len(rows), width, figsize=(cell_size * width, cell_size * len(rows) + 0.3), squeeze=False
    )
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
    handles = [
        Patch(color=color, label=role)
        for role, color in ROLE_COLORS.items()
        if any(role == segment_role for _label, _count, segment_role in segments)
    ]
    axis.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.05), ncol=len(handles), fontsize=8)
    axis.set_xlim(0, left)
    axis.set_ylim(-0.8, 0.5)
    axis.axis("off")
    axis.set_title(title or "token layout (block widths grow with log2 of the token count)")
    return save_figure(figure, save_to)


def flow_diagram(boxes: dict, arrows, *, title: str = "", save_to=None):
    """Boxes joined by arrows. `boxes` maps a name to `(label, (x, y), role)` with role one of
    PART_COLORS (x, y: the box centre, in units of about one box height); `arrows` lists
    `(from name, to name, label)`."""
    unknown = {role for _label, _xy, role in boxes.values()} - set(PART_COLORS)
    if unknown:
        raise ValueError(f"unknown box roles {sorted(unknown)}; use {sorted(PART_COLORS)}")
    missing = {name for start, end, _label in arrows for name in (start, end)} - set(boxes)
    if missing:
        raise ValueError(f"arrows name boxes that do not exist: {sorted(missing)}")
    xs = [x for _label, (x, _y), _role in boxes.values()]
    ys = [y for _label, (_x, y), _role in boxes.values()]
    figure, axis = plt.subplots(figsize=(max(xs) - min(xs) + 3, max(ys) - min(ys) + 2))
    half_width, half_height = 1.2, 0.55
    for label, (x, y), role in boxes.values():
        axis.add_patch(
            FancyBboxPatch(
                (x - half_width, y - half_height),
                2 * half_width,
                2 * half_height,
                boxstyle="round,pad=0.05",
                facecolor=PART_COLORS[role],
                edgecolor="black",
            )
        )
        axis.text(x, y, label, ha="center", va="center", fontsize=8)
    for start, end, label in arrows:
        (x0, y0), (x1, y1) = boxes[start][1], boxes[end][1]
        # leave each box through the side that faces the other box
        dx = half_width if abs(x1 - x0) > 1e-9 else 0.0
        dy = 0.0 if dx else half_height
        begin = (x0 + math.copysign(dx, x1 - x0), y0 + math.copysign(dy, y1 - y0))
        finish = (x1 - math.copysign(dx, x1 - x0), y1 - math.copysign(dy, y1 - y0))
        axis.annotate("", xy=finish, xytext=begin, arrowprops=dict(arrowstyle="->", lw=1.3))
        if label:
            axis.text(
                (begin[0] + finish[0]) / 2,
                (begin[1] + finish[1]) / 2 + 0.15,
                label,
                ha="center",
                va="bottom",
                fontsize=8,
                style="italic",
            )
    handles = [
        Patch(facecolor=color, edgecolor="black", label=role)
        for role, color in PART_COLORS.items()
        if any(role == box_role for _label, _xy, box_role in boxes.values())
    ]
    axis.legend(handles=handles, loc="upper right", fontsize=8)
    axis.set_xlim(min(xs) - half_width - 0.3, max(xs) + half_width + 0.3)
    axis.set_ylim(min(ys) - half_height - 0.3, max(ys) + half_height + 0.6)
    axis.set_aspect("equal")
    axis.axis("off")
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return save_figure(figure, save_to)


def reca_pipeline(*, save_to=None):
    """The two paths into one generator: a caption (text-to-image) and an image's understanding
    embeddings (RecA), both scored against the image's own VQ tokens; frozen parts in blue."""
    boxes, arrows = RECA_PIPELINE
    return flow_diagram(boxes, arrows, title="RecA: one generator, two kinds of prompt", save_to=save_to)


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


def similarity_heatmap(
    embeddings, *, labels=None, centered: bool = False, title: str = "cosine similarity", save_to=None
):
    """Heat map of the pairwise cosine similarity of (N, D) embeddings (token positions or images)."""
    matrix = cosine_similarity_matrix(embeddings, centered=centered)
    size = min(3 + 0.3 * len(matrix), 8)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    shown = axis.imshow(matrix, cmap="viridis", vmin=-1, vmax=1)
    figure.colorbar(shown, ax=axis, fraction=0.046)
    if labels is not None:
        # the rows carry the labels, wrapped so a long caption stays whole; the columns their numbers
        rows = [f"{index}: " + textwrap.fill(str(label), 48) for index, label in enumerate(labels)]
        axis.set_xticks(range(len(labels)), [str(index) for index in range(len(labels))], fontsize=7)
        axis.set_yticks(range(len(labels)), rows, fontsize=7)
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
