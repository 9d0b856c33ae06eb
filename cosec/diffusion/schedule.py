"""Champ's noise schedule, shared by the teacher sampler, the LCD solver and the student sampler.

Champ trains with scaled_linear betas (0.00085 -> 0.012) but its inference config says
``linear``. The teacher's weights were fitted to the training table, so every part of
this project uses the training table (``scaled_linear``); the ``beta_schedule`` field is
there for users who want to reproduce Champ's inference config exactly. Betas are
rescaled to zero terminal SNR, timesteps use "trailing" spacing and the network predicts v.
With zero terminal SNR, alpha at t=999 is exactly 0, so x0 is always computed as
``alpha * x - sigma * v`` and never by dividing by alpha.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from diffusers import DDIMScheduler, LCMScheduler


@dataclass(frozen=True)
class NoiseSchedule:
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    prediction_type: str = "v_prediction"
    rescale_betas_zero_snr: bool = True
    timestep_spacing: str = "trailing"

    def scheduler_kwargs(self) -> dict:
        return {**asdict(self), "clip_sample": False, "set_alpha_to_one": True, "steps_offset": 0}

    def ddim(self) -> DDIMScheduler:
        """The teacher's sampler (Champ: DDIM, 20 steps)."""
        return DDIMScheduler(**self.scheduler_kwargs())

    def lcm(self, original_inference_steps: int = 50, timestep_scaling: float = 10.0) -> LCMScheduler:
        """The student's sampler, on exactly the same noise table as the teacher."""
        return LCMScheduler(
            **self.scheduler_kwargs(),
            original_inference_steps=original_inference_steps,
            timestep_scaling=timestep_scaling,
        )

    def alphas_cumprod(self) -> torch.Tensor:
        """The cumulative alpha table (float32, length num_train_timesteps), from diffusers itself."""
        return self.ddim().alphas_cumprod.clone()

    def alpha_sigma(self, timesteps: torch.Tensor, ndim: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        """alpha_t = sqrt(abar_t) and sigma_t = sqrt(1 - abar_t), broadcastable to an ndim tensor."""
        abar = self.alphas_cumprod().to(timesteps.device)[timesteps.long()]
        shape = (-1,) + (1,) * (ndim - 1)
        return abar.sqrt().reshape(shape), (1 - abar).sqrt().reshape(shape)


def v_to_x0_eps(
    sample: torch.Tensor, v: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert a v prediction to (x0, eps); safe at zero terminal SNR (alpha = 0)."""
    x0 = alpha * sample - sigma * v
    eps = alpha * v + sigma * sample
    return x0, eps
