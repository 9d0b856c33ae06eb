"""Champ's training objectives: v-prediction denoising on frames (stage 1) and on clips (stage 2)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from cosec.diffusion.schedule import NoiseSchedule
from cosec.models import ChampModel, Conditioning
from cosec.train.batches import to_device


def denoising_loss(
    model: ChampModel,
    latents: torch.Tensor,
    cond: Conditioning,
    schedule: NoiseSchedule,
    generator: torch.Generator | None = None,
    snr_gamma: float | None = None,
) -> torch.Tensor:
    """v-prediction MSE at a uniformly drawn timestep (zero-terminal-SNR table, so t = 999 is pure noise).

    ``snr_gamma`` enables Min-SNR weighting (Champ's stage-1 option), adapted to v targets: weight
    min(SNR, gamma) / (SNR + 1).
    """
    b = latents.shape[0]
    t = torch.randint(0, schedule.num_train_timesteps, (b,), generator=generator, device="cpu").to(
        latents.device
    )
    noise = torch.randn(latents.shape, generator=generator, device="cpu").to(latents)
    alpha, sigma = schedule.alpha_sigma(t, latents.ndim)
    alpha, sigma = alpha.to(latents), sigma.to(latents)
    noisy = alpha * latents + sigma * noise
    target = alpha * noise - sigma * latents  # v
    pred = model.predict(model.denoising_unet, noisy, t, cond)
    per_sample = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    if snr_gamma is not None:
        snr = (alpha / sigma.clamp_min(1e-8)).pow(2).flatten()
        per_sample = per_sample * torch.clamp(snr, max=snr_gamma) / (snr + 1)
    return per_sample.mean()


class _Stage(nn.Module):
    """Shared plumbing: frozen VAE/CLIP encodes under no_grad; which parts train is the stage's choice."""

    def __init__(
        self,
        model: ChampModel,
        schedule: NoiseSchedule,
        uncond_prob: float,
        seed: int,
        snr_gamma: float | None = None,
    ):
        super().__init__()
        self.model = model
        self.schedule = schedule
        self.uncond_prob = uncond_prob
        self.snr_gamma = snr_gamma  # Min-SNR weighting (None: plain MSE, the default)
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def _encode(
        self, pixels: torch.Tensor, refs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = self.model
        return m.encode_latents(pixels), m.encode_latents(refs), m.clip_embeds(refs)

    def _drop_reference(self) -> bool:
        # Champ drops the whole reference condition for a batch (clip zeroed, no bank) with this probability
        return bool(torch.rand((), generator=self.generator) < self.uncond_prob)


class TeacherStage1(_Stage):
    """Stage 1: reference UNet, denoising UNet and guidance encoders learn on single frames; with
    ``train_image_encoder`` the CLIP image encoder too (the embedded model has no pretrained CLIP: a frozen
    random one hands every reference nearly the same token)."""

    def __init__(self, *args, train_image_encoder: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_image_encoder = train_image_encoder

    def trainable(self) -> list[nn.Parameter]:
        m = self.model
        parts = [m.reference_unet, m.denoising_unet, m.guidance_encoders]
        parts += [m.image_encoder] if self.train_image_encoder else []
        return [p for part in parts for p in part.parameters()]

    def forward(self, batch: Mapping) -> tuple[torch.Tensor, dict[str, float]]:
        batch = to_device(batch, self.model.device)
        if self.train_image_encoder:
            with torch.no_grad():
                latents, ref_latents = (
                    self.model.encode_latents(batch[k]) for k in ("pixel_values", "ref_pixels")
                )
            clip = self.model.clip_embeds(batch["ref_pixels"])  # with its graph
        else:
            latents, ref_latents, clip = self._encode(batch["pixel_values"], batch["ref_pixels"])
        guidance = self.model.guidance_encoders(batch["guidance"])
        if self._drop_reference():
            cond = Conditioning(torch.zeros_like(clip), None, guidance)
        else:
            cond = Conditioning(clip, self.model.reference_unet(ref_latents, clip), guidance)
        loss = denoising_loss(
            self.model, latents, cond, self.schedule, self.generator, snr_gamma=self.snr_gamma
        )
        return loss, {"loss_denoise": float(loss.detach())}


class TeacherStage2(_Stage):
    """Stage 2: only the motion modules learn, on clips; everything else stays as stage 1 left it."""

    def trainable(self) -> list[nn.Parameter]:
        return list(self.model.denoising_unet.motion_parameters())

    def forward(self, batch: Mapping) -> tuple[torch.Tensor, dict[str, float]]:
        batch = to_device(batch, self.model.device)
        clip_pixels, refs = batch["pixel_values"], batch["ref_pixels"]
        latents, ref_latents, clip = self._encode(clip_pixels, refs)
        with torch.no_grad():
            guidance = self.model.guidance_encoders(batch["guidance"])
            bank = None if self._drop_reference() else self.model.reference_unet(ref_latents, clip)
        cond = Conditioning(clip if bank is not None else torch.zeros_like(clip), bank, guidance)
        loss = denoising_loss(
            self.model, latents, cond, self.schedule, self.generator, snr_gamma=self.snr_gamma
        )
        return loss, {"loss_denoise": float(loss.detach())}
