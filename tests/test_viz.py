"""recakit.viz: each figure is drawn, saved where asked, and rejects input it cannot draw."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from PIL import Image

from recakit import viz


def _images(n):
    return [Image.new("RGB", (8, 8), (30 * i, 0, 0)) for i in range(n)]


def test_image_grid_wraps_a_flat_list_and_saves(tmp_path):
    figure = viz.image_grid(_images(5), titles=list("abcde"), ncols=3, save_to=tmp_path / "sub" / "grid.png")
    assert len(figure.axes) == 6  # 2 rows x 3 columns, the last cell blank
    assert [axis.get_title() for axis in figure.axes[:5]] == list("abcde")
    assert (tmp_path / "sub" / "grid.png").stat().st_size > 0


def test_image_grid_takes_rows_with_labels():
    figure = viz.image_grid([_images(2), _images(2)], row_labels=["base", "RecA"])
    assert [figure.axes[0].get_ylabel(), figure.axes[2].get_ylabel()] == ["base", "RecA"]
    with pytest.raises(ValueError):
        viz.image_grid([])


def test_token_layout_labels_counts_and_marks_the_loss(tmp_path):
    segments = [
        ("bos", 1, "special"),
        ("instruction", 12, "text"),
        ("embeddings", 576, "condition"),
        ("boi", 1, "special"),
        ("image tokens", 576, "target"),
    ]
    figure = viz.token_layout(segments, save_to=tmp_path / "layout.png")
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert "embeddings\n576" in texts and texts.count("loss here") == 1
    assert (tmp_path / "layout.png").exists()
    with pytest.raises(ValueError, match="unknown token roles"):
        viz.token_layout([("x", 3, "mystery")])


def test_cosine_similarity_matrix_matches_definition():
    vectors = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    expected = np.array([[1, 0, -1], [0, 1, 0], [-1, 0, 1]], dtype=np.float32)
    assert np.allclose(viz.cosine_similarity_matrix(vectors), expected, atol=1e-6)
    with pytest.raises(ValueError):
        viz.cosine_similarity_matrix(torch.zeros(2, 3, 4))


def test_centering_removes_a_shared_component():
    shared = torch.tensor([10.0, 10.0, 0.0])
    vectors = torch.stack([shared + torch.tensor([0.0, 0.0, 1.0]), shared - torch.tensor([0.0, 0.0, 1.0])])
    assert viz.cosine_similarity_matrix(vectors)[0, 1] > 0.98
    assert viz.cosine_similarity_matrix(vectors, centered=True)[0, 1] == pytest.approx(-1.0)


def test_live_loss_plot_records_dicts_and_pairs(tmp_path):
    plot = viz.LiveLossPlot(every=2, save_to=tmp_path / "loss.png")
    plot({"step": 0, "loss": 2.5})
    plot(1, 1.25)
    plot.finish()
    assert plot.steps == [0, 1] and plot.losses == [2.5, 1.25]
    assert list(plot.axis.lines[0].get_ydata()) == [2.5, 1.25]
    assert (tmp_path / "loss.png").exists()


def test_flow_diagram_draws_every_box_and_arrow_and_rejects_bad_input(tmp_path):
    boxes = {
        "image": ("image x", (0, 0), "data"),
        "encoder": ("encoder", (3, 0), "frozen"),
        "generator": ("generator", (6, 1), "trained"),
    }
    arrows = [("image", "encoder", ""), ("encoder", "generator", "RecA")]
    figure = viz.flow_diagram(boxes, arrows, save_to=tmp_path / "flow.png")
    axis = figure.axes[0]
    assert {"image x", "encoder", "generator", "RecA"} <= {text.get_text() for text in axis.texts}
    assert len([child for child in axis.get_children() if type(child).__name__ == "Annotation"]) == 2
    assert [text.get_text() for text in axis.get_legend().get_texts()] == ["frozen", "trained", "data"]
    assert (tmp_path / "flow.png").stat().st_size > 0
    with pytest.raises(ValueError, match="unknown box roles"):
        viz.flow_diagram({"a": ("a", (0, 0), "mystery")}, [])
    with pytest.raises(ValueError, match="do not exist"):
        viz.flow_diagram(boxes, [("image", "decoder", "")])


def test_the_reca_pipeline_marks_the_generator_trained_and_the_encoders_frozen():
    boxes, _arrows = viz.RECA_PIPELINE
    roles = {name: role for name, (_label, _xy, role) in boxes.items()}
    assert roles["generator"] == "trained" and roles["encoder"] == roles["vq"] == "frozen"
    texts = {text.get_text() for text in viz.reca_pipeline().axes[0].texts}
    assert "RecA" in texts and "text-to-image: sparse prompt" in texts
