"""Few-step sampler of the distilled student: diffusers' LCMScheduler on the teacher's noise table, CFG off."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from cosec.diffusion.schedule import NoiseSchedule

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
) -> torch.Tensor:
    """Sample latents of ``shape`` ((B,4,h,w) frames or (B,4,F,h,w) clips) in ``num_steps`` LCM steps.

    ``cond`` is computed once by the caller (reference bank and guidance features reused at every step);
    no unconditional branch runs (CFG off, as the paper's inference). ``latents`` replaces the initial noise.
    """
    if num_steps < 1:
        raise ValueError(f"sample_student: num_steps must be >= 1, got {num_steps}")
    scheduler = (schedule or NoiseSchedule()).lcm()
    scheduler.set_timesteps(num_steps)
    device = cond.clip_embeds.device
    if latents is None:  # drawn on the CPU like sample_teacher, so one generator seed gives both the same noise
        latents = torch.randn(tuple(shape), generator=generator, dtype=torch.float32)
    elif tuple(latents.shape) != tuple(shape):
        raise ValueError(f"sample_student: latents shape {tuple(latents.shape)} != requested {tuple(shape)}")
    sample = latents.to(device=device, dtype=torch.float32) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        timestep = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
        v = model.predict(unet, sample, timestep, cond).float()
        sample = scheduler.step(v, t, sample, generator=generator).prev_sample
    return sample
