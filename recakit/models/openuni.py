"""OpenUni (InternVL3 + SANA), the RecA paper's own family, built from stock library classes.

OpenUni reads a prompt with a frozen InternVL3 (`transformers.InternVLForConditionalGeneration`),
appends 256 learnable *meta-queries* after it, and hands the language model's last hidden states
at those queries through a 6-layer connector (SigLIP-style encoder layers) and a linear projector
to SANA (`diffusers.SanaTransformer2DModel`) as its text condition. SANA denoises DC-AE latents
(`diffusers.AutoencoderDC`) with flow matching. RecA puts InternVL's own vision features of an
image in the prompt instead of a caption and trains the same flow-matching loss on that image's
latents.

- `OpenUniModel` holds the parts under upstream's module names (`lmm`, `transformer`, `vae`,
  `connector`, `projector`, `meta_queries`), so released checkpoints load key for key.
- `tiny_openuni` builds the same architecture from tiny configs offline, in seconds.
- `load_openuni` assembles OpenUni-B / -L from their hub ids plus an upstream checkpoint, or
  reads a folder `OpenUniModel.save_pretrained` wrote.
- `OpenUniAdapter` is its `recakit.adapter.UnifiedAdapter`: the flow-matching loss and the
  SanaPipeline sampler behind the same calls (`reca_loss`, `generate_images`) Janus uses.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from recakit.adapter import ModelNotAvailableError, UnifiedAdapter, drop_flags, left_pad
from recakit.decoding import DEFAULT_BATCH_SIZE, evaluating, prefix_batches
from recakit.images import center_crop_square, load_images
from recakit.instructions import RECONSTRUCTION_INSTRUCTIONS

# -- upstream's prompt format and preprocessing ------------------------------------------------
#: InternVL3's chat turn, as OpenUni writes it (its generation prompts end with the image-start tag)
INSTRUCTION = "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"
IMAGE_START, IMAGE_END, IMAGE_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"
#: the text-to-image prompt and the unconditional prompt of classifier-free guidance
GENERATION_TEMPLATE = "Generate an image: {prompt}"
UNCONDITIONAL_PROMPT = "Generate an image."
#: InternViT is fed ImageNet-normalised pixels
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DC_AE_ID = "mit-han-lab/dc-ae-f32c32-sana-1.1-diffusers"
CHECKPOINT_REPO = "wusize/openuni"
CONFIG_FILE = "openuni.json"
WEIGHTS_FILE = "openuni.safetensors"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


@dataclass(frozen=True)
class OpenUniSize:
    """One released OpenUni: its components on the hub and its connector's shape."""

    internvl: str
    sana: str
    checkpoint: str  # file in CHECKPOINT_REPO (the text-to-image base)
    connector_hidden: int
    connector_intermediate: int
    connector_heads: int
    reca_checkpoint_repo: str  # the published RecA weights of this size

    def hub_ids(self) -> list[str]:
        return [self.internvl, self.sana, DC_AE_ID, CHECKPOINT_REPO]


OPENUNI_SIZES = {
    "openuni-b": OpenUniSize(
        "OpenGVLab/InternVL3-1B-hf",
        "Efficient-Large-Model/Sana_600M_512px_diffusers",
        "openuni_b_internvl3_1b_sana_0_6b_512_hf_text2image23m.pth",
        896,
        3072,
        14,
        "sanaka87/OpenUni-1-0.6B-RecA",
    ),
    "openuni-l": OpenUniSize(
        "OpenGVLab/InternVL3-2B-hf",
        "Efficient-Large-Model/Sana_1600M_512px_diffusers",
        "openuni_l_internvl3_2b_sana_1_6b_512_hf_text2image23m.pth",
        1536,
        8960,
        24,
        "sanaka87/OpenUni-RecA",
    ),
}

#: the parts an OpenUni checkpoint holds; `transformer.*` only where SANA was trained (RecA)
GLUE_PREFIXES = ("meta_queries", "connector.", "projector.")
#: frozen parts some checkpoints carry along; they always come from their own hub ids
FROZEN_PREFIXES = ("lmm.", "vae.")


def connector_config(hidden: int, intermediate: int, heads: int, layers: int = 6):
    """The connector: SigLIP encoder layers (layer_norm1, self_attn, layer_norm2, mlp.fc1/fc2,
    tanh-GELU), exactly upstream's module layout, so its weights load by name."""
    from transformers import SiglipVisionConfig

    config = SiglipVisionConfig(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_attention_heads=heads,
        num_hidden_layers=layers,
        hidden_act="gelu_pytorch_tanh",
        layer_norm_eps=1e-6,
        attention_dropout=0.0,
    )
    config._attn_implementation = "sdpa"  # used standalone, the encoder has no model to choose it
    return config


# -- the model -----------------------------------------------------------------------------------


