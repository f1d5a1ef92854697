"""recakit.models.janus: the tiny offline Janus, loading (local, hub offline, quantized), the adapter's prefixes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import cross_entropy_by_hand, packed_4bit_layers

from recakit.models.janus import (
    CAPTION_PROMPT,
    UNDERSTANDING_SYSTEM_PROMPT,
    JanusAdapter,
    full_precision_layers,
    tiny_janus,
)
from recakit.registry import adapter_for, load_model
from recakit.sampling import generate_image_tokens, generate_images

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"progress": False}


def test_tiny_janus_is_deterministic_and_configurable():
    first, processor = tiny_janus(seed=3)
    again, _ = tiny_janus(seed=3)
    other, _ = tiny_janus(seed=4)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), other.state_dict().values()))
    assert first.config.image_token_id == processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    assert len(processor.tokenizer) == first.config.text_config.vocab_size

    bigger, bigger_processor = tiny_janus(image_size=64, codebook_size=64)
    adapter = adapter_for(bigger, bigger_processor)
    assert adapter.num_image_tokens == (64 // 8) ** 2 and adapter.codebook_size == 64
    with pytest.raises(ValueError, match="unknown options"):
        tiny_janus(image_side=64)


def test_prefixes_follow_the_chat_format_and_janus_cfg(janus_tiny):
    model, processor = janus_tiny
    adapter = JanusAdapter(model, processor)
    tokenizer = processor.tokenizer
    vision = model.config.vision_config
    n = (vision.image_size // vision.patch_size) ** 2
    embeddings = torch.randn(2, n, model.config.text_config.hidden_size)
    embeds, mask = adapter.prefix_from_embeddings(embeddings, torch.tensor([False, True]), ["Draw it.", "Draw it."])
    assert embeds.shape[:2] == mask.shape and mask.all()  # same instruction -> same length, no padding
    table = model.model.get_input_embeddings().weight
    # the conditional row carries the embeddings verbatim, once, between begin- and end-of-image
    found = [(embeds[0] == row).all(-1).nonzero().flatten().tolist() for row in embeddings[0]]
    positions = [spot[0] for spot in found]
    assert all(len(spot) == 1 for spot in found) and positions == list(range(positions[0], positions[0] + n))
    assert torch.equal(embeds[0, positions[0] - 1], table[adapter.boi_id])
    assert torch.equal(embeds[0, positions[-1] + 1], table[adapter.eoi_id])
    # both rows end with begin-of-image (it predicts image token 0); the dropped row is BOS + pads
    for row in embeds:
        assert torch.equal(row[-1], table[adapter.boi_id])
    assert torch.equal(embeds[1, 0], table[tokenizer.bos_token_id])
    assert all(torch.equal(vector, table[tokenizer.pad_token_id]) for vector in embeds[1, 1:-1])

    text, text_mask = adapter.prefix_from_text(["a cat", "a much longer prompt with many more words"])
    assert text_mask[0, 0] == 0 and text_mask[1].all()  # left padding
    assert torch.equal(text[0, -1], table[adapter.boi_id])


def test_save_and_load_round_trip(tmp_path, janus_tiny):
    model, processor = janus_tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded, loaded_processor = load_model(tmp_path, device="cpu")
    assert loaded.dtype == torch.float32 and not loaded.training
    kwargs = dict(seed=5, cfg_scale=3.0, **QUIET)
    assert torch.equal(
        generate_image_tokens(model, processor, ["a red circle"], **kwargs),
        generate_image_tokens(loaded, loaded_processor, ["a red circle"], **kwargs),
    )
    prompt = "<|User|>: hi\n\n<|Assistant|>:"
    assert loaded_processor.tokenizer(prompt)["input_ids"] == processor.tokenizer(prompt)["input_ids"]


@pytest.mark.parametrize("quantization", ["nf4", "int8"])
def test_quantized_tiny_model_generates_and_is_smaller(tmp_path, janus_tiny, quantization, capsys, bnb_cpu_packed):
    model, processor = janus_tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    quantized, quantized_processor = load_model(tmp_path, device="cpu", quantization=quantization)
    assert quantized.get_memory_footprint() < model.get_memory_footprint()
    assert quantization in capsys.readouterr().out  # the footprint line names the format
    images = generate_images(quantized, quantized_processor, ["a red circle", "a blue star"], cfg_scale=2.0, **QUIET)
    side = model.config.vision_config.image_size
    assert len(images) == 2 and all(image.size == (side, side) for image in images)
    # the run took the CPU path it was meant to (int8 layers have only one)
    assert (packed_4bit_layers(quantized) > 0) == (bnb_cpu_packed and quantization == "nf4")


def test_nf4_keeps_only_the_layers_its_cpu_kernel_cannot_repack_in_full_precision(tmp_path, janus_tiny):
    model, processor = janus_tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    quantized, _ = load_model(tmp_path, device="cpu", quantization="nf4")
    linears = {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    full = {name for name, module in quantized.named_modules() if type(module) is torch.nn.Linear}
    narrow = {name for name, module in linears.items() if module.in_features % 64 or module.out_features % 32}
    heads = {name for name in linears if name.startswith(("model.vqmodel", "model.generation_head", "lm_head"))}
    assert "model.generation_aligner.fc1" in narrow  # its input is the 8-wide code embedding
    assert full == narrow | heads and len(full) < len(linears)
    assert set(full_precision_layers(model, "nf4")) == full
    assert set(full_precision_layers(model, "int8")) == heads  # int8 layers have no repacking


def test_loading_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model folder"):
        load_model(tmp_path / "not-here")
    with pytest.raises(ValueError, match="nf4, int8"):
        load_model(tmp_path, quantization="fp3")


def test_offline_hub_id_names_the_id_and_the_fix(tmp_path):
    """Run in a fresh interpreter: the hub client reads HF_HUB_OFFLINE and HF_HOME at import."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_CACHE", None)
    env.pop("TRANSFORMERS_CACHE", None)
    script = "from recakit.registry import load_model; load_model('deepseek-community/Janus-Pro-1B', device='cpu')"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("recakit.adapter.ModelNotAvailableError")
    assert "deepseek-community/Janus-Pro-1B" in last_line and "hf download" in last_line
    assert "huggingface_hub" not in result.stderr  # our message, not the hub client's traceback


