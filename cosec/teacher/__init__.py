"""Training the Champ-architecture teacher on the embedded benchmark: a small VAE, stage 1 (frames)
and stage 2 (motion modules on clips). Real Champ weights skip all of this (``cosec champ import``)."""

from .objectives import TeacherStage1, TeacherStage2, denoising_loss
from .vae import VAETrainer, calibrate_scaling_factor

__all__ = ["TeacherStage1", "TeacherStage2", "VAETrainer", "calibrate_scaling_factor", "denoising_loss"]
