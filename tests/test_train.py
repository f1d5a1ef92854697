"""The training loop on a tiny regression problem: it learns, resumes exactly, saves atomically,
accumulates gradients faithfully, trains only LoRA adapters when asked, and runs RecA end to end."""

import json
import os
import warnings

import pytest
import safetensors.torch
import torch
from conftest import quick_train_command
from safetensors.torch import load_file

import recakit.commands.train as train_command
import recakit.training as train_module
from recakit import lora
from recakit.images import read_pairs
from recakit.objective import reca_loss_fn
from recakit.training import batch_indices, sample_seeds, train


class TinyNet(torch.nn.Module):
    def __init__(self, init_seed=0, dropout=0.0):
        super().__init__()
        torch.manual_seed(init_seed)
        self.fc1 = torch.nn.Linear(4, 16)
        self.dropout = torch.nn.Dropout(dropout)
        self.fc2 = torch.nn.Linear(16, 1)

    def forward(self, x):
        return self.fc2(self.dropout(torch.tanh(self.fc1(x))))


def make_data(n=40):
    generator = torch.Generator().manual_seed(123)
    x = torch.randn(n, 4, generator=generator)
    y = x[:, :1] * 2 - x[:, 1:2] + 0.5 * x[:, 2:3] * x[:, 3:4]
    return list(zip(x, y))


def noisy_mse(model, examples, seeds):
    """Mean squared error with per-example input noise drawn from the example's own seed."""
    x = torch.stack([x for x, _ in examples])
    y = torch.stack([y for _, y in examples])
    noise = torch.stack([torch.randn(4, generator=torch.Generator().manual_seed(s)) for s in seeds])
    return torch.nn.functional.mse_loss(model(x + 0.01 * noise), y)


def losses(history):
    return [record["loss"] for record in history]


def quiet(**options):
    return dict(progress=False, mixed_precision="no", **options)


def test_loss_falls_on_a_learnable_problem():
    history = train(TinyNet(), noisy_mse, make_data(), steps=60, batch_size=8, lr=3e-2, schedule="constant", **quiet())
    assert [record["step"] for record in history] == list(range(1, 61))
    first, last = losses(history)[:5], losses(history)[-5:]
    assert sum(last) < 0.3 * sum(first)


def test_recakit_train_is_the_training_function_even_after_the_module_is_imported():
    import recakit

    assert recakit.train is train and train_module.train is train


def test_batches_cover_each_epoch_once_and_depend_only_on_seed_and_step():
    n, batch = 10, 4
    epoch_positions = [i for step in range(5) for i in batch_indices(n, batch, step, seed=3)]
    assert sorted(epoch_positions[:10]) == list(range(10))
    assert sorted(epoch_positions[10:20]) == list(range(10))
    assert epoch_positions[:10] != epoch_positions[10:20]  # a fresh order per epoch
    assert batch_indices(n, batch, 2, seed=3) == epoch_positions[8:12]
    assert batch_indices(n, batch, 2, seed=4) != batch_indices(n, batch, 2, seed=3)
    assert sample_seeds(8, 5, seed=1) == sample_seeds(8, 5, seed=1)
    assert sample_seeds(8, 5, seed=1) != sample_seeds(8, 6, seed=1)
    assert len(set(sample_seeds(8, 5, seed=1))) == 8


def test_loss_fn_gets_the_global_batch_in_micro_batches_with_its_seeds():
    data = make_data(12)
    seen = []

    def recording_loss(model, examples, seeds):
        seen.append(([next(i for i, d in enumerate(data) if d is example) for example in examples], seeds))
        return noisy_mse(model, examples, seeds)

    train(TinyNet(), recording_loss, data, steps=3, batch_size=8, grad_accum=4, **quiet())
    assert len(seen) == 12 and all(len(indices) == 2 for indices, _ in seen)
    for step in range(3):
        calls = seen[4 * step : 4 * step + 4]
        assert [i for indices, _ in calls for i in indices] == batch_indices(12, 8, step, seed=0)
        assert [s for _, seeds in calls for s in seeds] == sample_seeds(8, step, seed=0)


