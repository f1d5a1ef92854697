"""Presets are complete, checked, and their settings reach the loader, the model and train()."""

import dataclasses

import pytest
import torch
from PIL import Image

from recakit.memory_presets import PRESETS, Preset, get_preset
from recakit.models.janus import tiny_janus
from recakit.objective import freeze_for_reca, reca_loss


def test_required_presets_exist_and_validate():
    for name in ("cpu-tiny", "janus-pro-1b-full-16gb", "janus-pro-7b-qlora-16gb"):
        preset = get_preset(name)
        assert preset.name == name
        assert preset.validate() is preset
        assert preset.batch_size == preset.micro_batch * preset.grad_accum


def test_unknown_preset_lists_the_known_names():
    with pytest.raises(ValueError) as error:
        get_preset("janus-pro-70b")
    for name in PRESETS:
        assert name in str(error.value)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"quantization": "nf4"}, "needs lora"),
        ({"quantization": "fp3"}, "quantization"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"batch_size": 10, "micro_batch": 4}, "multiple of micro_batch"),
        ({"dtype": "float8"}, "dtype"),
        ({"lr": 0.0}, "lr must be"),
        ({"lora": {"r": 0}}, "rank"),
    ],
)
def test_inconsistent_presets_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(get_preset("cpu-tiny"), **change).validate()


def test_load_options_follow_the_preset():
    qlora = get_preset("janus-pro-7b-qlora-16gb")
    assert qlora.load_options() == {"dtype": torch.bfloat16, "quantization": "nf4"}
    assert get_preset("cpu-tiny").load_options()["dtype"] == torch.float32


def test_lora_preset_targets_the_trained_linear_layers():
    model, _ = tiny_janus()
    freeze_for_reca(model)
    options = get_preset("janus-pro-7b-qlora-16gb").train_options(model)
    targets = options["lora"]["target_modules"]
    assert targets and all("vision_model" not in name and "vqmodel" not in name for name in targets)
    assert options["grad_accum"] == 4
    with pytest.raises(ValueError, match="pass the model"):
        get_preset("janus-pro-7b-qlora-16gb").train_options()


def test_gradient_checkpointing_keeps_loss_and_gradients():
    images = [Image.new("RGB", (32, 32), color) for color in ("red", "blue")]
    results = []
    for checkpointing in (False, True):
        model, processor = tiny_janus(seed=4)
        freeze_for_reca(model)
        model.train()
        preset = dataclasses.replace(get_preset("cpu-tiny"), gradient_checkpointing=checkpointing)
        preset.prepare_model(model)
        language_model = model.model.language_model
        flag = getattr(type(language_model), "is_activation_checkpointing", None)
        enabled = language_model.is_activation_checkpointing if flag else language_model.is_gradient_checkpointing
        assert enabled == checkpointing
        loss = reca_loss(model, processor, images, sample_seeds=[1, 2], instruction_dropout=0.0)
        loss.backward()
        results.append((loss.detach(), model.model.generation_head.vision_head.weight.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


def test_make_optimizer_builds_the_named_optimizer_and_steps():
    layer = torch.nn.Linear(4, 3)
    for name in ("adamw", "adamw_fused"):
        preset = dataclasses.replace(get_preset("cpu-tiny"), optimizer=name, weight_decay=0.1)
        optimizer = preset.make_optimizer(layer.parameters())
        assert isinstance(optimizer, torch.optim.AdamW)
        assert [group["weight_decay"] for group in optimizer.param_groups] == [0.1, 0.0]
        before = layer.weight.detach().clone()
        layer(torch.ones(2, 4)).sum().backward()
        optimizer.step()
        assert not torch.equal(before, layer.weight)
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        get_preset("cpu-tiny").make_optimizer(frozen.parameters())


def test_preset_drives_train_on_the_tiny_model():
    from recakit.objective import reca_loss_fn
    from recakit.training import train

    model, processor = tiny_janus(seed=2)
    freeze_for_reca(model)
    preset = dataclasses.replace(get_preset("cpu-tiny"), steps=2, batch_size=4, micro_batch=2)
    images = [Image.new("RGB", (32, 32), color) for color in ("red", "green", "blue", "white")]
    history = train(model, reca_loss_fn(processor), images, progress=False, **preset.train_options())
    assert [record["step"] for record in history] == [1, 2]
    assert all(torch.isfinite(torch.tensor(record["loss"])) for record in history)


def test_preset_is_a_frozen_record():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_preset("cpu-tiny").lr = 1.0
    assert isinstance(get_preset("cpu-tiny"), Preset)


def reca_gradients(images, steps=4):
    """The trained weights of the tiny Janus (float32) and the RecA gradients of `steps` float32
    AdamW steps at lr 1e-5: the float32 reference run."""
    model, processor = tiny_janus(seed=3)
    freeze_for_reca(model)
    trained = [p for p in model.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in trained]
    optimizer = torch.optim.AdamW(trained, lr=1e-5, betas=(0.9, 0.95))
    gradients = []
    for step in range(steps):
        reca_loss(model, processor, images, instruction_dropout=0.0, sample_seeds=[step, step + 10]).backward()
        gradients.append([p.grad.clone() for p in trained])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return start, gradients


def replayed_update(preset, dtype, start, gradients):
    """Each weight's change when `preset`'s optimizer applies the reference run's gradients to
    weights stored in `dtype` (the optimizer's exact weights where it tracks them). Replaying the
    same gradients isolates what the weights' storage loses from what bf16 arithmetic changes."""
    weights = [torch.nn.Parameter(p.to(dtype, copy=True)) for p in start]
    optimizer = preset.make_optimizer(weights)
    for step_gradients in gradients:
        for p, g in zip(weights, step_gradients):
            p.grad = g.to(dtype)
        optimizer.step()
    exact = getattr(optimizer, "exact_weight", lambda p: p.detach().float())
    return torch.cat([(exact(p) - p0.to(dtype).float()).reshape(-1) for p, p0 in zip(weights, start)])


def test_the_1b_full_finetune_preset_learns_what_a_float32_run_learns():
    pytest.importorskip("bitsandbytes")
    images = [Image.new("RGB", (32, 32), color) for color in ("red", "blue")]
    preset = get_preset("janus-pro-1b-full-16gb")
    assert preset.dtype == "bfloat16" and preset.lr == 1e-5
    start, gradients = reca_gradients(images)
    reference = replayed_update(dataclasses.replace(preset, optimizer="adamw"), torch.float32, start, gradients)
    compensated = replayed_update(preset, torch.bfloat16, start, gradients)
    # the preset's old setting: bf16 weights and paged 8-bit AdamW, which round most updates away
    plain_bf16 = replayed_update(
        dataclasses.replace(preset, optimizer="paged_adamw_8bit"), torch.bfloat16, start, gradients
    )

    def error(update):
        return ((update - reference).norm() / reference.norm()).item()

    assert error(compensated) < 0.05, error(compensated)  # about what 8-bit moments cost float32 weights
    assert error(plain_bf16) > 0.7, error(plain_bf16)
