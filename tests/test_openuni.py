"""OpenUni on its tiny offline twin: the flow-matching RecA loss, the SANA sampler, upstream's
checkpoint format, loading and the command line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import quick_train_command
from PIL import Image

import recakit
from recakit.bench import dpg
from recakit.models.openuni import OPENUNI_SIZES, read_checkpoint, tiny_openuni

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"progress": False}


@pytest.fixture(scope="module")
def openuni_tiny():
    """(model, tokenizer) shared by the module's read-only tests."""
    return tiny_openuni(seed=0)


@pytest.fixture(scope="module")
def openuni_folder(tmp_path_factory, openuni_tiny):
    """The tiny OpenUni saved the way `recakit train` saves a model."""
    model, tokenizer = openuni_tiny
    folder = tmp_path_factory.mktemp("openuni") / "tiny"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def noise_images(count, size=(48, 40)):
    return [
        Image.fromarray((np.random.RandomState(i).rand(size[1], size[0], 3) * 255).astype(np.uint8))
        for i in range(count)
    ]


def noise_image_folder(folder: Path, count: int = 2) -> Path:
    """A folder of `count` noise images, 0.png, 1.png, ...: what `recakit train --images` reads."""
    folder.mkdir()
    for i, image in enumerate(noise_images(count)):
        image.save(folder / f"{i}.png")
    return folder


