"""Few-step sampler of the distilled student: diffusers' LCMScheduler on the teacher's noise table, CFG off."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from cosec.diffusion.schedule import NoiseSchedule
from cosec.diffusion.windows import ContextWindows, Progress, WindowGuidance, windowed_predict

RENOISE = ("independent", "shared")

if TYPE_CHECKING:
    from torch import nn

    from cosec.models import ChampModel, Conditioning


@torch.no_grad()
def sample_student(
    model: ChampModel,
    unet: nn.Module,
    cond: Conditioning,
    shape: tuple[int, ...],
    num_steps: int = 2,
    generator: torch.Generator | None = None,
    schedule: NoiseSchedule | None = None,
    latents: torch.Tensor | None = None,
    renoise: str = "independent",
    windows: ContextWindows | None = None,
    guidance: WindowGuidance | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Sample latents of ``shape`` ((B,4,h,w) frames or (B,4,F,h,w) clips) in ``num_steps`` LCM steps.

    ``cond`` is computed once by the caller (reference bank and guidance features reused at every step);
    no unconditional branch runs (CFG off, as the paper's inference). ``latents`` replaces the initial noise.
    ``renoise``: between steps LCM re-noises its estimate with fresh noise; "independent" (LCMScheduler,
    the paper) draws it per frame, "shared" (clips only) draws one noise image for all frames of a clip,
    which removes the frame-to-frame flicker the independent draws add (docs/distillation.md).
    Clips are denoised over context ``windows`` at every step (default Champ's 24 frames, overlap 4; a clip of
    at most 24 frames is one plain call); guidance features come from ``cond.guidance_features`` or, when those
    are None, per window from ``guidance``. ``progress.update(1)`` is called after every window of every step.
    """
    if num_steps < 1:
        raise ValueError(f"sample_student: num_steps must be >= 1, got {num_steps}")
    if renoise not in RENOISE:
        raise ValueError(f"sample_student: renoise must be one of {RENOISE}, got {renoise!r}")
    if renoise == "shared" and len(shape) != 5:
        raise ValueError(
            f"sample_student: renoise='shared' needs clip latents (B,4,F,h,w), got shape {tuple(shape)}"
        )
    scheduler = (schedule or NoiseSchedule()).lcm()
    scheduler.set_timesteps(num_steps)
    device = cond.clip_embeds.device
    if (
        latents is None
    ):  # drawn on the CPU like sample_teacher, so one generator seed gives both the same noise
        latents = torch.randn(tuple(shape), generator=generator, dtype=torch.float32)
    elif tuple(latents.shape) != tuple(shape):
        raise ValueError(f"sample_student: latents shape {tuple(latents.shape)} != requested {tuple(shape)}")
    sample = latents.to(device=device, dtype=torch.float32) * scheduler.init_noise_sigma
    timesteps = scheduler.timesteps.tolist()
    # "shared" discards the scheduler's own draw: give it a private generator so no global RNG is consumed
    step_gen = torch.Generator().manual_seed(0) if renoise == "shared" else generator
    # the loop runs in float32; a half-precision UNet gets its own dtype
    unet_dtype = next(unet.parameters()).dtype
    for i, t in enumerate(timesteps):
        timestep = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
        v = windowed_predict(
            sample,
            lambda x, c, t=timestep: model.predict(unet, x.to(unet_dtype), t, c),
            cond,
            windows,
            guidance,
            progress,
        )
        out = scheduler.step(v, t, sample, generator=step_gen)
        if renoise == "shared" and i + 1 < len(timesteps):
            # the same re-noising as LCMScheduler.step, with one noise image broadcast over the frame axis
            b, c, _, h, w = shape
            noise = torch.randn((b, c, 1, h, w), generator=generator, dtype=torch.float32).to(device)
            abar = scheduler.alphas_cumprod[int(timesteps[i + 1])].to(device)
            sample = abar.sqrt() * out.denoised + (1 - abar).sqrt() * noise
        else:
            sample = out.prev_sample
    return sample