def test_the_name_toy_loads_the_toy_model(monkeypatch):
    import recakit.toy.model

    calls = []

    def fake_load_toy(path=None, device=None):
        calls.append(device)
        return "toy model", "toy processor"

    monkeypatch.setattr(recakit.toy.model, "load_toy", fake_load_toy)
    assert load_model("toy", device="cpu") == ("toy model", "toy processor")
    assert calls == [torch.device("cpu")]


def test_a_quantized_model_can_be_frozen_and_trained(tmp_path, janus_tiny, square_images, bnb_cpu_packed):
    from recakit.objective import freeze_for_reca, reca_loss

    model, processor = janus_tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    quantized, quantized_processor = load_model(tmp_path, device="cpu", quantization="nf4")
    with pytest.warns(UserWarning, match="LoRA"):
        counts = freeze_for_reca(quantized)
    assert counts["quantized"] > 0 and counts["trainable"] > 0
    reca_loss(quantized, quantized_processor, square_images[:2], sample_seeds=[0, 1]).backward()
    assert quantized.model.generation_head.vision_head.weight.grad is not None
    assert (packed_4bit_layers(quantized) > 0) == bnb_cpu_packed


def test_preprocessing_is_shared_once_between_tokens_and_embeddings(janus_tiny, square_images, monkeypatch):
    model, processor = janus_tiny
    adapter = JanusAdapter(model, processor)
    calls = []
    original = processor.image_processor.__class__.__call__

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(processor.image_processor.__class__, "__call__", counting)
    images = square_images[:2]
    tokens, embeddings = adapter.reca_views(images)
    assert len(calls) == 1
    assert torch.equal(adapter.image_tokens(images), tokens)
    assert torch.equal(adapter.understanding_embeddings(images), embeddings)
    assert len(calls) == 3  # the separate calls preprocess on their own: no hidden memo
    shrunk_tokens, shrunk = adapter.reca_views(images, resolution=8)
    assert len(calls) == 5  # a bottleneck resolution needs the encoder's own pixels
    assert torch.equal(shrunk_tokens, tokens)
    assert torch.equal(shrunk, adapter.understanding_embeddings(images, resolution=8))


def test_caption_loss_counts_the_answer_tokens_only(janus_tiny, square_images):
    """The caption loss against one built by hand from the model's own forward: the processor
    expands the image into the prompt, and only the caption's tokens and its end-of-sentence
    are targets; the prompt, the image slots and the left padding of the shorter row are not."""
    model, processor = janus_tiny
    tokenizer = processor.tokenizer
    images, captions = square_images[:2], ["a red square", "a small blue square in the top left corner"]
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": CAPTION_PROMPT}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    # official Janus opens every understanding conversation with its system prompt and a blank line
    prompt = UNDERSTANDING_SYSTEM_PROMPT + "\n\n" + prompt.removeprefix(tokenizer.bos_token)
    expected = []
    with torch.no_grad():
        loss = JanusAdapter(model, processor).caption_loss(images, captions)
        for image, text in zip(images, captions):
            encoded = processor(text=[prompt], images=[image], return_tensors="pt")
            answer = tokenizer(" " + text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            ids = [tokenizer.bos_token_id] + encoded["input_ids"][0].tolist() + answer
            logits = model(input_ids=torch.tensor([ids]), pixel_values=encoded["pixel_values"]).logits[0]
            # position i predicts token i + 1: the answer's tokens are predicted from the len(answer)
            # positions before them
            expected.append(cross_entropy_by_hand(logits[-len(answer) - 1 : -1], torch.tensor(answer)))
    torch.testing.assert_close(loss, torch.stack(expected).mean(), rtol=0, atol=1e-5)


def test_loading_checks_the_pad_token_official_janus_uses(tmp_path, janus_tiny):
    model, processor = janus_tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    _, loaded_processor = load_model(tmp_path, device="cpu")
    assert loaded_processor.tokenizer.pad_token == "<\uff5c\u2581pad\u2581\uff5c>"  # as the official code spells it

    config_file = tmp_path / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["pad_token"] = "<eos>"  # a folder whose tokenizer pads with another token
    config_file.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match="official Janus pads with"):
        load_model(tmp_path, device="cpu")


def test_the_missing_hub_kernel_notice_of_bitsandbytes_is_silenced(caplog):
    import inspect

    import bitsandbytes.backends.cpu.ops as cpu_ops

    import recakit  # noqa: F401 -- installs the filter

    notice = "Failed to load CPU gemm_4bit_forward from kernels-community"
    assert notice in inspect.getsource(cpu_ops)  # still what, and where, bitsandbytes logs it
    cpu_ops.logger.warning(notice + ": %s. Please make sure ...", "no module named kernels")
    cpu_ops.logger.warning("any other bitsandbytes warning")
    assert [record.getMessage() for record in caplog.records] == ["any other bitsandbytes warning"]