class OpenUniModel(nn.Module):
    """InternVL3 + meta-queries + connector + projector + SANA + DC-AE, under upstream's names.

    `train_scheduler` (FlowMatchEulerDiscreteScheduler) gives the training timesteps and sigmas;
    `test_scheduler` (SANA's own, DPM-Solver) is the sampler's. `sources` records where each
    component came from (hub id or None when built in code), so save_pretrained writes only what
    a hub id cannot restore."""

    def __init__(
        self,
        lmm,
        transformer,
        vae,
        train_scheduler,
        test_scheduler,
        connector,
        *,
        num_queries: int = 256,
        image_size: int = 512,
        vit_size: int = 448,
        sources: dict | None = None,
    ):
        super().__init__()
        from transformers.models.siglip.modeling_siglip import SiglipEncoder

        self.lmm = lmm
        self.transformer = transformer
        self.vae = vae
        self.train_scheduler = train_scheduler
        self.test_scheduler = test_scheduler
        hidden = lmm.config.text_config.hidden_size
        if connector.hidden_size != hidden:
            raise ValueError(
                f"the connector works at the language model's width {hidden}, got hidden_size {connector.hidden_size}"
            )
        self.connector = SiglipEncoder(connector)
        self.projector = nn.Linear(connector.hidden_size, transformer.config.caption_channels)
        self.meta_queries = nn.Parameter(torch.randn(num_queries, hidden) / math.sqrt(hidden))
        self.register_buffer("vit_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("vit_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.num_queries, self.image_size, self.vit_size = num_queries, image_size, vit_size
        self.sources = dict(sources or {})
        self.checkpointing = False
        self.lmm.eval()
        self.vae.eval()

    @property
    def device(self) -> torch.device:
        return self.meta_queries.device

    @property
    def dtype(self) -> torch.dtype:
        return self.meta_queries.dtype

    @property
    def language_model(self):
        return self.lmm.model.language_model

    def train(self, mode: bool = True):
        # InternVL and the DC-AE are frozen parts of every OpenUni recipe: they stay in eval mode,
        # except that transformers checkpoints a layer only in train mode, so with checkpointing on
        # the language model follows `mode` (its released configs have no dropout to switch on)
        super().train(mode)
        self.lmm.eval()
        self.vae.eval()
        if self.checkpointing:
            self.language_model.train(mode)
        return self

    #: what recakit.lora.add_lora leaves trainable beside LoRA on SANA: upstream trains the
    #: glue in RecA, and it is small (OpenUni-L 0.23 B of 1.83 B trained parameters, B 0.05 B)
    trained_alongside_lora = GLUE_PREFIXES

    def freeze_for_reca(self, train_aligner: bool = False) -> dict:
        """Upstream's RecA split: InternVL and the DC-AE frozen; meta-queries, connector, projector
        and SANA trained. (InternVL's own projector is frozen too; there is no aligner to train.)"""
        if train_aligner:
            raise ValueError("OpenUni has no aligner to train: InternVL stays frozen in its RecA recipe")
        for parameter in self.parameters():
            parameter.requires_grad_(True)
        for module in (self.lmm, self.vae):
            module.requires_grad_(False)
            module.eval()
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"trainable": trainable, "frozen": sum(p.numel() for p in self.parameters()) - trainable}

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
        """Recompute activations of the two big trained stacks in the backward pass: the language
        model (its inputs carry the queries' gradient) and SANA."""
        self.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)
        self.transformer.enable_gradient_checkpointing()
        self.checkpointing = True
        self.train(self.training)

    def reca_adapter(self, processor) -> OpenUniAdapter:
        return OpenUniAdapter(self, processor)

    # -- the parts RecA trains, as upstream names them --------------------------------------------
    def checkpoint_state_dict(self, with_transformer: bool = True) -> dict[str, torch.Tensor]:
        """meta_queries, connector.*, projector.* (and transformer.*): an upstream-format checkpoint."""
        prefixes = GLUE_PREFIXES + (("transformer.",) if with_transformer else ())
        return {key: value for key, value in self.state_dict().items() if key.startswith(prefixes)}

    def load_checkpoint(self, state: dict[str, torch.Tensor]) -> dict:
        """Load an upstream-format checkpoint. Every glue key must be there; transformer.* is
        optional (a text-to-image base keeps SANA's hub weights) but all or nothing; lmm.* and
        vae.* (frozen, restored from their hub ids) are skipped. Any other key is an error that
        names it. Returns {"loaded": n, "skipped_frozen": m}."""
        state = _unwrap_checkpoint(state)
        own = self.state_dict()
        skipped = [key for key in state if key.startswith(FROZEN_PREFIXES)]
        state = {key: value for key, value in state.items() if not key.startswith(FROZEN_PREFIXES)}
        loadable = GLUE_PREFIXES + ("transformer.",)
        unexpected = sorted(key for key in state if key not in own or not key.startswith(loadable))
        wanted = [key for key in own if key.startswith(GLUE_PREFIXES)]
        if any(key.startswith("transformer.") for key in state):
            wanted += [key for key in own if key.startswith("transformer.")]
        missing = sorted(key for key in wanted if key not in state)
        wrong_shape = sorted(
            f"{key} {tuple(state[key].shape)} (model: {tuple(own[key].shape)})"
            for key in state
            if key in own and key not in unexpected and state[key].shape != own[key].shape
        )
        problems = [
            f"{label}: {', '.join(_shorten(keys))}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape))
            if keys
        ]
        if problems:
            raise ValueError("the checkpoint does not fit this OpenUni; " + "; ".join(problems))
        self.load_state_dict(state, strict=False)
        return {"loaded": len(state), "skipped_frozen": len(skipped)}

    # -- saving --------------------------------------------------------------------------------
    def save_pretrained(self, directory) -> None:
        """A folder load_openuni reads: openuni.json, the upstream-format weights (glue + SANA) in
        openuni.safetensors, and each component that no hub id restores in its own subfolder."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        components = {}
        for name, module, sub in (("internvl", self.lmm, "internvl"), ("vae", self.vae, "vae")):
            components[name] = self.sources.get(name) or sub
            if not self.sources.get(name):
                module.save_pretrained(directory / sub)
        # SANA's weights live in openuni.safetensors (RecA trains them); its config and sampler
        # scheduler come from the hub id, or from sana/ when it was built in code
        components["sana"] = self.sources.get("sana") or "sana"
        if not self.sources.get("sana"):
            self.transformer.save_config(directory / "sana" / "transformer")
            self.test_scheduler.save_config(directory / "sana" / "scheduler")
        connector = self.connector.config
        config = {
            "family": "openuni",
            "components": components,
            "num_queries": self.num_queries,
            "image_size": self.image_size,
            "vit_size": self.vit_size,
            "connector": {
                "hidden": connector.hidden_size,
                "intermediate": connector.intermediate_size,
                "heads": connector.num_attention_heads,
                "layers": connector.num_hidden_layers,
            },
            "train_scheduler": dict(self.train_scheduler.config),
            "weights": WEIGHTS_FILE,
        }
        save_file(
            {key: value.detach().contiguous().cpu() for key, value in self.checkpoint_state_dict().items()},
            str(directory / WEIGHTS_FILE),
        )
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")


def _unwrap_checkpoint(state):
    """Training frameworks wrap the weights ({"state_dict": ...}, {"module": ...}); take them out."""
    while isinstance(state, dict) and len(state) == 1 and next(iter(state)) in ("state_dict", "module", "model"):
        state = next(iter(state.values()))
    if not isinstance(state, dict):
        raise ValueError(f"an OpenUni checkpoint is a dict of tensors, got {type(state).__name__}")
    return state


def _shorten(keys: list[str], limit: int = 12) -> list[str]:
    return keys if len(keys) <= limit else keys[:limit] + [f"... ({len(keys) - limit} more)"]


def read_checkpoint(path) -> dict[str, torch.Tensor]:
    """An upstream .pth / .pt / .bin (torch.save) or a .safetensors file -> state dict."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path))
    return _unwrap_checkpoint(torch.load(path, map_location="cpu", weights_only=True))


