"""Teacher sampling as Champ: DDIM on Champ's schedule with classifier-free guidance.

The caller computes the reference part of the Conditioning once per video (one reference-UNet pass, one
CLIP pass); every step and every context window reuses it, so the reference UNet never runs inside the loop.
CFG follows Champ: v = v_uncond + s (v_cond - v_uncond), the unconditional branch being ``cond.uncond()``
(CLIP zeroed, no bank, guidance kept). The two branches run one after the other (same numbers as Champ's
batched pass, half the peak memory). Clips longer than one context window are denoised window by window at
every step (cosec.diffusion.windows), so memory does not grow with their length.
"""

from __future__ import annotations

import torch

from ..models.champ import ChampModel, Conditioning
from ..models.unet import DenoisingUNet
from .schedule import NoiseSchedule
from .windows import ContextWindows, Progress, WindowGuidance, windowed_predict


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
    windows: ContextWindows | None = None,
    guidance: WindowGuidance | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Latents of shape ``shape`` ((B,4,h,w) or (B,4,F,h,w)) after ``num_steps`` DDIM steps.

    ``unet`` defaults to ``model.denoising_unet``; ``latents`` (initial noise) defaults to a draw
    from ``generator``. guidance_scale <= 1 skips the unconditional branch. Clips are denoised over
    ``windows`` (default: Champ's 24 frames, overlap 4; a clip of at most 24 frames is one plain call), with
    guidance features from ``cond.guidance_features`` or, when those are None, per window from ``guidance``.
    ``progress.update(1)`` is called after every window of every step.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    unet = model.denoising_unet if unet is None else unet
    scheduler = schedule.ddim()
    scheduler.set_timesteps(num_steps, device=model.device)
    if latents is None:
        latents = torch.randn(shape, generator=generator, dtype=torch.float32, device="cpu")
    latents = latents.to(device=model.device, dtype=torch.float32) * scheduler.init_noise_sigma
    use_cfg = guidance_scale > 1
    for t in scheduler.timesteps:
        timestep = t.expand(shape[0]).to(model.device)

        def predict(x: torch.Tensor, c: Conditioning, timestep=timestep) -> torch.Tensor:
            v = model.predict(unet, x, timestep, c).float()
            if use_cfg:
                v_u = model.predict(unet, x, timestep, c.uncond()).float()
                v = v_u + guidance_scale * (v - v_u)
            return v

        v = windowed_predict(latents.to(model.dtype), predict, cond, windows, guidance, progress)
        latents = scheduler.step(v, t, latents, eta=0.0).prev_sample
    return latents