def test_an_optimizer_factory_replaces_the_default_adamw():
    model, built = TinyNet(), []

    def sgd_with_momentum(parameters):
        built.append(torch.optim.SGD(parameters, lr=1e-2, momentum=0.9))
        return built[-1]

    model.fc1.requires_grad_(False)
    train(model, noisy_mse, make_data(), steps=3, batch_size=8, optimizer_factory=sgd_with_momentum, **quiet())
    (optimizer,) = built
    stepped = [p for p, state in optimizer.state.items() if "momentum_buffer" in state]
    assert {id(p) for p in stepped} == {id(p) for p in model.fc2.parameters()}


def test_gradient_accumulation_matches_the_full_batch():
    whole, accumulated = TinyNet(), TinyNet()
    options = quiet(steps=8, batch_size=8, lr=1e-2, warmup_steps=2)
    full = train(whole, noisy_mse, make_data(), **options)
    split = train(accumulated, noisy_mse, make_data(), grad_accum=2, **options)
    assert losses(split) == pytest.approx(losses(full), rel=1e-5)
    for a, b in zip(whole.parameters(), accumulated.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def stop_at(step, error):
    def callback(record):
        if record["step"] == step:
            raise error

    return callback


@pytest.mark.parametrize("error, saved_step", [(RuntimeError("crash"), 5), (KeyboardInterrupt(), 7)])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, error, saved_step):
    # Dropout makes the losses depend on the global RNG too, which the checkpoint must restore.
    options = quiet(steps=10, batch_size=8, lr=1e-2, warmup_steps=3, seed=5)
    reference_model = TinyNet(dropout=0.2)
    reference = train(reference_model, noisy_mse, make_data(), **options)

    with pytest.raises(type(error)):
        train(
            TinyNet(dropout=0.2),
            noisy_mse,
            make_data(),
            out_dir=tmp_path,
            save_every=5,
            callback=stop_at(7, error),
            **options,
        )
    state = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == saved_step
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == 7

    resumed_model = TinyNet(init_seed=99, dropout=0.2)  # its own weights must be replaced
    resumed = train(resumed_model, noisy_mse, make_data(), out_dir=tmp_path, save_every=5, **options)
    assert losses(resumed) == losses(reference)
    for a, b in zip(reference_model.parameters(), resumed_model.parameters()):
        assert torch.equal(a, b)
    on_disk = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert on_disk == resumed

    def must_not_run(*args):
        raise AssertionError("a finished run trained again")

    assert train(TinyNet(), must_not_run, make_data(), out_dir=tmp_path, **options) == resumed


def test_no_resume_starts_over(tmp_path):
    options = quiet(steps=4, batch_size=8, lr=1e-2, out_dir=tmp_path)
    first = train(TinyNet(), noisy_mse, make_data(), **options)
    again = train(TinyNet(), noisy_mse, make_data(), resume=False, **options)
    assert losses(again) == losses(first)
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == 4


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    options = quiet(batch_size=8, lr=1e-2, out_dir=tmp_path)
    reference = train(TinyNet(), noisy_mse, make_data(), steps=10, **quiet(batch_size=8, lr=1e-2))
    with pytest.raises(RuntimeError):
        train(
            TinyNet(),
            noisy_mse,
            make_data(),
            steps=10,
            save_every=5,
            callback=stop_at(6, RuntimeError("stop")),
            **options,
        )

    def half_written(tensors, filename, *args, **kwargs):
        with open(filename, "wb") as file:
            file.write(b"\0" * 100)
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", half_written)
    with pytest.raises(OSError, match="disk full"):
        train(TinyNet(), noisy_mse, make_data(), steps=10, save_every=5, **options)
    monkeypatch.undo()
    assert json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())["step"] == 5
    load_file(tmp_path / "checkpoint" / "trainable.safetensors")

    resumed = train(TinyNet(init_seed=7), noisy_mse, make_data(), steps=10, save_every=5, **options)
    assert losses(resumed) == losses(reference)