# -- the tiny offline OpenUni --------------------------------------------------------------------

TINY_DEFAULTS = {
    "image_size": 32,  # generated pixels; the 2-stage DC-AE halves it -> 16 x 16 latents
    "vit_size": 32,  # InternViT input, patch 8 -> 16 patches -> 4 tokens after pixel shuffle
    "hidden_size": 64,  # language-model width = connector width
    "num_queries": 8,
    "vocab_size": 320,
}

#: words the tiny tokenizer knows whole, besides its special tokens: prompts of the tests and
#: notebooks and the reconstruction instructions stay a few tokens long
TINY_WORDS = (
    "a an the of and with on in to is this image photo picture generate describe every visual "
    "detail reproduce draw keep it as red green blue yellow purple orange pink brown black white "
    "circle square triangle star dog cat car left right above below one two three"
)


def _tiny_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer trained in code (deterministic) with InternVL3's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", IMAGE_START, IMAGE_END, IMAGE_CONTEXT]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(list(RECONSTRUCTION_INSTRUCTIONS) + [TINY_WORDS, UNCONDITIONAL_PROMPT] * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=specials[1:],
    )


def tiny_openuni(seed: int = 0, **overrides):
    """A tiny, randomly initialised OpenUni of the stock classes (InternVL 2 layers, DC-AE 2
    stages, SANA 2 layers) and its tokenizer, built offline in a few seconds.

    overrides: any of TINY_DEFAULTS. The same seed always gives the same weights."""
    from diffusers import (
        AutoencoderDC,
        DPMSolverMultistepScheduler,
        FlowMatchEulerDiscreteScheduler,
        SanaTransformer2DModel,
    )
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLVisionConfig, Qwen2Config

    unknown = set(overrides) - set(TINY_DEFAULTS)
    if unknown:
        raise ValueError(f"tiny_openuni got unknown options {sorted(unknown)}; use {sorted(TINY_DEFAULTS)}")
    size = {**TINY_DEFAULTS, **overrides}
    hidden, vit_size, image_size = size["hidden_size"], size["vit_size"], size["image_size"]
    patch = 8
    if vit_size % (2 * patch) or image_size % 4:
        raise ValueError(
            f"vit_size must be a multiple of {2 * patch} and image_size of 4, got {vit_size} and {image_size}"
        )
    tokenizer = _tiny_tokenizer(size["vocab_size"])
    vision = InternVLVisionConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=[vit_size, vit_size],
        patch_size=[patch, patch],
    )
    text = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_CONTEXT),
        image_seq_length=(vit_size // patch) ** 2 // 4,
    )
    latent_channels, caption_channels = 4, 32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lmm = InternVLForConditionalGeneration(config)
        vae = AutoencoderDC(
            in_channels=3,
            latent_channels=latent_channels,
            attention_head_dim=8,
            encoder_block_types=("ResBlock", "ResBlock"),
            decoder_block_types=("ResBlock", "ResBlock"),
            encoder_block_out_channels=(16, 32),
            decoder_block_out_channels=(16, 32),
            encoder_layers_per_block=(1, 1),
            decoder_layers_per_block=(1, 1),
            encoder_qkv_multiscales=((), ()),
            decoder_qkv_multiscales=((), ()),
            scaling_factor=0.5,
        )
        transformer = SanaTransformer2DModel(
            in_channels=latent_channels,
            out_channels=latent_channels,
            num_attention_heads=2,
            attention_head_dim=16,
            num_layers=2,
            num_cross_attention_heads=2,
            cross_attention_head_dim=16,
            cross_attention_dim=32,
            caption_channels=caption_channels,
            sample_size=image_size // 2,
            patch_size=2,
        )
        # SANA's sampler: DPM-Solver++ on flow sigmas with a shift, as its released scheduler configs
        test_scheduler = DPMSolverMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
        )
        model = OpenUniModel(
            lmm,
            transformer,
            vae,
            FlowMatchEulerDiscreteScheduler(),
            test_scheduler,
            connector_config(hidden, 2 * hidden, 4, layers=2),
            num_queries=size["num_queries"],
            image_size=image_size,
            vit_size=vit_size,
        )
    return model.eval(), tokenizer


