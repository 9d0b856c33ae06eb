"""Typed model configuration: one dataclass for every size, ``tiny`` for CPU tests and ``sd15`` for Champ.

Both sizes share the SD1.5 block structure (3 CrossAttnDown + Down, layers_per_block 2):
16 transformer blocks (the reference bank) and 21 motion modules, so the same code path runs.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

GUIDANCE_TYPES: tuple[str, ...] = ("depth", "normal", "semantic_map", "dwpose")

_SD15_BLOCKS = {
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "layers_per_block": 2,
    "in_channels": 4,
    "out_channels": 4,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_eps": 1e-5,
}


@dataclass
class MotionConfig:
    """AnimateDiff "Vanilla" temporal module as Champ configures it (inference.yaml / stage2.yaml)."""

    num_attention_heads: int = 8
    max_len: int = 32  # sinusoidal temporal position table length (frames per window <= max_len)
    norm_num_groups: int = 32


@dataclass
class ModelConfig:
    name: str
    unet: dict[str, Any]  # UNet2DConditionModel kwargs (SD1.5-shaped)
    guidance_block_out_channels: tuple[int, ...]
    guidance_attention_heads: int
    clip: dict[str, Any]  # CLIPVisionConfig kwargs; projection_dim == unet cross_attention_dim
    vae: dict[str, Any]  # AutoencoderKL kwargs (incl. scaling_factor)
    resolution: int  # pixels (square)
    motion: MotionConfig = field(default_factory=MotionConfig)
    guidance_types: tuple[str, ...] = GUIDANCE_TYPES

    def __post_init__(self) -> None:
        if isinstance(self.motion, dict):
            self.motion = MotionConfig(**self.motion)
        self.guidance_block_out_channels = tuple(self.guidance_block_out_channels)
        self.guidance_types = tuple(self.guidance_types)
        if self.clip["projection_dim"] != self.unet["cross_attention_dim"]:
            raise ValueError(
                f"config {self.name!r}: clip projection_dim {self.clip['projection_dim']} must equal "
                f"unet cross_attention_dim {self.unet['cross_attention_dim']}"
            )
        factor = self.vae_factor
        guidance_factor = 2 ** (len(self.guidance_block_out_channels) - 1)
        if guidance_factor != factor:
            raise ValueError(
                f"config {self.name!r}: the guidance encoders downsample {guidance_factor}x "
                f"({len(self.guidance_block_out_channels)} channel entries) but the VAE {factor}x "
                f"({len(self.vae['block_out_channels'])} blocks); give both the same number of entries"
            )
        if self.resolution % factor:
            raise ValueError(
                f"config {self.name!r}: resolution {self.resolution} is not a multiple of {factor}"
            )
        self.unet["sample_size"] = self.latent_size  # derived: resolution / VAE factor

    @property
    def vae_factor(self) -> int:
        """Pixels per latent cell: 8 for SD's VAE (4 blocks), 4 for a 3-block VAE."""
        return 2 ** (len(self.vae["block_out_channels"]) - 1)

    @property
    def latent_size(self) -> int:
        return self.resolution // self.vae_factor

    @property
    def scaling_factor(self) -> float:
        return float(self.vae["scaling_factor"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**copy.deepcopy(data))


def _sd15() -> ModelConfig:
    return ModelConfig(
        name="sd15",
        unet={
            **_SD15_BLOCKS,
            "block_out_channels": [320, 640, 1280, 1280],
            "cross_attention_dim": 768,
            "attention_head_dim": 8,  # SD1.5's historical name: this is the number of heads
            "norm_num_groups": 32,
        },
        guidance_block_out_channels=(16, 32, 96, 256),
        guidance_attention_heads=8,
        clip={
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
            "projection_dim": 768,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
        },
        vae={
            "block_out_channels": [128, 256, 512, 512],
            "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4,
            "layers_per_block": 2,
            "latent_channels": 4,
            "norm_num_groups": 32,
            "sample_size": 256,
            "scaling_factor": 0.18215,
        },
        resolution=512,
    )


def _tiny() -> ModelConfig:
    return ModelConfig(
        name="tiny",
        unet={
            **_SD15_BLOCKS,
            "block_out_channels": [16, 32, 64, 64],  # same channel changes as SD1.5 (x2, x2, x1)
            "cross_attention_dim": 32,
            "attention_head_dim": 2,
            "norm_num_groups": 8,
        },
        # Champ builds the odd-indexed guidance attentions with 32 groups, so these must be multiples of 32
        guidance_block_out_channels=(16, 32, 32, 32),
        guidance_attention_heads=4,
        clip={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": 32,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
        },
        vae={
            "block_out_channels": [8, 16, 32, 32],
            "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4,
            "layers_per_block": 1,
            "latent_channels": 4,
            "norm_num_groups": 8,
            "sample_size": 64,
            "scaling_factor": 0.18215,
        },
        resolution=64,
        motion=MotionConfig(num_attention_heads=4, max_len=32, norm_num_groups=8),
    )


_CONFIGS = {"tiny": _tiny, "sd15": _sd15}


def model_config(name: str) -> ModelConfig:
    """A fresh ModelConfig by name: ``tiny`` (64 px, CPU tests) or ``sd15`` (512 px, Champ's shapes)."""
    try:
        return _CONFIGS[name]()
    except KeyError:
        raise ValueError(f"unknown model config {name!r}; choose one of {sorted(_CONFIGS)}") from None


@dataclass
class ModelSize:
    """Which ModelConfig to build: a preset plus the few overrides the embedded benchmark needs."""

    base: str = "tiny"  # tiny | sd15
    resolution: int | None = None  # pixels; None keeps the preset's
    unet_channels: list[int] | None = None  # UNet block_out_channels; None keeps the preset's
    vae_channels: list[int] | None = None  # VAE block_out_channels: 4 blocks = 8x down (SD), 3 blocks = 4x
    vae_layers_per_block: int | None = None
    guidance_channels: list[int] | None = None  # None: the preset's, cut to the VAE's number of blocks

    def build_config(self) -> ModelConfig:
        cfg = model_config(self.base)
        data = cfg.to_dict()
        if self.unet_channels is not None:
            data["unet"]["block_out_channels"] = list(self.unet_channels)
        if self.vae_channels is not None:
            n = len(self.vae_channels)
            data["vae"]["block_out_channels"] = list(self.vae_channels)
            data["vae"]["down_block_types"] = [data["vae"]["down_block_types"][0]] * n
            data["vae"]["up_block_types"] = [data["vae"]["up_block_types"][0]] * n
            if self.guidance_channels is None:
                data["guidance_block_out_channels"] = list(data["guidance_block_out_channels"])[:n]
        if self.guidance_channels is not None:
            data["guidance_block_out_channels"] = list(self.guidance_channels)
        if self.vae_layers_per_block is not None:
            data["vae"]["layers_per_block"] = self.vae_layers_per_block
        if self.resolution is not None:
            data["resolution"] = self.resolution
            data["vae"]["sample_size"] = self.resolution
        return ModelConfig.from_dict(data)  # the UNet's sample_size follows the latent size there