def test_a_crash_between_the_two_renames_resumes_from_the_old_checkpoint(tmp_path, monkeypatch):
    options = quiet(steps=10, batch_size=8, lr=1e-2, out_dir=tmp_path, save_every=5)
    reference = train(TinyNet(), noisy_mse, make_data(), **quiet(steps=10, batch_size=8, lr=1e-2))
    real_replace = os.replace

    def fail_on_the_new_checkpoint(source, target):
        if str(source).endswith("checkpoint.tmp") and str(target).endswith("checkpoint"):
            raise OSError("power cut")
        real_replace(source, target)

    with pytest.raises(RuntimeError):
        train(TinyNet(), noisy_mse, make_data(), callback=stop_at(6, RuntimeError("stop")), **options)
    monkeypatch.setattr(train_module.os, "replace", fail_on_the_new_checkpoint)
    with pytest.raises(OSError, match="power cut"):
        train(TinyNet(), noisy_mse, make_data(), **options)
    monkeypatch.undo()
    assert not (tmp_path / "checkpoint").exists() and (tmp_path / "checkpoint.old").exists()
    resumed = train(TinyNet(), noisy_mse, make_data(), **options)
    assert losses(resumed) == losses(reference)
    assert not (tmp_path / "checkpoint.old").exists()


def test_resuming_with_another_seed_is_refused(tmp_path):
    train(TinyNet(), noisy_mse, make_data(), steps=2, batch_size=4, out_dir=tmp_path, **quiet())
    with pytest.raises(ValueError, match="seed"):
        train(TinyNet(), noisy_mse, make_data(), steps=4, batch_size=4, seed=1, out_dir=tmp_path, **quiet())


def test_lora_trains_only_the_adapters(tmp_path):
    model = TinyNet()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    history = train(
        model,
        noisy_mse,
        make_data(),
        steps=5,
        batch_size=8,
        lr=1e-2,
        lora={"r": 4, "target_modules": ["fc1"]},
        out_dir=tmp_path,
        **quiet(),
    )
    assert len(history) == 5
    after = dict(model.named_parameters())
    assert torch.equal(after["fc1.base_layer.weight"], before["fc1.weight"])
    assert torch.equal(after["fc2.weight"], before["fc2.weight"])
    assert after["fc1.lora_B.default.weight"].abs().sum() > 0  # LoRA B starts at zero
    saved = load_file(tmp_path / "checkpoint" / "trainable.safetensors")
    assert saved and all(".lora_" in name for name in saved)
    assert (tmp_path / "checkpoint" / "adapter" / "adapter_model.safetensors").exists()


def test_bf16_runs_the_loss_under_autocast_and_keeps_float32_weights():
    seen = []

    def recording_loss(model, examples, seeds):
        seen.append(model.fc1(torch.stack([x for x, _ in examples])).dtype)
        return noisy_mse(model, examples, seeds)

    model = TinyNet()
    train(model, recording_loss, make_data(), steps=1, batch_size=4, progress=False, mixed_precision="no")
    train(model, recording_loss, make_data(), steps=1, batch_size=4, progress=False, mixed_precision="bf16")
    assert seen == [torch.float32, torch.bfloat16]
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_merge_lora_folds_the_adapters_into_the_original_layers():
    model, inputs = TinyNet(), torch.randn(5, 4)
    train(
        model,
        noisy_mse,
        make_data(),
        steps=3,
        batch_size=8,
        lr=1e-2,
        lora={"r": 2, "target_modules": ["fc1"]},
        **quiet(),
    )
    with torch.no_grad():
        with_adapters = model(inputs)
        lora.merge_lora(model)
        merged = model(inputs)
    assert sorted(model.state_dict()) == sorted(TinyNet().state_dict())
    assert type(model.fc1) is torch.nn.Linear
    torch.testing.assert_close(merged, with_adapters)
    with torch.no_grad():
        assert not torch.allclose(merged, TinyNet()(inputs))  # the adapters did change the output


def test_a_lora_run_resumes_exactly(tmp_path):
    options = quiet(steps=6, batch_size=8, lr=1e-2, lora={"r": 2, "target_modules": ["fc1", "fc2"]})
    reference = train(TinyNet(), noisy_mse, make_data(), **options)
    with pytest.raises(KeyboardInterrupt):
        train(TinyNet(), noisy_mse, make_data(), out_dir=tmp_path, callback=stop_at(3, KeyboardInterrupt()), **options)
    resumed = train(TinyNet(), noisy_mse, make_data(), out_dir=tmp_path, **options)
    assert losses(resumed) == losses(reference)


