"""The static-cache image sampler, for the GPU.

The plain loop in `recakit.sampling` grows a dynamic KV cache and launches hundreds of
small kernels per image token, so at batch 1 it is bound by launch overhead, not by the GPU.
`fast_sample_image_tokens` keeps the same inputs and outputs but
- preallocates the keys and values of every layer once (a static KV cache) and writes each new
  token into its slot, so every decode step has the same shapes and addresses;
- runs one whole decode step -- embed the previous code, the Llama layers, the generation head,
  classifier-free guidance and the Gumbel-max draw -- as one function on the device, which on
  CUDA is captured once as a CUDA graph ("graph") or handed to torch.compile with
  mode="reduce-overhead" ("compile") and then replayed for every token;
- draws each row's uniform noise from that row's own seeded generator, in the same order as the
  plain loop, so the same seed gives the same codes (up to floating-point ties).
On the CPU there is nothing to capture, and compiling costs far more than it saves, so the step
runs eagerly there ("eager"); the tests check that path against the plain sampler.

The decode step is written against the Llama modules' weights (norms, q/k/v/o projections,
rotary embedding, MLP) rather than through the transformers cache classes, whose call
conventions change between releases; both Janus and the ShapesWorld toy generate with a Llama.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from recakit.decoding import DEFAULT_BATCH_SIZE, draw, evaluating, guided_logits, prefix_batches, row_noise

MODES = ("auto", "eager", "graph", "compile")


def generation_stack(adapter):
    """The Llama model (`.layers`, `.norm`, `.rotary_emb`) the adapter generates with."""
    model = adapter.model
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    for path in ("model.language_model", "generator.model"):
        stack = model
        for name in path.split("."):
            stack = getattr(stack, name, None)
        if stack is not None and all(hasattr(stack, part) for part in ("layers", "norm", "rotary_emb")):
            return stack
    raise TypeError(
        f"the fast sampler needs a Llama generation stack; {type(adapter).__name__} has none "
        "(use the plain sampler, fast=False)"
    )


def _resolve_mode(mode: str, device: torch.device) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown fast mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "auto":
        return "graph" if device.type == "cuda" else "eager"
    if mode in ("graph", "compile") and device.type != "cuda":
        raise ValueError(f"fast mode {mode!r} needs a CUDA device; the CPU runs mode 'eager'")
    return mode


def one_query_attention(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, visible: torch.Tensor, scale: float
) -> torch.Tensor:
    """Attention of one new token over the whole cache, as two matrix products and a softmax.

    query (B, H, 1, d), keys / values (B, K, capacity, d) with H a multiple of K, visible
    (B, 1, 1, capacity) -> (B, H, 1, d). On an H200 at Janus-Pro-1B size the fused
    memory-efficient kernel took 29 us a layer for this shape (one query tile per row and head,
    walking every key in turn), a fifth of the whole decode step; the three plain kernels take a
    few microseconds each. Heads that share a key/value head are stacked as that head's queries,
    so the cache is read in place, never copied per head."""
    rows, heads, _, head_dim = query.shape
    grouped = query.reshape(rows, keys.shape[1], heads // keys.shape[1], head_dim)
    scores = torch.matmul(grouped, keys.transpose(-1, -2)).float() * scale
    weights = scores.masked_fill(~visible, float("-inf")).softmax(dim=-1)
    return torch.matmul(weights.to(values.dtype), values).view(rows, heads, 1, head_dim)


class StaticDecoder:
    """A Llama stack with a preallocated KV cache of `capacity` positions for `rows` rows.

    Slot s of the cache holds position s of the (left-padded) sequence; `visible` marks the slots
    each row may attend to (its real prefix tokens and every generated token)."""

    def __init__(self, stack, rows: int, capacity: int, dtype: torch.dtype, device: torch.device):
        self.stack = stack
        config = stack.config
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        shape = (rows, self.kv_heads, capacity, self.head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in stack.layers]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in stack.layers]
        self.visible = torch.zeros((rows, capacity), dtype=torch.bool, device=device)
        self.capacity = capacity

    def static_tensors(self) -> list[torch.Tensor]:
        return self.keys + self.values + [self.visible]

    def forward(
        self, embeds: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor, attend: torch.Tensor
    ) -> torch.Tensor:
        """embeds (B, L, D) at sequence positions `positions` (B, L), written into cache slots
        `slots` (L,); attend (B, L, capacity) says which slots each query sees -> hidden (B, L, D)."""
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        rows, length, _ = embeds.shape
        hidden = embeds
        cos, sin = self.stack.rotary_emb(hidden, positions)
        # a query that sees nothing (a left-pad position) would give NaN; let it see itself
        mask = attend[:, None]
        for index, layer in enumerate(self.stack.layers):
            attention = layer.self_attn
            normed = layer.input_layernorm(hidden)
            query = attention.q_proj(normed).view(rows, length, self.heads, self.head_dim).transpose(1, 2)
            key = attention.k_proj(normed).view(rows, length, self.kv_heads, self.head_dim).transpose(1, 2)
            value = attention.v_proj(normed).view(rows, length, self.kv_heads, self.head_dim).transpose(1, 2)
            query, key = apply_rotary_pos_emb(query, key, cos, sin)
            self.keys[index].index_copy_(2, slots, key.to(self.keys[index].dtype))
            self.values[index].index_copy_(2, slots, value.to(self.values[index].dtype))
            if length == 1:
                attended = one_query_attention(query, self.keys[index], self.values[index], mask, attention.scaling)
            else:
                attended = F.scaled_dot_product_attention(
                    query,
                    self.keys[index],
                    self.values[index],
                    attn_mask=mask,
                    scale=attention.scaling,
                    enable_gqa=self.heads != self.kv_heads,
                )
            attended = attended.transpose(1, 2).reshape(rows, length, self.heads * self.head_dim)
            hidden = hidden + attention.o_proj(attended)
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        return self.stack.norm(hidden)

    def prefill(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Run the left-padded prefix (B, L) into slots 0..L-1 -> hidden state of its last position."""
        rows, length = mask.shape
        real = mask.bool()
        self.visible.zero_()
        self.visible[:, :length] = real
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        causal = torch.ones((length, self.capacity), dtype=torch.bool, device=mask.device).tril()
        attend = causal[None] & self.visible[:, None, :]
        attend |= torch.eye(length, self.capacity, dtype=torch.bool, device=mask.device)[None]
        slots = torch.arange(length, device=mask.device)
        return self.forward(embeds, positions, slots, attend)[:, -1]


