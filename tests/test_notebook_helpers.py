"""recakit.notebook: papermill strings become typed parameters; the widget panel never blocks."""

from pathlib import Path

import pytest
from PIL import Image

from recakit.notebook import check_device, coerce_parameters, coerce_value, generation_panel, in_colab


@pytest.mark.parametrize(
    "text, expected",
    [
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("true", True),
        ("YES", True),
        (True, True),
        (0, False),
    ],
)
def test_booleans_from_papermill_strings(text, expected):
    assert coerce_value("QUICK", text, bool) is expected


def test_bad_values_name_the_parameter():
    with pytest.raises(ValueError, match="QUICK"):
        coerce_value("QUICK", "maybe", bool)
    with pytest.raises(ValueError, match="STEPS"):
        coerce_value("STEPS", "many", int)
    with pytest.raises(ValueError, match="STEPS"):
        coerce_value("STEPS", 2.5, int)


def test_coerce_parameters_uses_the_cell_annotations():
    namespace = {
        "QUICK": "false",
        "STEPS": "3",
        "LR": 1,
        "OUT_DIR": "runs/x",
        "__annotations__": {"QUICK": bool, "STEPS": int, "LR": float, "OUT_DIR": Path},
    }
    values = coerce_parameters(namespace)
    assert values == {"QUICK": False, "STEPS": 3, "LR": 1.0, "OUT_DIR": Path("runs/x")}
    assert namespace["QUICK"] is False and isinstance(namespace["LR"], float)
    with pytest.raises(ValueError, match="typed parameters"):
        coerce_parameters({"QUICK": True})


def test_check_device_on_a_cpu_machine():
    assert check_device("cpu") == "cpu"
    assert not in_colab()
    with pytest.raises(ValueError):
        check_device("tpu")


def test_panel_generates_with_its_widget_values_without_a_click():
    calls = []

    def render(prompt, seed, cfg_scale):
        calls.append((prompt, seed, cfg_scale))
        return [Image.new("RGB", (4, 4))]

    panel = generation_panel(render, prompt="a blue square", seed=7, cfg_scale=2.0)
    assert calls == []  # building the panel renders nothing: papermill must not wait on it
    panel.cfg.value = 4.5
    panel.generate()
    panel.button.click()
    assert calls == [("a blue square", 7, 4.5)] * 2


def test_panel_shows_its_image_inside_the_widget_and_prints_nothing(capsys):
    # the image goes onto the Output widget's model; nothing reaches the cell, whatever the front end
    panel = generation_panel(lambda prompt, seed, cfg_scale: Image.new("RGB", (4, 4), "red"))
    panel.generate()
    panel.generate()
    (shown,) = panel.output.outputs  # the second draw replaced the first
    assert shown["output_type"] == "display_data" and "image/png" in shown["data"]
    assert capsys.readouterr().out == ""


def test_figure_summary_follows_the_plotted_data_not_the_rendering():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recakit.notebook import figure_summary

    def summary(values, title="loss", dpi=100, pixels=((0.0, 1.0), (1.0, 0.5))):
        figure, axis = plt.subplots(dpi=dpi)
        axis.plot(values)
        axis.imshow(pixels)
        axis.set_title(title)
        text = figure_summary(figure)
        plt.close(figure)
        return text

    assert summary([1.0, 2.0]) == summary([1.0, 2.0], dpi=50) == summary([1.0, 2.0 + 1e-9])
    assert summary([1.0, 2.0]) != summary([1.0, 2.1])
    assert summary([1.0, 2.0]) != summary([1.0, 2.0], title="accuracy")
    # an image's float noise (another CPU, another thread count) draws the same colours; a change does not
    assert summary([1.0, 2.0]) == summary([1.0, 2.0], pixels=((0.0, 1.0), (1.0, 0.5 + 1e-7)))
    assert summary([1.0, 2.0]) != summary([1.0, 2.0], pixels=((0.0, 1.0), (1.0, 0.7)))
    assert summary([1.0, 2.0]).startswith("<Figure 6.4x4.8 in, 1 axes, data ")


def test_run_record_tells_models_and_retrained_folders_apart(tmp_path):
    import os

    from recakit.notebook import run_record

    folder = tmp_path / "reca_model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    first = run_record(str(folder), "mini")
    assert run_record("toy", "mini") != run_record("toy-reca", "mini") != run_record("toy-reca", "official")
    assert run_record("toy", "mini")["folder"] != run_record("toy-reca", "mini")["folder"]
    os.utime(folder / "model.safetensors", ns=(0, first["written"] + 10**9))  # retrained in place
    second = run_record(str(folder), "mini")
    assert second["folder"] == first["folder"] and second != first


def test_restart_notice_names_a_package_upgraded_after_import(monkeypatch, capsys):
    import importlib.metadata

    from recakit import notebook

    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "999.0" if name == "pillow" else real_version(name))
    assert notebook.restart_notice()
    assert "PIL" in (out := capsys.readouterr().out) and "Runtime > Restart session" in out
    monkeypatch.setattr(importlib.metadata, "version", real_version)
    assert not notebook.restart_notice()