def test_default_lora_targets_follow_what_recA_trains_even_when_quantized():
    def block(trained):
        module = torch.nn.Module()
        module.norm = torch.nn.LayerNorm(4).requires_grad_(trained)
        module.proj = torch.nn.Linear(4, 4, bias=False)
        # what a quantized layer looks like: integer weights, which can never require grad
        module.proj.weight = torch.nn.Parameter(torch.zeros(4, 4, dtype=torch.int8), requires_grad=False)
        return module

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.trained, self.frozen = block(True), block(False)
            self.head = torch.nn.Linear(4, 4)
            self.frozen_float = torch.nn.Linear(4, 4).requires_grad_(False)
            self.text_head = torch.nn.Linear(4, 4)

        def get_output_embeddings(self):
            return self.text_head

    assert lora.default_lora_targets(Model()) == ["trained.proj", "head"]
    with pytest.raises(ValueError, match="--lora-targets"):
        lora.default_lora_targets(Model().requires_grad_(False))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="multiple of grad_accum"):
        train(TinyNet(), noisy_mse, make_data(), steps=1, batch_size=6, grad_accum=4, **quiet())
    with pytest.raises(ValueError, match="empty"):
        train(TinyNet(), noisy_mse, [], steps=1, **quiet())
    frozen = TinyNet().requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad"):
        train(frozen, noisy_mse, make_data(), steps=1, **quiet())
    with pytest.raises(ValueError, match="schedule"):
        train(TinyNet(), noisy_mse, make_data(), steps=1, schedule="linear", **quiet())


def test_a_diverging_loss_stops_before_touching_the_weights():
    model = TinyNet()
    before = [p.detach().clone() for p in model.parameters()]

    def nan_loss(model, examples, seeds):
        return noisy_mse(model, examples, seeds) * float("nan")

    with pytest.raises(FloatingPointError, match="step 1"):
        train(model, nan_loss, make_data(), steps=3, batch_size=4, **quiet())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_schedule_warms_up_then_decays():
    factor = train_module._lr_factor("cosine", warmup_steps=4, steps=20)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(4) == 1.0 and factor(19) < 0.02
    assert train_module._lr_factor("constant", 0, 20)(19) == 1.0


def test_the_cosine_ends_at_the_floor_it_is_given():
    options = quiet(steps=12, batch_size=4, lr=1e-2, warmup_steps=2)
    floored = [record["lr"] for record in train(TinyNet(), noisy_mse, make_data(), lr_floor=0.25, **options)]
    expected = [train_module.scheduled_lr(step, 12, 1e-2, 2, floor=0.25) for step in range(12)]
    assert floored == pytest.approx(expected)
    assert floored[-1] > 0.25 * 1e-2 > train(TinyNet(), noisy_mse, make_data(), **options)[-1]["lr"]
    with pytest.raises(ValueError, match="lr_floor"):
        train(TinyNet(), noisy_mse, make_data(), lr_floor=1.5, **options)


def test_numbers_a_loss_function_logs_are_averaged_into_each_step_record():
    def mse_and_its_half(model, examples, seeds):
        loss = noisy_mse(model, examples, seeds)
        return loss, {"half": float(loss.detach()) / 2, "examples": len(examples)}

    history = train(TinyNet(), mse_and_its_half, make_data(), steps=4, batch_size=8, grad_accum=2, **quiet())
    for record in history:
        assert record["half"] == pytest.approx(record["loss"] / 2)
        assert record["examples"] == 4  # the micro-batch's size, averaged over the two micro-batches
    with pytest.raises(ValueError, match="lr"):
        train(TinyNet(), lambda *args: (noisy_mse(*args), {"lr": 1.0}), make_data(), steps=1, **quiet())


# -- RecA end to end -----------------------------------------------------------------------------------


def tiny_images(folder, count=4):
    from PIL import Image

    folder.mkdir()
    for i in range(count):
        Image.new("RGB", (32, 32), ((60 * i) % 256, 100, 200 - 40 * i)).save(folder / f"{i}.png")
    return sorted(folder.iterdir())


