"""A small KL autoencoder for the embedded benchmark (users with Champ weights bring sd-vae-ft-mse).

Trained on reconstruction (L1, optionally MSE, and a gradient term that keeps edges and cloth
patterns sharp) plus a light KL term. MSE is what PSNR measures: at 300 steps a 4x VAE reached
22.7-23.7 dB on unseen subjects with MSE in the loss, 20.4-21.3 dB with L1 + gradient only.
Afterwards the latent scaling factor is calibrated to unit latent variance: with
un-normalised latents the teacher cannot learn to denoise (the noise swamps or never reaches the signal).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import nn


def _grads(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def rotate_hue(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate each image's colours about the grey axis (Rodrigues' formula) by ``angles`` (B,) radians.

    A continuous hue shift that keeps grey levels and (nearly) saturation: unlike a channel permutation (a
    fixed 120-degree turn or a reflection), it shows the VAE every hue, so it cannot lean on the training
    subjects' few clothes and wall colours. x (B,3,H,W) in [-1, 1]; the result is clamped to [-1, 1].
    """
    k = torch.full((3,), 3**-0.5, dtype=x.dtype, device=x.device)
    cross = torch.tensor(
        [[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], dtype=x.dtype, device=x.device
    )
    cross = cross * 3**-0.5  # [k]_x
    cos, sin = angles.cos()[:, None, None], angles.sin()[:, None, None]
    eye = torch.eye(3, dtype=x.dtype, device=x.device)
    rot = cos * eye + sin * cross + (1 - cos) * torch.outer(k, k)  # (B,3,3)
    return torch.einsum("bij,bjhw->bihw", rot, x).clamp(-1, 1)


class VAETrainer(nn.Module):
    """``forward(batch) -> (loss, parts)`` for the shared training loop; batch["pixel_values"] in [-1, 1]."""

    def __init__(self, vae: AutoencoderKL, kl_weight: float = 1e-6, grad_weight: float = 1.0, seed: int = 0,
                 l1_weight: float = 1.0, mse_weight: float = 0.0, sample_posterior: bool = True,
                 flip: bool = False, permute_prob: float = 0.0, hue_prob: float = 0.0):  # fmt: skip
        super().__init__()
        self.vae = vae
        self.kl_weight = kl_weight
        self.grad_weight = grad_weight
        self.l1_weight, self.mse_weight = l1_weight, mse_weight
        self.sample_posterior = (
            sample_posterior  # False: decode the posterior mean (what the teacher encodes)
        )
        self.flip, self.permute_prob, self.hue_prob = flip, permute_prob, hue_prob
        self.generator = torch.Generator().manual_seed(seed)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """Horizontal flips and colour-channel permutations of a share of the images. Permuting every image
        makes the code channel-symmetric: the VAE decodes everything grey (docs/teacher.md)."""
        b = x.shape[0]
        if self.permute_prob > 0:
            perms = torch.stack([torch.randperm(3, generator=self.generator) for _ in range(b)])
            keep = torch.rand(b, generator=self.generator) >= self.permute_prob
            perms[keep] = torch.arange(3)
            x = torch.gather(x, 1, perms.to(x.device)[:, :, None, None].expand_as(x))
        if self.hue_prob > 0:
            x = rotate_hue(x, self._hue_angles(b).to(x.device))
        if self.flip:
            flip = (torch.rand(b, generator=self.generator) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x

    def _hue_angles(self, b: int) -> torch.Tensor:
        """A uniform angle for each image that gets a hue rotation (share hue_prob), 0 for the others."""
        angles = torch.rand(b, generator=self.generator) * (2 * math.pi)
        keep = torch.rand(b, generator=self.generator) >= self.hue_prob
        return torch.where(keep, torch.zeros_like(angles), angles)

    def trainable(self) -> list[nn.Parameter]:
        return list(self.vae.parameters())

    def forward(self, batch: Mapping) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch["pixel_values"].to(self.vae.device)
        x = self._augment(x)
        posterior = self.vae.encode(x).latent_dist
        z = posterior.mean
        if self.sample_posterior:
            z = z + posterior.std * torch.randn(posterior.mean.shape, generator=self.generator).to(x)
        recon = self.vae.decode(z).sample
        l1 = F.l1_loss(recon, x)
        mse = F.mse_loss(recon, x)
        gx, gy = _grads(recon)
        tx, ty = _grads(x)
        grad = F.l1_loss(gx, tx) + F.l1_loss(gy, ty)
        kl = posterior.kl().mean() / x[0].numel()
        loss = self.l1_weight * l1 + self.mse_weight * mse + self.grad_weight * grad + self.kl_weight * kl
        return loss, {
            "loss_l1": float(l1.detach()),
            "loss_mse": float(mse.detach()),
            "loss_grad": float(grad.detach()),
            "loss_kl": float(kl.detach()),
        }


@torch.no_grad()
def calibrate_scaling_factor(vae: AutoencoderKL, batches: Iterable[torch.Tensor]) -> float:
    """1 / std of the posterior means over the given pixel batches (SD's recipe for its 0.18215)."""
    means = [vae.encode(x).latent_dist.mean.flatten() for x in batches]
    if not means:
        raise ValueError("calibrate_scaling_factor: no images given")
    std = torch.cat(means).float().std()
    if not torch.isfinite(std) or std <= 0:
        raise ValueError(f"calibrate_scaling_factor: latent std is {float(std)}; the VAE is broken")
    return float(1.0 / std)