# -- loading -------------------------------------------------------------------------------------


def is_openuni(name: str) -> bool:
    """A released size ("openuni-b", "openuni-l"), a folder save_pretrained wrote, an upstream
    checkpoint file, or a folder holding exactly one (e.g. a downloaded RecA repository)."""
    if name.lower() in OPENUNI_SIZES:
        return True
    path = Path(name).expanduser()
    if (path / CONFIG_FILE).is_file():
        return True
    return _checkpoint_in(path) is not None


def _checkpoint_in(path: Path) -> Path | None:
    if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
        return path
    if path.is_dir() and not (path / "config.json").exists():
        found = [file for file in path.iterdir() if file.suffix in CHECKPOINT_SUFFIXES]
        if len(found) == 1:
            return found[0]
    return None


def _size_of_checkpoint(state: dict) -> str:
    """OpenUni-B's queries are InternVL3-1B wide (896), OpenUni-L's InternVL3-2B wide (1536)."""
    width = state["meta_queries"].shape[-1] if "meta_queries" in state else None
    for name, size in OPENUNI_SIZES.items():
        if size.connector_hidden == width:
            return name
    widths = ", ".join(f"{name}: {size.connector_hidden}" for name, size in OPENUNI_SIZES.items())
    raise ValueError(f"not an OpenUni-B or -L checkpoint: meta_queries width {width} ({widths})")


def check_checkpoint_keys(state: dict, size: OpenUniSize) -> None:
    """Name the wrong keys of an upstream checkpoint from the size alone, before any hub part is
    fetched: the glue's key names follow from the connector's shape (built on the meta device,
    no memory). transformer.* keys and all shapes are checked by load_checkpoint once SANA is there."""
    from transformers.models.siglip.modeling_siglip import SiglipEncoder

    with torch.device("meta"):
        connector = SiglipEncoder(
            connector_config(size.connector_hidden, size.connector_intermediate, size.connector_heads)
        )
    glue = {"meta_queries", "projector.weight", "projector.bias"}
    glue |= {f"connector.{key}" for key in connector.state_dict()}
    keys = {key for key in _unwrap_checkpoint(state) if not key.startswith(FROZEN_PREFIXES + ("transformer.",))}
    problems = [
        f"{label}: {', '.join(_shorten(sorted(found)))}"
        for label, found in (("missing", glue - keys), ("unexpected", keys - glue))
        if found
    ]
    if problems:
        raise ValueError("the checkpoint does not fit this OpenUni; " + "; ".join(problems))