def trained_parts(model):
    return {name.split(".")[0] for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_freeze_leaves_queries_connector_projector_and_sana_to_train():
    model, tokenizer = tiny_openuni(seed=1)
    counts = recakit.freeze_for_reca(model)
    recakit.reca_loss(model, tokenizer, noise_images(2), sample_seeds=[1, 2], instruction_dropout=0.0).backward()
    trained = {"meta_queries", "connector", "projector", "transformer"}
    assert trained_parts(model) == trained
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert not any(p.requires_grad for p in [*model.lmm.parameters(), *model.vae.parameters()])
    assert counts["trainable"] == sum(
        p.numel() for name, p in model.named_parameters() if name.split(".")[0] in trained
    )
    model.train()
    assert not model.lmm.training and not model.vae.training and model.transformer.training


def test_fixed_seeds_fix_the_loss_and_each_image_depends_only_on_its_seed(openuni_tiny):
    model, tokenizer = openuni_tiny
    images = noise_images(2)
    with torch.no_grad():
        loss = recakit.reca_loss(model, tokenizer, images, sample_seeds=[3, 4])
        again = recakit.reca_loss(model, tokenizer, images, sample_seeds=[3, 4])
        other = recakit.reca_loss(model, tokenizer, images, sample_seeds=[5, 6])
        alone = [
            recakit.reca_loss(model, tokenizer, [image], sample_seeds=[seed]) for image, seed in zip(images, [3, 4])
        ]
    assert loss.item() == again.item()
    assert other.item() != loss.item()  # the seeds choose noise and timestep
    assert loss.item() == pytest.approx(sum(x.item() for x in alone) / 2, rel=1e-5)


def test_text_to_image_mixing_uses_the_same_flow_matching_loss(openuni_tiny):
    model, tokenizer = openuni_tiny
    images = noise_images(2)
    with torch.no_grad():
        plain = recakit.reca_loss(model, tokenizer, images, sample_seeds=[1, 2])
        mixed = recakit.reca_loss(model, tokenizer, images, sample_seeds=[1, 2], t2i=(images, ["a dog", "a cat"]))
    assert torch.isfinite(mixed) and mixed.item() > plain.item()


def test_training_images_are_centre_cropped_to_square(openuni_tiny):
    model, tokenizer = openuni_tiny
    wide = noise_images(1, size=(60, 40))[0]
    crop = wide.crop((10, 0, 50, 40))
    with torch.no_grad():
        losses = [
            recakit.reca_loss(model, tokenizer, [image], sample_seeds=[7], instruction_dropout=0.0).item()
            for image in (wide, crop, wide.resize((40, 40)))
        ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    assert losses[0] != pytest.approx(losses[2], rel=1e-6)  # squashing is not cropping


def test_instruction_dropout_keeps_the_image_in_the_prefix(openuni_tiny):
    model, tokenizer = openuni_tiny
    images = noise_images(2)
    fully_dropped = recakit.reca_loss(model, tokenizer, images, sample_seeds=[1, 2], instruction_dropout=1.0)
    kept = recakit.reca_loss(model, tokenizer, images, sample_seeds=[1, 2], instruction_dropout=0.0)
    assert fully_dropped.item() != pytest.approx(kept.item(), rel=1e-6)  # the instruction text went
    vision = model.lmm.model.vision_tower
    saved = {name: value.clone() for name, value in vision.state_dict().items()}
    with torch.no_grad():
        for parameter in vision.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    try:
        changed = recakit.reca_loss(model, tokenizer, images, sample_seeds=[1, 2], instruction_dropout=1.0)
    finally:
        vision.load_state_dict(saved)
    assert changed.item() != pytest.approx(fully_dropped.item(), rel=1e-6)  # the image still speaks


def test_a_dropped_row_is_the_unconditional_prompt_of_guidance(openuni_tiny):
    model, tokenizer = openuni_tiny
    adapter = recakit.adapter_for(model, tokenizer)
    embeddings = adapter.understanding_embeddings(noise_images(2))
    dropped, _ = adapter.prefix_from_embeddings(embeddings, torch.tensor([True, False]), ["Draw it.", "Draw it."])
    unconditional, _ = adapter.prefix_from_text(["anything"], torch.tensor([True]))
    width = unconditional.shape[1]
    assert torch.equal(dropped[0, -width:], unconditional[0])  # no image in the row guidance subtracts


def test_the_queries_read_the_whole_prompt(openuni_tiny):
    model, tokenizer = openuni_tiny
    adapter = recakit.adapter_for(model, tokenizer)

    def conditions(prompts):
        with torch.no_grad():
            return adapter.conditions(*adapter.prefix_from_text(prompts))

    circle, square = conditions(["a red circle"])[0], conditions(["a red square"])[0]
    assert circle.shape == (model.num_queries, model.transformer.config.caption_channels)
    assert not torch.allclose(circle, square, atol=1e-4)  # the prompts differ in their last word only
    padded = conditions(["a red circle on the left of a blue square", "a red circle"])[1]
    assert torch.allclose(padded, circle, atol=1e-5)  # left padding inside a batch changes nothing


def test_the_loss_is_rectified_flow_on_uniform_timesteps():
    """An oracle that knows the clean latents predicts the velocity exactly only if the loss
    noises and targets as upstream: x_t = (1 - s) x + s n, timestep 1000 s, target n - x."""
    model, tokenizer = tiny_openuni(seed=0)
    adapter = recakit.adapter_for(model, tokenizer)
    rows = 200
    latents = adapter.generation_targets(noise_images(1)).expand(rows, -1, -1, -1)
    timesteps = []

    class Oracle(torch.nn.Module):
        def forward(self, hidden_states, encoder_hidden_states, timestep, return_dict):
            timesteps.append(timestep)
            sigma = (timestep / 1000).view(-1, 1, 1, 1)
            return ((hidden_states - latents) / sigma,)

    model.transformer = Oracle()
    with torch.no_grad():
        prefix, mask = adapter.prefix_from_text(["a dog"] * rows)
        loss = adapter.generation_loss(prefix, mask, latents, list(range(rows)))
    assert loss.item() < 1e-6
    drawn = torch.cat(timesteps) / 1000
    assert 0.15 < (drawn < 0.25).float().mean() < 0.35 and 0.15 < (drawn > 0.75).float().mean() < 0.35  # uniform


def test_100_adam_steps_lower_the_fixed_seed_loss():
    torch.manual_seed(0)
    model, tokenizer = tiny_openuni(seed=2)
    recakit.freeze_for_reca(model)
    images = noise_images(2)
    pairs = [[1, 2], [3, 4], [5, 6], [7, 8]]

    def fixed_seed_loss():
        with torch.no_grad():
            return np.mean([recakit.reca_loss(model, tokenizer, images, sample_seeds=pair).item() for pair in pairs])

    before = fixed_seed_loss()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for step in range(100):
        loss = recakit.reca_loss(model, tokenizer, images, sample_seeds=[1000 + 2 * step, 1001 + 2 * step])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert fixed_seed_loss() < 0.8 * before


def test_generate_images_size_seeds_and_batch_independence(openuni_tiny):
    model, tokenizer = openuni_tiny
    prompts = ["a red circle", "a blue star on the left of a green square", "a dog"]
    together = recakit.generate_images(model, tokenizer, prompts, seed=[5, 6, 7], batch_size=3, **QUIET)
    side = model.image_size
    assert all(isinstance(image, Image.Image) and image.size == (side, side) for image in together)
    for i, prompt in enumerate(prompts):
        alone = recakit.generate_images(model, tokenizer, [prompt], seed=[5 + i], **QUIET)[0]
        assert np.array_equal(np.asarray(alone), np.asarray(together[i]))
    other = recakit.generate_images(model, tokenizer, [prompts[0]], seed=[99], **QUIET)[0]
    assert np.abs(np.asarray(other, dtype=int) - np.asarray(together[0], dtype=int)).mean() > 5
    unguided = recakit.generate_images(model, tokenizer, [prompts[0]], seed=[5], cfg_scale=1.0, steps=4, **QUIET)[0]
    assert not np.array_equal(np.asarray(unguided), np.asarray(together[0]))
    with pytest.raises(ValueError, match="token samplers"):
        recakit.generate_images(model, tokenizer, prompts, top_k=5, **QUIET)


def test_reconstruct_runs_the_reca_prefix_through_the_sampler(openuni_tiny):
    model, tokenizer = openuni_tiny
    images = recakit.reconstruct(model, tokenizer, noise_images(2), seed=1, steps=3, **QUIET)
    assert [image.size for image in images] == [(model.image_size, model.image_size)] * 2


def test_an_upstream_state_dict_round_trips_and_wrong_keys_are_named(tmp_path, openuni_tiny):
    source, _ = openuni_tiny
    state = source.checkpoint_state_dict()
    # upstream's module names: the connector is SigLIP-style encoder layers
    for key in (
        "meta_queries",
        "projector.weight",
        "connector.layers.0.self_attn.q_proj.weight",
        "connector.layers.0.layer_norm1.weight",
        "connector.layers.1.mlp.fc2.bias",
    ):
        assert key in state
    assert any(key.startswith("transformer.") for key in state)
    torch.save({"state_dict": state}, tmp_path / "upstream.pth")  # as training frameworks wrap it

    target, tokenizer = tiny_openuni(seed=5)
    report = target.load_checkpoint(read_checkpoint(tmp_path / "upstream.pth"))
    assert report["loaded"] == len(state)
    for key, value in target.checkpoint_state_dict().items():
        assert torch.equal(value, state[key]), key

    # a text-to-image base carries no SANA weights, and frozen InternVL keys are skipped
    glue = {key: value for key, value in state.items() if not key.startswith("transformer.")}
    assert tiny_openuni(seed=6)[0].load_checkpoint({**glue, "lmm.some.weight": torch.zeros(1)})["skipped_frozen"] == 1

    renamed = dict(state)
    renamed["connector.layers.0.mlp.fc9.weight"] = renamed.pop("connector.layers.0.mlp.fc1.weight")
    with pytest.raises(
        ValueError,
        match=r"missing: connector\.layers\.0\.mlp\.fc1\.weight.*"
        r"unexpected: connector\.layers\.0\.mlp\.fc9\.weight",
    ):
        target.load_checkpoint(renamed)
    with pytest.raises(ValueError, match="wrong shape: meta_queries"):
        target.load_checkpoint({**state, "meta_queries": torch.zeros(3, 3)})


def test_a_saved_folder_loads_through_load_model(openuni_tiny, openuni_folder):
    model, tokenizer = openuni_tiny
    loaded, loaded_tokenizer = recakit.load_model(str(openuni_folder), device="cpu")
    images = noise_images(2)
    with torch.no_grad():
        assert recakit.reca_loss(loaded, loaded_tokenizer, images, sample_seeds=[1, 2]).item() == pytest.approx(
            recakit.reca_loss(model, tokenizer, images, sample_seeds=[1, 2]).item(), rel=1e-6
        )
    a = recakit.generate_images(model, tokenizer, ["a cat"], seed=3, steps=4, **QUIET)[0]
    b = recakit.generate_images(loaded, loaded_tokenizer, ["a cat"], seed=3, steps=4, **QUIET)[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_geneval_and_dpg_sample_commands_take_an_openuni_folder(tmp_path, openuni_folder):
    from recakit.commands.main import main

    out = tmp_path / "geneval"
    assert (
        main(
            [
                "geneval",
                "sample",
                "--model",
                str(openuni_folder),
                "--set",
                "mini",
                "--limit",
                "2",
                "--n-per-prompt",
                "2",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    for index in range(2):
        entry = json.loads((out / f"{index:05d}" / "metadata.jsonl").read_text())
        assert "prompt" in entry and "tag" in entry
        samples = sorted((out / f"{index:05d}" / "samples").iterdir())
        assert [path.name for path in samples] == ["0000.png", "0001.png"]
        assert Image.open(samples[0]).size == (32, 32)

    header = ",".join(dpg.CSV_COLUMNS)
    csv = tmp_path / "dpg.csv"
    csv.write_text(header + "\n" + 'cat,"a blue cat",,1,"0",entity,whole,entity - whole (cat),Is there a cat?\n')
    assert (
        main(
            [
                "dpg",
                "sample",
                "--csv",
                str(csv),
                "--model",
                str(openuni_folder),
                "--n-per-prompt",
                "4",
                "--out",
                str(tmp_path / "dpg"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "dpg" / "cat.png").size == (64, 64)  # the reference's 2 x 2 grid


def test_train_command_fine_tunes_an_openuni_folder(tmp_path, openuni_folder):
    from recakit.commands.main import main

    images = noise_image_folder(tmp_path / "images")
    out = tmp_path / "run"
    assert main(quick_train_command(openuni_folder, images, out)) == 0
    trained, _ = recakit.load_model(str(out / "final"), device="cpu")
    original, _ = recakit.load_model(str(openuni_folder), device="cpu")
    assert not torch.equal(trained.meta_queries, original.meta_queries)
    assert not torch.equal(trained.transformer.proj_out.weight, original.transformer.proj_out.weight)
    assert torch.equal(trained.lmm.lm_head.weight, original.lmm.lm_head.weight)


def test_offline_a_released_size_names_every_hub_id_to_download(tmp_path):
    """A fresh interpreter: the hub client reads HF_HUB_OFFLINE and HF_HOME at import."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_CACHE", None)
    script = "from recakit.registry import load_model; load_model('openuni-l', device='cpu')"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("recakit.adapter.ModelNotAvailableError")
    for hub_id in OPENUNI_SIZES["openuni-l"].hub_ids():
        assert f"hf download {hub_id}" in last_line
    # the checkpoint is one file of a repository of many: the hint fetches that file only
    assert f"`hf download wusize/openuni {OPENUNI_SIZES['openuni-l'].checkpoint}`" in last_line


def test_offline_a_checkpoint_with_wrong_keys_is_named_before_any_download(tmp_path):
    """Its keys are read first: a renamed connector weight is reported by name, not as hub parts
    to download (the parts are missing here, offline)."""
    from transformers.models.siglip.modeling_siglip import SiglipEncoder

    from recakit.models.openuni import connector_config

    with torch.device("meta"):
        connector = SiglipEncoder(connector_config(1536, 8960, 24))
    state = {
        "meta_queries": torch.zeros(2, 1536),
        "projector.weight": torch.zeros(1),
        "projector.bias": torch.zeros(1),
        **{f"connector.{key}": torch.zeros(1) for key in connector.state_dict()},
    }
    state["connector.layers.5.mlp.fc3.weight"] = state.pop("connector.layers.5.mlp.fc2.weight")
    torch.save(state, tmp_path / "openuni_l_reca.pth")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_CACHE", None)
    script = (
        f"from recakit.registry import load_model; load_model({str(tmp_path / 'openuni_l_reca.pth')!r}, device='cpu')"
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (
        "ValueError: the checkpoint does not fit this OpenUni; missing: "
        "connector.layers.5.mlp.fc2.weight; unexpected: connector.layers.5.mlp.fc3.weight"
    )


def test_card_presets_checkpoint_both_stacks_and_keep_the_gradients():
    from recakit.memory_presets import get_preset

    assert get_preset("openuni-b-reca-24gb").memory_budget_gib < 24
    assert get_preset("openuni-l-reca-80gb").memory_budget_gib < 80
    for name in ("openuni-b-reca-24gb", "openuni-l-reca-80gb"):
        preset = get_preset(name)
        assert preset.model in OPENUNI_SIZES and (preset.lr, preset.weight_decay) == (1e-5, 0.05)  # upstream's

    images = noise_images(2)

    def gradients(model):
        recakit.freeze_for_reca(model)
        model.train()
        model.zero_grad()
        recakit.reca_loss(model, tokenizer, images, sample_seeds=[1, 2]).backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain, tokenizer = tiny_openuni(seed=4)
    checkpointed, _ = tiny_openuni(seed=4)
    get_preset("openuni-b-reca-24gb").prepare_model(checkpointed)
    reference = gradients(plain)
    recomputed = []  # forwards of the first language-model layer that the backward pass reruns
    checkpointed.language_model.layers[0].self_attn.register_forward_hook(lambda *_: recomputed.append(1))
    recakit.freeze_for_reca(checkpointed)
    checkpointed.train()
    loss = recakit.reca_loss(checkpointed, tokenizer, images, sample_seeds=[1, 2])
    forwards = len(recomputed)
    loss.backward()
    assert len(recomputed) > forwards  # the layer ran again inside backward: it was checkpointed
    grads = gradients(checkpointed)
    assert grads.keys() == reference.keys()
    for name, grad in reference.items():
        assert torch.allclose(grads[name], grad, atol=1e-6), name


def prompt_text(adapter, inputs_embeds, mask):
    """The text of each row of a prefix: its embeddings looked up in the embedding table."""
    table = adapter.model.lmm.get_input_embeddings().weight
    rows = []
    for embeds, keep in zip(inputs_embeds, mask.bool()):
        ids = [int((table == vector).all(-1).nonzero()[0]) for vector in embeds[keep]]
        rows.append(adapter.tokenizer.decode(ids, skip_special_tokens=False))
    return rows


def test_upstream_prompt_strings_reach_the_language_model(openuni_tiny):
    """Upstream's GenEval template and its classifier-free-guidance prompt, written out here
    letter for letter (not read from recakit), inside InternVL3's chat turn."""
    model, tokenizer = openuni_tiny
    adapter = recakit.adapter_for(model, tokenizer)
    with torch.no_grad():
        prefix, mask = adapter.prefix_from_text(["a red circle", "a dog"], torch.tensor([False, True]))
    turn = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n<img>"
    assert prompt_text(adapter, prefix, mask) == [
        turn.format("Generate an image: a red circle"),
        turn.format("Generate an image."),
    ]


def test_lora_on_sana_attention_trains_adapters_and_glue_then_merges_and_reloads(tmp_path):
    """LoRA on SANA's attention projections: the adapters and upstream's small trained glue
    (queries, connector, projector) get gradients, nothing else; merged, the model computes what
    the adapted one did and saves and loads like any OpenUni."""
    from recakit.lora import add_lora, default_lora_targets

    model, tokenizer = tiny_openuni(seed=3)
    recakit.freeze_for_reca(model)
    # without named targets LoRA goes on SANA only: the glue trains whole beside it
    assert all(name.startswith("transformer.") for name in default_lora_targets(model))
    assert {"transformer.transformer_blocks.0.attn2.to_q", "transformer.proj_out"} <= set(default_lora_targets(model))
    wrapped = add_lora(model, {"r": 4, "lora_alpha": 8, "target_modules": ["to_q", "to_k", "to_v"]})
    images = noise_images(2)
    recakit.reca_loss(wrapped, tokenizer, images, sample_seeds=[1, 2], instruction_dropout=0.0).backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    lora = {name for name, _ in model.named_parameters() if ".lora_" in name}
    glue = {
        name for name, _ in model.named_parameters() if name.startswith(("meta_queries", "connector.", "projector."))
    }
    assert with_grad == {name for name, p in model.named_parameters() if p.requires_grad} == lora | glue
    assert {name.split(".")[-4] for name in lora} == {"to_q", "to_k", "to_v"}
    assert all(name.startswith("transformer.") for name in lora)
    assert all(model.get_parameter(name).grad.abs().sum() > 0 for name in glue)

    with torch.no_grad():  # B starts at zero: give the adapters something to merge
        for name in lora:
            if ".lora_B." in name:
                model.get_parameter(name).normal_(0, 0.1)
        adapted = recakit.reca_loss(wrapped, tokenizer, images, sample_seeds=[3, 4]).item()
        merged = wrapped.merge_and_unload()
        assert merged is model and not any(".lora_" in name for name, _ in merged.named_parameters())
        merged_loss = recakit.reca_loss(merged, tokenizer, images, sample_seeds=[3, 4]).item()
        assert merged_loss == pytest.approx(adapted, rel=1e-5)
    merged.save_pretrained(tmp_path / "merged")
    tokenizer.save_pretrained(tmp_path / "merged")
    loaded, loaded_tokenizer = recakit.load_model(str(tmp_path / "merged"), device="cpu")
    with torch.no_grad():
        assert recakit.reca_loss(loaded, loaded_tokenizer, images, sample_seeds=[3, 4]).item() == pytest.approx(
            adapted, rel=1e-5
        )


def test_train_command_with_lora_on_sana(tmp_path, openuni_folder):
    """The documented command: LoRA r4 on SANA's to_q, to_k, to_v; final/ holds the merged model."""
    from recakit.commands.main import main

    images = noise_image_folder(tmp_path / "images")
    out = tmp_path / "run"
    assert (
        main(quick_train_command(openuni_folder, images, out, "--lora-r", "4", "--lora-targets", "to_q,to_k,to_v")) == 0
    )
    assert (out / "final" / "adapter" / "adapter_config.json").is_file()
    trained, _ = recakit.load_model(str(out / "final"), device="cpu")
    original, _ = recakit.load_model(str(openuni_folder), device="cpu")
    changed = {
        name for name, value in trained.state_dict().items() if not torch.equal(value, original.state_dict()[name])
    }
    assert {"meta_queries", "projector.weight"} <= changed  # the glue trained beside the adapters
    sana = {name.removeprefix("transformer.") for name in changed if name.startswith("transformer.")}
    assert sana and all(name.split(".")[-2] in ("to_q", "to_k", "to_v") for name in sana)  # merged there only
    assert not any(name.startswith(("lmm.", "vae.")) for name in changed)


def test_train_command_refuses_image_to_text_pairs_it_cannot_train(tmp_path, openuni_folder, capsys):
    # InternVL stays frozen and shares no language model with SANA: a caption loss would train nothing
    from recakit.commands.main import main

    images = noise_image_folder(tmp_path / "images")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"image": f"images/{i}.png", "caption": "noise"}) + "\n" for i in range(2)))
    command = ["train", "--model", str(openuni_folder), "--images", str(images), "--out", str(tmp_path / "run")]
    assert main([*command, "--steps", "1", "--device", "cpu", "--i2t", str(pairs)]) == 2
    assert "--i2t would train nothing on OpenUniModel" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