class _DecodeStep:
    """One image token for every row: previous codes -> next codes, with all state on the device.

    Inputs live in fixed buffers (`codes`, `step`, `noise`) so that a captured graph can replay
    the step after the buffers are refilled."""

    def __init__(
        self,
        adapter,
        decoder: StaticDecoder,
        first_slot: int,
        start_positions: torch.Tensor,
        rows: int,
        cfg_scale: float,
        temperature: float,
        top_k: int | None,
    ):
        self.adapter, self.decoder = adapter, decoder
        self.first_slot, self.rows = first_slot, rows
        self.cfg_scale, self.temperature, self.top_k = cfg_scale, temperature, top_k
        self.start_positions = start_positions  # (B2, 1): position of the first generated token
        device = start_positions.device
        self.codes = torch.zeros(rows, dtype=torch.long, device=device)
        self.step = torch.zeros(1, dtype=torch.long, device=device)
        self.noise = torch.full((rows, adapter.codebook_size), 0.5, dtype=torch.float32, device=device)

    def __call__(self) -> torch.Tensor:
        guided = self.cfg_scale != 1
        fed = torch.cat([self.codes, self.codes]) if guided else self.codes
        embeds = self.adapter.embed_image_tokens(fed[:, None]).to(self.decoder.keys[0].dtype)
        slot = self.step + self.first_slot
        self.decoder.visible.index_fill_(1, slot, True)
        attend = self.decoder.visible[:, None, :]
        hidden = self.decoder.forward(embeds, self.start_positions + self.step, slot, attend)
        logits = guided_logits(self.adapter, hidden[:, -1], self.rows, self.cfg_scale)
        return draw(logits, self.noise, self.temperature, self.top_k)