def fetch_components(size: OpenUniSize, *, checkpoint: bool, cache_dir=None) -> dict[str, str]:
    """Local paths of every hub part of one size (downloaded when online and not cached).

    Every id is tried before anything fails, so offline the error names all that are missing."""
    from huggingface_hub import hf_hub_download, snapshot_download

    jobs = {
        "internvl": lambda: snapshot_download(size.internvl, cache_dir=cache_dir),
        "sana": lambda: snapshot_download(
            size.sana, cache_dir=cache_dir, allow_patterns=["transformer/*", "scheduler/*", "model_index.json"]
        ),
        "vae": lambda: snapshot_download(DC_AE_ID, cache_dir=cache_dir),
    }
    if checkpoint:
        jobs["checkpoint"] = lambda: hf_hub_download(CHECKPOINT_REPO, size.checkpoint, cache_dir=cache_dir)
    ids = {
        "internvl": size.internvl,
        "sana": size.sana,
        "vae": DC_AE_ID,
        "checkpoint": f"{CHECKPOINT_REPO} ({size.checkpoint})",
    }
    paths, missing = {}, []
    for part, fetch in jobs.items():
        try:
            paths[part] = fetch()
        except Exception as error:  # the hub client raises a dozen types for "not reachable, not cached"
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            missing.append((ids[part], reason))
    if missing:
        # the checkpoint is one file of a repository of several: download that file only
        commands = "; ".join(
            f"`hf download {hub_id.split(' ')[0]}"
            + (f" {size.checkpoint}`" if hub_id.startswith(CHECKPOINT_REPO) else "`")
            for hub_id, _ in missing
        )
        reasons = "; ".join(f"{hub_id}: {reason}" for hub_id, reason in missing)
        raise ModelNotAvailableError(
            f"cannot assemble OpenUni: {len(missing)} of its parts are neither cached nor downloadable ({reasons}). "
            f"On a machine with internet, fetch them with {commands}, then run again."
        )
    return paths


def _build(
    internvl: str,
    sana: str,
    vae: str,
    connector,
    *,
    num_queries: int,
    image_size: int,
    vit_size: int,
    sources: dict,
    dtype,
    train_scheduler_config: dict | None = None,
) -> OpenUniModel:
    from diffusers import (
        AutoencoderDC,
        DPMSolverMultistepScheduler,
        FlowMatchEulerDiscreteScheduler,
        SanaTransformer2DModel,
    )
    from transformers import InternVLForConditionalGeneration

    lmm = InternVLForConditionalGeneration.from_pretrained(internvl, dtype=dtype)
    transformer_folder = Path(sana) / "transformer"
    if any(transformer_folder.glob("*.safetensors")):
        transformer = SanaTransformer2DModel.from_pretrained(sana, subfolder="transformer", torch_dtype=dtype)
    else:  # a config only: the weights come from openuni.safetensors
        transformer = SanaTransformer2DModel.from_config(SanaTransformer2DModel.load_config(str(transformer_folder)))
    test_scheduler = DPMSolverMultistepScheduler.from_pretrained(sana, subfolder="scheduler")
    # upstream's training scheduler: FlowMatchEuler read from SANA's scheduler folder (its unknown
    # keys ignored), i.e. 1000 timesteps and shift 1
    if train_scheduler_config is not None:
        train_scheduler = FlowMatchEulerDiscreteScheduler.from_config(train_scheduler_config)
    else:
        train_scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(sana, subfolder="scheduler")
    autoencoder = AutoencoderDC.from_pretrained(vae, torch_dtype=dtype)
    return OpenUniModel(
        lmm,
        transformer,
        autoencoder,
        train_scheduler,
        test_scheduler,
        connector,
        num_queries=num_queries,
        image_size=image_size,
        vit_size=vit_size,
        sources=sources,
    ).to(dtype)


