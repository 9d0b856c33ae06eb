"""Teacher sampling as Champ: DDIM on Champ's schedule with classifier-free guidance.

The caller computes the Conditioning once per clip (one reference-UNet pass, one guidance
pass); every step reuses it, so the reference UNet never runs inside the loop. CFG follows
Champ: v = v_uncond + s (v_cond - v_uncond), the unconditional branch being
``cond.uncond()`` (CLIP zeroed, no bank, guidance kept). The two branches run one after the
other (same numbers as Champ's batched pass, half the peak memory).
"""

from __future__ import annotations

import torch

from ..models.champ import ChampModel, Conditioning
from ..models.unet import DenoisingUNet
from .schedule import NoiseSchedule


@torch.no_grad()
def sample_teacher(
    model: ChampModel,
    cond: Conditioning,
    shape: tuple[int, ...],
    num_steps: int = 20,
    guidance_scale: float = 3.5,
    generator: torch.Generator | None = None,
    schedule: NoiseSchedule = NoiseSchedule(),
    unet: DenoisingUNet | None = None,
    latents: torch.Tensor | None = None,
) -> torch.Tensor:
    """Latents of shape ``shape`` ((B,4,h,w) or (B,4,F,h,w)) after ``num_steps`` DDIM steps.

    ``unet`` defaults to ``model.denoising_unet``; ``latents`` (initial noise) defaults to a draw
    from ``generator``. guidance_scale <= 1 skips the unconditional branch.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    unet = model.denoising_unet if unet is None else unet
    scheduler = schedule.ddim()
    scheduler.set_timesteps(num_steps, device=model.device)
    if latents is None:
        latents = torch.randn(shape, generator=generator, dtype=torch.float32, device="cpu")
    latents = latents.to(device=model.device, dtype=torch.float32) * scheduler.init_noise_sigma
    uncond = cond.uncond() if guidance_scale > 1 else None
    for t in scheduler.timesteps:
        timestep = t.expand(shape[0]).to(model.device)
        x = latents.to(model.dtype)
        v = model.predict(unet, x, timestep, cond).float()
        if uncond is not None:
            v_u = model.predict(unet, x, timestep, uncond).float()
            v = v_u + guidance_scale * (v - v_u)
        latents = scheduler.step(v, t, latents, eta=0.0).prev_sample
    return latents