def _capture(step: _DecodeStep):
    """Record the decode step as a CUDA graph -> a function that replays it."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up runs allocate the workspaces the graph will reuse
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = step()

    def replay():
        graph.replay()
        return output

    return replay


def _compiled(step: _DecodeStep, decoder: StaticDecoder):
    for tensor in decoder.static_tensors() + [step.codes, step.step, step.noise]:
        torch._dynamo.mark_static_address(tensor)
    compiled = torch.compile(step.__call__, mode="reduce-overhead", fullgraph=False)

    def run():
        # cudagraph trees reuse the output buffer on the next replay: keep a copy
        return compiled().clone()

    return run


@torch.no_grad()
def fast_sample_image_tokens(
    adapter,
    build_prefix,
    count: int,
    *,
    cfg_scale: float,
    seeds: list[int],
    temperature: float,
    top_k: int | None,
    batch_size: int | None,
    progress: bool = True,
    desc: str = "sampling",
    mode: str = "auto",
) -> torch.Tensor:
    """Drop-in for `recakit.sampling.sample_image_tokens` with a static cache and a captured
    decode step (see the module docstring) -> (count, T) image codes.

    mode: "auto" (a CUDA graph on CUDA, eager elsewhere; eager too where capture fails), "eager",
    "graph" or "compile". "compile" traces the step anew for every batch (each has its own cache
    tensors), so it pays off only for long runs of large batches; "graph" captures in milliseconds."""
    stack = generation_stack(adapter)
    batch_size = batch_size or DEFAULT_BATCH_SIZE
    guided = cfg_scale != 1
    steps = adapter.num_image_tokens
    device = adapter.device
    fall_back = mode == "auto"  # "auto" runs eagerly where capturing fails; a named mode raises
    mode = _resolve_mode(mode, device)
    results = []
    with evaluating(adapter.model), tqdm(total=count * steps, desc=desc, unit="token", disable=not progress) as bar:
        for inputs, mask, generators in prefix_batches(build_prefix, count, batch_size, guided, seeds, device):
            rows = len(generators)
            prefix_length = mask.shape[1]
            # a capacity that is a multiple of 16 keeps the attention mask aligned for the fused
            # attention kernels; the extra slots are never visible
            capacity = -(-(prefix_length + steps) // 16) * 16
            decoder = StaticDecoder(stack, mask.shape[0], capacity, inputs.dtype, device)
            hidden = decoder.prefill(inputs, mask)
            codes = torch.empty((rows, steps), dtype=torch.long, device=device)

            def fresh_noise(generators=generators):
                return row_noise(generators, adapter.codebook_size, device)

            logits = guided_logits(adapter, hidden, rows, cfg_scale)
            codes[:, 0] = draw(logits, fresh_noise() if temperature else None, temperature, top_k)
            bar.update(rows)
            if steps > 1:
                start_positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -1:] + 1
                step = _DecodeStep(
                    adapter, decoder, prefix_length, start_positions, rows, cfg_scale, temperature, top_k
                )
                run = step
                if mode == "graph" or mode == "compile":
                    # capturing executes the step; the cache slot it writes is rewritten by step 1
                    saved_visible = decoder.visible.clone()
                    try:
                        run = _capture(step) if mode == "graph" else _compiled(step, decoder)
                    except RuntimeError as error:
                        if not fall_back:
                            raise
                        warnings.warn(f"could not capture the decode step ({error}); sampling eagerly", stacklevel=2)
                        mode, run = "eager", step
                    decoder.visible.copy_(saved_visible)
                for index in range(1, steps):
                    step.codes.copy_(codes[:, index - 1])
                    step.step.fill_(index - 1)
                    if temperature:
                        step.noise.copy_(fresh_noise())
                    codes[:, index] = run()
                    bar.update(rows)
            results.append(codes)
    return torch.cat(results)
