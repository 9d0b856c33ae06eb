"""The whole Champ teacher: reference UNet, denoising UNet, guidance encoders, CLIP image encoder, VAE."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from .checkpoint import (
    WEIGHTS_NAME,
    ChampCheckpointError,
    assign_state,
    check_state,
    read_model_folder,
    short_list,
    write_model_folder,
)
from .config import ModelConfig, model_config
from .guidance import GuidanceEncoders
from .reference_attention import ReferenceBank
from .unet import DenoisingUNet, ReferenceUNet, fold_frames, unfold_frames

# CLIPImageProcessor's normalisation (sd-image-variations' image_encoder preprocessing)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def nonfinite_keys(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding NaN or inf."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def check_finite(state: dict[str, torch.Tensor], source: str, dtype: torch.dtype | None = None) -> None:
    """Refuse weights with NaN/inf (a diverged or corrupted run would otherwise give silent wrong numbers)."""
    bad = nonfinite_keys(state)
    if bad:
        cast = f" after the cast to {str(dtype).removeprefix('torch.')}" if dtype is not None else ""
        raise ChampCheckpointError(
            f"{source}: {len(bad)} tensor(s) hold NaN or inf{cast}: {short_list(bad, 5)}; "
            "the weights are unusable (a diverged or damaged run): retrain or restore them"
        )


@dataclass
class Conditioning:
    """Everything a D-UNet call needs besides the noisy sample; computed once per clip and reused."""

    clip_embeds: torch.Tensor  # (B, 1, D)
    bank: ReferenceBank | None
    guidance_features: torch.Tensor | None  # (B, C0, h, w) or (B, C0, F, h, w)

    def uncond(self) -> Conditioning:
        """Champ's unconditional branch: CLIP embedding zeroed, no reference bank, pose guidance kept."""
        return Conditioning(torch.zeros_like(self.clip_embeds), None, self.guidance_features)

    def select(self, index: torch.Tensor) -> Conditioning:
        """Pick / reorder entries along the batch axis (all three parts together)."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.clip_embeds.device)
        return Conditioning(
            self.clip_embeds.index_select(0, index),
            None if self.bank is None else self.bank.select(index),
            None if self.guidance_features is None else self.guidance_features.index_select(0, index),
        )

    def with_bank(self, bank: ReferenceBank | None) -> Conditioning:
        return replace(self, bank=bank)


ROLES = ("teacher", "student")


class ChampModel(nn.Module):
    def __init__(self, config: ModelConfig, motion_modules: bool = False):
        super().__init__()
        self.config = config
        self.role: str | None = None  # "student" (distilled, few-step LCM) / "teacher", as config.json says
        self.reference_unet = ReferenceUNet(config)
        self.denoising_unet = DenoisingUNet(config, motion_modules=motion_modules)
        self.guidance_encoders = GuidanceEncoders(
            config.guidance_types,
            out_channels=config.unet["block_out_channels"][0],
            block_out_channels=config.guidance_block_out_channels,
            heads=config.guidance_attention_heads,
        )
        self.image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**config.clip))
        self.vae = AutoencoderKL(**config.vae)

    @classmethod
    def build(cls, config: ModelConfig | str, motion_modules: bool = False, device="cpu") -> ChampModel:
        """A randomly initialised model (zero-initialised guidance and motion outputs, as Champ).

        device may be "meta"."""
        config = model_config(config) if isinstance(config, str) else config
        with torch.device(device):
            model = cls(config, motion_modules=motion_modules)
        return model.eval()

    @classmethod
    def from_pretrained(cls, directory, device="cpu", dtype: torch.dtype | None = None) -> ChampModel:
        """Load a checkpoint written by ``save_pretrained`` (safetensors + config.json)."""
        meta, cfg, state = read_model_folder(directory)
        model = cls.build(cfg, motion_modules=meta["motion_modules"], device="meta")
        source = str(Path(directory) / WEIGHTS_NAME)
        check_state(model.state_dict(), state, source)
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        check_finite(state, source, dtype)
        assign_state(model, state, source=source)
        model.role = meta.get("role")  # absent in folders saved before roles were recorded: None
        return model.to(device).eval()

    def save_pretrained(self, directory, role: str | None = None) -> Path:
        """Write ``config.json`` (model config + motion flag) and ``model.safetensors`` (atomically).

        ``role`` ("student" for a distilled denoising UNet, "teacher") is recorded in config.json when given;
        ``cosec animate`` picks its default sampler from it. Older folders simply lack the field."""
        if role is not None and role not in ROLES:
            raise ValueError(f"save_pretrained: role must be one of {ROLES}, got {role!r}")
        meta = {
            "model_config": self.config.to_dict(),
            "motion_modules": self.denoising_unet.has_motion_modules,
            "dtype": str(self.dtype).removeprefix("torch."),
        }
        if role is not None:
            meta["role"] = role
        return write_model_folder(directory, self.state_dict(), meta)

    def restore_buffers(self) -> None:
        """Rebuild the non-persistent buffers a meta-built model lacks after loading (CLIP position ids)."""
        emb = self.image_encoder.vision_model.embeddings
        if emb.position_ids.is_meta:
            emb.position_ids = torch.arange(emb.num_positions).expand((1, -1))

    @property
    def scaling_factor(self) -> float:
        return self.config.scaling_factor

    @property
    def dtype(self) -> torch.dtype:
        return self.denoising_unet.unet.conv_in.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.denoising_unet.unet.conv_in.weight.device

    def encode_latents(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1], (B,3,H,W) or (B,3,F,H,W) -> latents (B,4,h,w) / (B,4,F,h,w) (posterior mean x 0.18215)."""
        video = pixels.ndim == 5
        x = fold_frames(pixels) if video else pixels
        latents = self.vae.encode(x.to(self.vae.dtype)).latent_dist.mean * self.scaling_factor
        return unfold_frames(latents, pixels.shape[2]) if video else latents

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> pixels in [-1, 1] (clamped), frames folded through the 2D decoder."""
        video = latents.ndim == 5
        z = fold_frames(latents) if video else latents
        pixels = self.vae.decode(z.to(self.vae.dtype) / self.scaling_factor).sample.clamp(-1, 1)
        return unfold_frames(pixels, latents.shape[2]) if video else pixels

    def clip_embeds(self, ref_pixels: torch.Tensor) -> torch.Tensor:
        """Reference pixels (B,3,H,W) in [-1, 1] -> CLIP image embedding (B,1,D).

        Preprocessing as CLIPImageProcessor: bicubic resize of the short side, centre crop, CLIP mean/std.
        """
        size = self.image_encoder.config.image_size
        x = (ref_pixels.float() + 1) / 2
        h, w = x.shape[-2:]
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[..., top : top + size, left : left + size].clamp(0, 1)
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        x = ((x - mean) / std).to(self.image_encoder.dtype)
        return self.image_encoder(pixel_values=x).image_embeds.unsqueeze(1)

    def condition(self, ref_pixels: torch.Tensor, guidance: dict[str, torch.Tensor]) -> Conditioning:
        """One reference pass (bank) and one guidance pass per clip; reuse the result for every step."""
        clip = self.clip_embeds(ref_pixels).to(self.dtype)
        bank = self.reference_unet(self.encode_latents(ref_pixels).to(self.dtype), clip)
        return Conditioning(clip, bank, self.guidance_encoders(guidance))

    def predict(
        self, unet: DenoisingUNet, sample: torch.Tensor, timestep, cond: Conditioning
    ) -> torch.Tensor:
        """v prediction of ``unet`` (teacher, student or target copy) under a shared Conditioning."""
        return unet(sample, timestep, cond.clip_embeds, cond.guidance_features, cond.bank)
