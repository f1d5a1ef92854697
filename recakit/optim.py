"""AdamW for bfloat16 weights that keeps every small update: 8-bit moments, compensated steps.

Plain bf16 weights lose RecA's updates. bf16 keeps 8 significant bits, so a step smaller than
about 1/256 of a weight rounds away, and at lr 1e-5 Adam moves a weight by about 1e-5 per step:
only weights below ~0.003 move at all. The usual cure, a float32 master copy of the weights, costs
4 bytes per trained weight, which a full fine-tune of Janus-Pro-1B on a 16 GB GPU cannot afford.

`CompensatedAdamW8bit` keeps instead, per weight, the part of its last update that bf16 rounding
dropped (a bf16 "compensation" tensor: Kahan summation), and adds it back before the next update.
Weight + compensation then follows the float32 trajectory to about 16 significant bits, at 2 bytes
per weight. The Adam moments are bitsandbytes' blockwise 8-bit states, updated by its own 8-bit
Adam kernel (CUDA or CPU), so the arithmetic is that of `bitsandbytes.optim.AdamW8bit` on a
float32 weight. Tensors are updated in chunks, so the float32 temporaries stay small.
"""

from __future__ import annotations

import math

import torch

#: bitsandbytes' 8-bit states keep one absolute maximum per block of this many values
BLOCK = 256
#: values updated at once (a multiple of BLOCK): the float32 temporaries hold a few of these
CHUNK = BLOCK * 16384
#: the state that is not in the weight's dtype
QUANTIZED_STATE = ("moment1", "moment2", "absmax1", "absmax2")


class CompensatedAdamW8bit(torch.optim.Optimizer):
    """AdamW (decoupled weight decay) with 8-bit moments and Kahan-compensated weight updates.

    Meant for bf16 (or fp16) weights; on float32 weights the compensation stays zero. The state of
    each weight ("compensation", the 8-bit moments and their block maxima, "step") is ordinary
    optimizer state, so checkpoints save and resume it."""

    def __init__(self, params, lr: float = 1e-5, betas=(0.9, 0.95), eps: float = 1e-8, weight_decay: float = 0.0):
        if lr <= 0 or eps <= 0 or weight_decay < 0 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"bad AdamW settings: lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})
        self._quantile_maps = {}

    def _maps(self, device: torch.device):
        """bitsandbytes' dynamic quantisation maps: signed for the first moment, unsigned for the second."""
        if device not in self._quantile_maps:
            from bitsandbytes.functional import create_dynamic_map

            self._quantile_maps[device] = (
                create_dynamic_map(signed=True).to(device),
                create_dynamic_map(signed=False).to(device),
            )
        return self._quantile_maps[device]

    @staticmethod
    def _new_state(p: torch.Tensor) -> dict:
        blocks = math.ceil(p.numel() / BLOCK)
        return {
            "step": 0,
            "compensation": torch.zeros_like(p, memory_format=torch.contiguous_format),
            "moment1": torch.zeros(p.numel(), dtype=torch.uint8, device=p.device),
            "moment2": torch.zeros(p.numel(), dtype=torch.uint8, device=p.device),
            "absmax1": torch.zeros(blocks, dtype=torch.float32, device=p.device),
            "absmax2": torch.zeros(blocks, dtype=torch.float32, device=p.device),
        }

    @torch.no_grad()
    def step(self, closure=None):
        from bitsandbytes.functional import optimizer_update_8bit_blockwise

        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if not p.is_contiguous():
                    raise ValueError("CompensatedAdamW8bit needs contiguous parameters")
                state = self.state[p]
                if not state:
                    state.update(self._new_state(p))
                state["step"] += 1
                signed_map, unsigned_map = self._maps(p.device)
                weights, grads = p.view(-1), p.grad.reshape(-1)
                compensation = state["compensation"].view(-1)
                for start in range(0, weights.numel(), CHUNK):
                    end = min(start + CHUNK, weights.numel())
                    blocks = slice(start // BLOCK, math.ceil(end / BLOCK))
                    # the weight as the float32 run would hold it: stored value + what rounding dropped
                    exact = weights[start:end].float() + compensation[start:end].float()
                    optimizer_update_8bit_blockwise(
                        "adam",
                        grads[start:end].float(),
                        exact,
                        state["moment1"][start:end],
                        state["moment2"][start:end],
                        beta1,
                        beta2,
                        0.0,
                        0.0,
                        group["eps"],
                        state["step"],
                        group["lr"],
                        signed_map,
                        unsigned_map,
                        state["absmax1"][blocks],
                        state["absmax2"][blocks],
                        group["weight_decay"],
                    )
                    rounded = exact.to(p.dtype)
                    compensation[start:end] = (exact - rounded.float()).to(p.dtype)
                    weights[start:end] = rounded
        return loss

    def load_state_dict(self, state_dict: dict) -> None:
        # torch casts every floating-point state tensor to its weight's dtype; the 8-bit moments
        # and their float32 maxima must keep their own
        saved_ids = [index for group in state_dict["param_groups"] for index in group["params"]]
        weights = dict(zip(saved_ids, (p for group in self.param_groups for p in group["params"])))
        own_dtype = {
            index: {key: state[key] for key in QUANTIZED_STATE if key in state}
            for index, state in state_dict["state"].items()
        }
        super().load_state_dict(state_dict)
        for index, tensors in own_dtype.items():
            p = weights[index]
            self.state[p].update({key: value.to(p.device) for key, value in tensors.items()})

    def exact_weight(self, p: torch.Tensor) -> torch.Tensor:
        """The float32 weight this optimizer tracks for `p`: its stored value plus its compensation."""
        state = self.state.get(p)
        if not state:
            return p.detach().float()
        return p.detach().float() + state["compensation"].float()
