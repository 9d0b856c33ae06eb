"""Latent consistency distillation maths: DDIM solver grid, CFG target, consistency function, distances.

Model-free: everything here works on tensors, so the ReferenceLCM step (cosec.distill) and the tests can
use it with any denoiser. The noise table always comes from :class:`NoiseSchedule` (the teacher's own).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cosec.diffusion.schedule import NoiseSchedule, v_to_x0_eps

DISTANCES = ("huber", "l2")


def consistency_scalings(
    timesteps: torch.Tensor, sigma_data: float = 0.5, timestep_scaling: float = 10.0, ndim: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """c_skip(t), c_out(t) of the consistency function (paper sec. 2.1; LCM's discrete boundary condition).

    c_skip(0) = 1 and c_out(0) = 0, so f(x, 0) = x; the same formula as diffusers' LCMScheduler.
    """
    st = timesteps.double() * timestep_scaling
    c_skip = sigma_data**2 / (st**2 + sigma_data**2)
    c_out = st / (st**2 + sigma_data**2).sqrt()
    shape = (-1,) + (1,) * (ndim - 1)
    return c_skip.float().reshape(shape), c_out.float().reshape(shape)


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, w: float) -> torch.Tensor:
    """LCM-convention guidance cond + w (cond - uncond): effective scale 1 + w (w = 2.5 is Champ's 3.5)."""
    return cond + w * (cond - uncond)


@dataclass
class DDIMSolver:
    """The LCD skipping-step DDIM solver on the teacher's noise table (N = 50 of T = 1000, k = 20).

    Grid tau_i = (i + 1) k - 1 for i in [0, N); a training pair is t_{n+k} = tau_i, t_n = max(tau_i - k, 0).
    """

    schedule: NoiseSchedule = field(default_factory=NoiseSchedule)
    num_steps: int = 50

    def __post_init__(self) -> None:
        total = self.schedule.num_train_timesteps
        if self.num_steps < 1 or total % self.num_steps != 0:
            raise ValueError(
                f"DDIMSolver: num_steps={self.num_steps} must divide num_train_timesteps={total}"
            )
        self.skip = total // self.num_steps
        self.timesteps = torch.arange(1, self.num_steps + 1, dtype=torch.long) * self.skip - 1

    def sample_pairs(
        self, batch: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw i uniformly per sample; return (t_{n+k}, t_n), each (batch,) long."""
        index = torch.randint(0, self.num_steps, (batch,), generator=generator)
        start = self.timesteps[index]
        end = (start - self.skip).clamp(min=0)
        return start.to(device), end.to(device)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x_t = alpha_t x0 + sigma_t eps."""
        alpha, sigma = self.schedule.alpha_sigma(timesteps, x0.ndim)
        return alpha.to(x0) * x0 + sigma.to(x0) * noise

    def step(self, x0: torch.Tensor, eps: torch.Tensor, t_end: torch.Tensor) -> torch.Tensor:
        """One deterministic DDIM step (eta = 0) landing on t_end: alpha_{t_n} x0 + sigma_{t_n} eps."""
        alpha, sigma = self.schedule.alpha_sigma(t_end, x0.ndim)
        return alpha.to(x0) * x0 + sigma.to(x0) * eps


@dataclass(frozen=True)
class ConsistencyFunction:
    """f(x, t) = c_skip(t) x + c_out(t) x0_pred(x, t) for a v-predicting denoiser (LCM, eq. in sec. 2.1)."""

    schedule: NoiseSchedule = field(default_factory=NoiseSchedule)
    sigma_data: float = 0.5
    timestep_scaling: float = 10.0

    def __call__(self, sample: torch.Tensor, v: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        alpha, sigma = self.schedule.alpha_sigma(timesteps, sample.ndim)
        x0, _ = v_to_x0_eps(sample, v, alpha.to(sample), sigma.to(sample))
        c_skip, c_out = consistency_scalings(timesteps, self.sigma_data, self.timestep_scaling, sample.ndim)
        return c_skip.to(sample) * sample + c_out.to(sample) * x0


def pair_distance(
    a: torch.Tensor, b: torch.Tensor, kind: str = "huber", huber_c: float = 0.001
) -> torch.Tensor:
    """Per-item distance D(a, b): mean over all but the first axis. Huber: sqrt(d^2 + c^2) - c; L2: d^2."""
    if a.shape != b.shape:
        raise ValueError(f"pair_distance: shapes differ {tuple(a.shape)} vs {tuple(b.shape)}")
    diff = a.float() - b.float()
    if kind == "huber":
        per_elem = (diff.square() + huber_c**2).sqrt() - huber_c
    elif kind == "l2":
        per_elem = diff.square()
    else:
        raise ValueError(f"pair_distance: unknown distance {kind!r}, expected one of {DISTANCES}")
    return per_elem.flatten(1).mean(dim=1)