def load_openuni(name_or_path: str, *, device=None, dtype=None, checkpoint=None, cache_dir=None):
    """OpenUni -> (model, tokenizer), in eval mode.

    name_or_path: "openuni-b" / "openuni-l" (InternVL3-1B/2B + SANA 0.6B/1.6B + DC-AE from their
    hub ids and upstream's text-to-image checkpoint from wusize/openuni); an upstream checkpoint
    file (.pth or .safetensors; its size is read from the queries' width), or a folder holding
    exactly one (a downloaded sanaka87/OpenUni-RecA); or a folder save_pretrained wrote.
    checkpoint: a file that replaces the default checkpoint of a released size.
    device: default cuda if available; dtype: default bfloat16 on cuda, float32 on cpu."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    name = str(name_or_path)
    folder = Path(name).expanduser()
    if (folder / CONFIG_FILE).is_file():
        if checkpoint is not None:
            raise ValueError(f"{folder} carries its own weights; pass checkpoint= only with a released size")
        model, tokenizer = _load_folder(folder, dtype, cache_dir)
    else:
        if name.lower() in OPENUNI_SIZES:
            size_name, state = name.lower(), None
            if checkpoint is not None:
                state = read_checkpoint(checkpoint)
        else:
            found = _checkpoint_in(folder)
            if found is None:
                raise FileNotFoundError(
                    f"{name} is neither {' nor '.join(OPENUNI_SIZES)}, nor an OpenUni folder "
                    f"({CONFIG_FILE}), nor a checkpoint file"
                )
            state = read_checkpoint(found)
            size_name = _size_of_checkpoint(state)
        size = OPENUNI_SIZES[size_name]
        if state is not None:  # a wrong file is named before gigabytes of hub parts are fetched
            check_checkpoint_keys(state, size)
        paths = fetch_components(size, checkpoint=state is None, cache_dir=cache_dir)
        if state is None:
            state = read_checkpoint(paths["checkpoint"])
        connector = connector_config(size.connector_hidden, size.connector_intermediate, size.connector_heads)
        model = _build(
            paths["internvl"],
            paths["sana"],
            paths["vae"],
            connector,
            num_queries=256,
            image_size=512,
            vit_size=448,
            dtype=dtype,
            sources={"internvl": size.internvl, "sana": size.sana, "vae": DC_AE_ID},
        )
        model.load_checkpoint(state)
        tokenizer = _tokenizer(paths["internvl"])
    model.to(device).eval()
    print(
        f"loaded OpenUni {name} ({str(dtype).replace('torch.', '')}) on {device}: "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters"
    )
    return model, tokenizer


# -- the family's entry in recakit.registry ------------------------------------------------------


def claims_checkpoint(name: str) -> bool:
    return is_openuni(name)


def load_checkpoint(name: str, *, device: torch.device, dtype=None, quantization: str | None = None):
    if quantization is not None:
        raise ValueError("quantization is for Janus checkpoints; OpenUni loads in bfloat16 or float32")
    return load_openuni(name, device=device, dtype=dtype)


def claims_model(model) -> bool:
    return isinstance(model, OpenUniModel)


def _tokenizer(source):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)


def _load_folder(folder: Path, dtype, cache_dir):
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    components = config["components"]
    hub = {part: source for part, source in components.items() if not (folder / source).exists()}
    local = {part: str(folder / source) for part, source in components.items() if part not in hub}
    if hub:
        # parts recorded by hub id: fetch them all (offline, one error naming each)
        sizes = [
            size
            for size in OPENUNI_SIZES.values()
            if size.internvl == hub.get("internvl", size.internvl) and size.sana == hub.get("sana", size.sana)
        ]
        if not sizes:
            raise ValueError(f"{folder / CONFIG_FILE} names hub parts of no released OpenUni: {hub}")
        fetched = fetch_components(sizes[0], checkpoint=False, cache_dir=cache_dir)
        local.update({part: fetched[part] for part in hub})
    shape = config["connector"]
    connector = connector_config(shape["hidden"], shape["intermediate"], shape["heads"], shape["layers"])
    model = _build(
        local["internvl"],
        local["sana"],
        local["vae"],
        connector,
        num_queries=config["num_queries"],
        image_size=config["image_size"],
        vit_size=config["vit_size"],
        dtype=dtype,
        sources=hub,
        train_scheduler_config=config.get("train_scheduler"),
    )
    model.load_checkpoint(read_checkpoint(folder / config["weights"]))
    # the tokenizer is saved beside the model (training and notebooks do), else InternVL's own
    tokenizer_source = folder if (folder / "tokenizer_config.json").is_file() else local["internvl"]
    return model, _tokenizer(tokenizer_source)


# -- the adapter ---------------------------------------------------------------------------------


class OpenUniAdapter(UnifiedAdapter):
    """RecA's view of an OpenUniModel (see recakit.adapter for the contract).

    A prefix is the InternVL3 chat turn of the prompt, left-padded, ending with the image-start
    tag; the meta-queries are appended after it inside the loss and the sampler. Prefixes:
    - text to image: "Generate an image: {prompt}"; dropped rows get the unconditional
      "Generate an image." (upstream's classifier-free-guidance prompt);
    - RecA: "<img>" + InternVL's vision features at the image-context slots + "</img>\\n" and an
      instruction; RecA's instruction dropout empties only the instruction and keeps the image
      (`takes_instructions`), so dropout never turns a RecA row into text-to-image. A row whose
      `drop` flag is set gets the unconditional prompt, as in text to image (guidance's other row).
    Training images are centre-cropped to square before both the vision encoder and the DC-AE."""

    takes_instructions = True
    default_cfg_scale = 4.5
    default_steps = 20

    def __init__(self, model: OpenUniModel, tokenizer):
        if tokenizer is None:
            raise ValueError("OpenUniAdapter needs the tokenizer returned by load_openuni / tiny_openuni")
        self.model = model
        self.processor = tokenizer
        self.tokenizer = tokenizer
        self.image_context_id = model.lmm.config.image_token_id
        self.num_understanding_tokens = model.lmm.config.image_seq_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    # -- pixels --------------------------------------------------------------------------------
    def _pixels(self, images) -> torch.Tensor:
        """Centre-cropped, resized to the generation size, in [-1, 1], (B, 3, S, S)."""
        side = self.model.image_size
        arrays = [
            np.asarray(center_crop_square(image).resize((side, side), Image.Resampling.BICUBIC))
            for image in load_images(images)
        ]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return pixels.to(self.device, self.model.dtype)

    def understanding_embeddings(self, images, resolution: int | None = None) -> torch.Tensor:
        """InternViT + pixel shuffle + projector at the vision encoder's input size (448 for the
        released models), (B, N, D). `resolution` shrinks the image to that side first, then
        scales it back up: the encoder sees its usual shape but only that much detail."""
        return self._understand(self._pixels(images), resolution)

    def _understand(self, pixels: torch.Tensor, resolution: int | None) -> torch.Tensor:
        pixels = (pixels + 1.0) / 2.0
        pixels = (pixels - self.model.vit_mean.to(pixels.dtype)) / self.model.vit_std.to(pixels.dtype)
        if resolution is not None:
            pixels = F.interpolate(pixels, size=(resolution, resolution), mode="bilinear")
        pixels = F.interpolate(pixels, size=(self.model.vit_size, self.model.vit_size), mode="bilinear")
        with torch.no_grad():
            features = self.model.lmm.model.get_image_features(pixel_values=pixels)
        return getattr(features, "pooler_output", features)

    def generation_targets(self, images) -> torch.Tensor:
        """DC-AE latents of each image (scaled by the autoencoder's scaling factor), (B, C, h, w)."""
        return self._encode(self._pixels(images))

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            vae = self.model.vae
            return vae.encode(pixels).latent * vae.config.scaling_factor

    def reca_views(self, images, resolution: int | None = None):
        """Both RecA views from one crop-and-resize of each image: the DC-AE and InternViT read the
        same pixels."""
        pixels = self._pixels(images)
        return self._encode(pixels), self._understand(pixels, resolution)

    def decode_latents(self, latents: torch.Tensor) -> list[Image.Image]:
        """Latents -> RGB images, one at a time so an image never depends on its batch."""
        images = []
        vae = self.model.vae
        with torch.no_grad():
            for latent in latents:
                pixels = vae.decode(latent[None].to(vae.dtype) / vae.config.scaling_factor).sample[0]
                array = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
                images.append(Image.fromarray(array))
        return images

    # -- prefixes ------------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(INSTRUCTION.format(input=text) + IMAGE_START, add_special_tokens=True)["input_ids"]

    def prefix_from_text(self, prompts, drop=None):
        flags = drop_flags(drop, len(prompts))
        rows = [
            self._ids(UNCONDITIONAL_PROMPT if dropped else GENERATION_TEMPLATE.format(prompt=prompt.strip()))
            for prompt, dropped in zip(prompts, flags)
        ]
        ids, mask = left_pad(rows, self.pad_id, self.device)
        return self.model.lmm.get_input_embeddings()(ids), mask

    def prefix_from_embeddings(self, embeddings, drop=None, instructions=None):
        if instructions is None:
            instructions = [RECONSTRUCTION_INSTRUCTIONS[0]] * len(embeddings)
        if len(instructions) != len(embeddings):
            raise ValueError(f"{len(instructions)} instructions for {len(embeddings)} images")
        flags = drop_flags(drop, len(embeddings))
        image = IMAGE_START + IMAGE_CONTEXT * embeddings.shape[1] + IMAGE_END + "\n"
        rows = [
            self._ids(UNCONDITIONAL_PROMPT if dropped else image + instruction)
            for instruction, dropped in zip(instructions, flags)
        ]
        ids, mask = left_pad(rows, self.pad_id, self.device)
        embeds = self.model.lmm.get_input_embeddings()(ids)
        slots = (ids == self.image_context_id).unsqueeze(-1).expand_as(embeds)
        kept = embeddings[~torch.tensor(flags, device=embeddings.device)]  # dropped rows hold no image
        return embeds.masked_scatter(slots, kept.to(embeds.dtype).reshape(-1)), mask

    # -- prefix -> SANA's condition ------------------------------------------------------------
    def conditions(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Append the meta-queries, run the language model, and map its states at the queries
        through connector and projector -> SANA's prompt embeddings (B, num_queries, caption_channels)."""
        rows = inputs_embeds.shape[0]
        queries = self.model.meta_queries[None].expand(rows, -1, -1).to(inputs_embeds.dtype)
        embeds = torch.cat([inputs_embeds, queries], dim=1)
        mask = torch.cat([attention_mask, attention_mask.new_ones(rows, queries.shape[1])], dim=1)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        hidden = self.model.language_model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        states = self.model.connector(inputs_embeds=hidden[:, -queries.shape[1] :]).last_hidden_state
        return self.model.projector(states)

    # -- the flow-matching loss ----------------------------------------------------------------
    def generation_loss(self, inputs_embeds, attention_mask, targets, noise_seeds=None) -> torch.Tensor:
        """Rectified-flow loss on latents `targets`, as upstream: per row a timestep drawn
        uniformly from the training scheduler's 1000 (weighting "none"), x_t = (1 - s) x + s n,
        SANA predicts the velocity n - x; mean squared error per image, then over images.
        Row j's timestep and noise come from a CPU generator seeded with noise_seeds[j] (or from
        torch's global generator), so they do not depend on the batch or the device."""
        conditions = self.conditions(inputs_embeds, attention_mask)
        latents = targets.to(conditions.device, conditions.dtype)
        scheduler = self.model.train_scheduler
        timesteps, sigmas, noises = [], [], []
        for j in range(len(latents)):
            generator = torch.Generator().manual_seed(int(noise_seeds[j])) if noise_seeds is not None else None
            index = int(torch.rand((), generator=generator) * scheduler.config.num_train_timesteps)
            timesteps.append(scheduler.timesteps[index])
            sigmas.append(scheduler.sigmas[index])
            noises.append(torch.randn(latents.shape[1:], generator=generator))
        timestep = torch.stack(timesteps).to(latents.device)
        sigma = torch.stack(sigmas).to(latents.device, latents.dtype).view(-1, 1, 1, 1)
        noise = torch.stack(noises).to(latents.device, latents.dtype)
        noisy = (1.0 - sigma) * latents + sigma * noise
        prediction = self.model.transformer(
            hidden_states=noisy, encoder_hidden_states=conditions, timestep=timestep, return_dict=False
        )[0]
        return ((prediction.float() - (noise - latents).float()) ** 2).flatten(1).mean(1).mean()

    # -- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_images(
        self,
        build_prefix,
        count: int,
        *,
        cfg_scale: float,
        seeds: list[int],
        steps: int | None = None,
        batch_size: int | None = None,
        progress: bool = True,
        desc: str = "sampling",
    ) -> list[Image.Image]:
        """SanaPipeline on the queries' conditions (upstream's sampler): SANA's DPM-Solver,
        `steps` steps (default 20), guidance `cfg_scale` against the unconditional prompt, the
        configured image size, latents decoded one by one. Each row's starting noise comes from
        its own seed, so an image depends on its prompt and seed only."""
        from diffusers import SanaPipeline

        steps = self.default_steps if steps is None else steps
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        pipeline = SanaPipeline(
            tokenizer=None,
            text_encoder=None,
            vae=self.model.vae,
            transformer=self.model.transformer,
            scheduler=self.model.test_scheduler,
        )
        pipeline.set_progress_bar_config(disable=True)
        side = self.model.image_size
        guided = cfg_scale > 1  # SanaPipeline guides only above 1
        images = []
        with evaluating(self.model), tqdm(total=count, desc=desc, unit="img", disable=not progress) as bar:
            batches = prefix_batches(build_prefix, count, batch_size or DEFAULT_BATCH_SIZE, guided, seeds, "cpu")
            for inputs, mask, generators in batches:
                rows = len(generators)
                conditions = self.conditions(inputs, mask)
                ones = torch.ones(conditions.shape[:2], dtype=torch.long, device=conditions.device)
                latents = pipeline(
                    prompt_embeds=conditions[:rows],
                    prompt_attention_mask=ones[:rows],
                    negative_prompt=None,
                    negative_prompt_embeds=conditions[rows:] if guided else None,
                    negative_prompt_attention_mask=ones[rows:] if guided else None,
                    guidance_scale=cfg_scale,
                    num_inference_steps=steps,
                    height=side,
                    width=side,
                    generator=generators,
                    output_type="latent",
                    use_resolution_binning=False,
                    complex_human_instruction=None,
                ).images
                images += self.decode_latents(latents)
                bar.update(rows)
        return images