def test_reca_trains_a_tiny_janus(tmp_path):
    import recakit

    model, processor = recakit.tiny_janus()
    recakit.freeze_for_reca(model)
    images = tiny_images(tmp_path / "images")
    history = train(model, reca_loss_fn(processor), images, steps=2, batch_size=2, lr=1e-3, **quiet())
    assert all(torch.isfinite(torch.tensor(record["loss"])) for record in history)
    assert history[0]["grad_norm"] > 0


@pytest.mark.parametrize("lora", [False, True])
def test_cli_trains_a_tiny_janus_from_a_folder(tmp_path, lora):
    import recakit
    from recakit.commands.main import main

    model, processor = recakit.tiny_janus()
    model.save_pretrained(tmp_path / "base")
    processor.save_pretrained(tmp_path / "base")
    tiny_images(tmp_path / "images")
    out = tmp_path / "run"
    assert (
        main(
            quick_train_command(tmp_path / "base", tmp_path / "images", out)
            + (["--lora-r", "4", "--gradient-checkpointing"] if lora else [])
        )
        == 0
    )
    assert len((out / "history.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"] == 2
    assert (out / "final" / "adapter" / "adapter_config.json").exists() == lora
    reloaded, _ = recakit.load_model(str(out / "final"), device="cpu")
    changed = {name for (name, a), b in zip(model.named_parameters(), reloaded.parameters()) if not torch.equal(a, b)}
    assert changed and not any(name.startswith("model.vision_model.") for name in changed)


def write_pairs(tmp_path, images, captions=("a pale square", "a bright square")):
    """A pairs file beside `images`' folder, with relative image paths."""
    lines = [
        json.dumps({"image": f"{image.parent.name}/{image.name}", "caption": caption})
        for image, caption in zip(images, captions)
    ]
    (tmp_path / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "pairs.jsonl"


def test_read_pairs_resolves_paths_and_names_the_bad_line(tmp_path):
    images = tiny_images(tmp_path / "images", count=2)
    pairs = read_pairs(write_pairs(tmp_path, images))
    assert pairs == [(images[0], "a pale square"), (images[1], "a bright square")]
    bad = {
        '{"image": "images/0.png", "caption": "ok"}\nnot json': "line 2: not JSON",
        '{"image": "images/0.png"}': "line 1: expected",
        '{"image": "images/0.png", "caption": "  "}': "non-empty caption",
        '{"image": "images/9.png", "caption": "gone"}': "line 1: image .* does not exist",
        "\n\n": "no pairs",
    }
    for text, message in bad.items():
        (tmp_path / "bad.jsonl").write_text(text)
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            read_pairs(tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_pairs(tmp_path / "missing.jsonl")


def test_i2t_pairs_are_drawn_per_image_so_micro_batches_agree(tmp_path):
    import recakit

    model, processor = recakit.tiny_janus()
    model.eval()
    images = tiny_images(tmp_path / "images")
    pairs = read_pairs(write_pairs(tmp_path, images[:2]))
    seeds = [11, 12, 13, 14]
    with torch.no_grad():
        plain = reca_loss_fn(processor)(model, images, seeds).item()
        mixed_fn = reca_loss_fn(processor, i2t_pairs=pairs)
        mixed = mixed_fn(model, images, seeds).item()
        halves = [mixed_fn(model, images[:2], seeds[:2]).item(), mixed_fn(model, images[2:], seeds[2:]).item()]
        unweighted = reca_loss_fn(processor, i2t_pairs=pairs, i2t_weight=0.0)(model, images, seeds).item()
    assert mixed > plain + 0.5  # an untrained model's caption loss is large
    assert mixed == pytest.approx(sum(halves) / 2, rel=1e-5)
    assert unweighted == pytest.approx(plain, abs=1e-6)
    with pytest.raises(ValueError, match="empty"):
        reca_loss_fn(processor, i2t_pairs=[])
    with pytest.raises(ValueError, match="negative"):
        reca_loss_fn(processor, i2t_pairs=pairs, i2t_weight=-1.0)


def test_cli_i2t_trains_the_whole_text_head_where_reca_alone_touches_a_few_rows(tmp_path, capsys):
    # tiny_janus ties the text head to the input embeddings, so RecA alone moves the rows of the
    # instruction tokens it embeds; image-to-text's softmax over the vocabulary moves every row
    import recakit
    from recakit.commands.main import main

    model, processor = recakit.tiny_janus()
    model.save_pretrained(tmp_path / "base")
    processor.save_pretrained(tmp_path / "base")
    images = tiny_images(tmp_path / "images")
    pairs = write_pairs(tmp_path, images[:2])
    head = model.get_output_embeddings().weight
    rows_changed = {}
    for mixed in (False, True):
        out = tmp_path / f"run_{mixed}"
        command = quick_train_command(tmp_path / "base", tmp_path / "images", out, "--weight-decay", "0")
        # weight decay off: decay alone would move every row of the head
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main(command + (["--i2t", str(pairs)] if mixed else [])) == 0
        # Janus shares its language model: training without pairs says so once, and names the flag
        advice = [w for w in caught if "--i2t" in str(w.message) and "one language model" in str(w.message)]
        assert len(advice) == (0 if mixed else 1)
        reloaded, _ = recakit.load_model(str(out / "final"), device="cpu")
        changed = (reloaded.get_output_embeddings().weight != head).any(dim=1)
        rows_changed[mixed] = changed.float().mean().item()
    assert 0 < rows_changed[False] < 0.5
    assert rows_changed[True] == 1.0
    assert "image-to-text from 2 pairs" in capsys.readouterr().out


def test_cli_optimizer_defaults_are_harmons_recipe(tmp_path, monkeypatch):
    from recakit.commands.main import build_parser, main

    args = build_parser().parse_args(["train", "--model", "toy", "--images", "x", "--out", "y"])
    assert (args.lr, tuple(args.adam_betas), args.weight_decay, args.schedule, args.max_grad_norm) == (
        1e-5,
        (0.9, 0.95),
        0.02,
        "cosine",
        1.0,
    )
    received = {}

    def fake_train(model, loss_fn, data, **options):
        received.update(options)
        return []

    monkeypatch.setattr(train_command, "train", fake_train)
    monkeypatch.setattr(train_command, "_save_final", lambda *args, **kwargs: None)
    tiny_images(tmp_path / "images")
    assert (
        main(
            [
                "train",
                "--model",
                "toy",
                "--images",
                str(tmp_path / "images"),
                "--out",
                str(tmp_path / "run"),
                "--steps",
                "400",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert {
        key: received[key] for key in ("lr", "betas", "weight_decay", "warmup_steps", "schedule", "max_grad_norm")
    } == {
        "lr": 1e-5,
        "betas": (0.9, 0.95),
        "weight_decay": 0.02,
        "warmup_steps": 4,
        "schedule": "cosine",
        "max_grad_norm": 1.0,
    }


def test_cli_refuses_bad_requests_before_loading_anything(tmp_path, capsys):
    from recakit.commands.main import main

    (tmp_path / "images").mkdir()
    command = ["train", "--model", "toy", "--images", str(tmp_path / "images"), "--out", str(tmp_path / "run")]
    assert main(command) == 2
    assert "no image files" in capsys.readouterr().err
    assert main(command + ["--quantization", "nf4"]) == 2
    assert "--lora-r" in capsys.readouterr().err
    tiny_images(tmp_path / "more")
    command = ["train", "--model", "toy", "--images", str(tmp_path / "more"), "--out", str(tmp_path / "run")]
    assert main(command + ["--i2t", str(tmp_path / "none.jsonl")]) == 2
    assert "none.jsonl does not exist" in capsys.readouterr().err


def test_cli_trains_the_toy_with_lora(tmp_path):
    from recakit.commands.main import main

    tiny_images(tmp_path / "images")
    out = tmp_path / "run"
    assert main(quick_train_command("toy", tmp_path / "images", out, "--lora-r", "4")) == 0
    assert (out / "final" / "adapter" / "adapter_config.json").exists()
    assert len((out / "history.jsonl").read_text().splitlines()) == 2


def test_cli_refuses_i2t_on_the_toy(tmp_path, capsys):
    from recakit.commands.main import main

    images = tiny_images(tmp_path / "images")
    command = [
        "train",
        "--model",
        "toy",
        "--images",
        str(tmp_path / "images"),
        "--steps",
        "1",
        "--out",
        str(tmp_path / "run"),
        "--i2t",
        str(write_pairs(tmp_path, images)),
    ]
    assert main(command) == 2
    assert "--i2t would train nothing on ToyUnifiedModel" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
