"""adapter_for finds the adapter behind whatever wraps a model."""

import pytest
import torch

from recakit.adapter import UnifiedAdapter
from recakit.models.janus import JanusAdapter, tiny_janus
from recakit.objective import reca_loss
from recakit.registry import adapter_for


def test_a_lora_wrapped_janus_gets_the_janus_adapter_and_trains_its_lora_weights(square_images):
    peft = pytest.importorskip("peft")
    model, processor = tiny_janus(seed=0)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    adapter = adapter_for(wrapped, processor)
    assert isinstance(adapter, JanusAdapter) and adapter.model is model

    reca_loss(wrapped, processor, square_images[:2], sample_seeds=[0, 1]).backward()
    # lora_B starts at zero, so lora_A gets no gradient on the first step; lora_B must
    lora_b_grads = [p.grad for name, p in wrapped.named_parameters() if "lora_B" in name]
    assert lora_b_grads and all(g is not None and torch.any(g != 0) for g in lora_b_grads)


def test_an_unknown_model_gets_a_clear_type_error():
    with pytest.raises(TypeError, match="no RecA adapter for Linear"):
        adapter_for(torch.nn.Linear(2, 2))


def test_an_adapter_passes_through():
    adapter = UnifiedAdapter()
    assert adapter_for(adapter) is adapter
