"""The teacher stage's settings (the `teacher` section of params.yaml): a light module, imported by the
params schema without loading the training code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from cosec.config import Range

PARTS = ("vae", "stage1", "stage2")


@dataclass
class PartConfig:
    steps: Annotated[int, Range(ge=0)] = 100  # 0 skips the part
    lr: Annotated[float, Range(gt=0)] = 1e-4
    batch_size: Annotated[int, Range(ge=1)] = 8


@dataclass
class VAEPart(PartConfig):
    kl_weight: float = 1e-6
    grad_weight: float = 1.0
    l1_weight: float = 1.0
    mse_weight: float = 0.0
    sample_posterior: bool = True
    flip: bool = False  # horizontal flips (half the images)
    permute_prob: Annotated[float, Range(ge=0, le=1)] = (
        0.0  # colour-channel permutation of this share of images
    )
    hue_prob: Annotated[float, Range(ge=0, le=1)] = 0.0  # hue rotation by a random angle of this share


@dataclass
class Stage1Part(PartConfig):
    uncond_prob: float = 0.1  # Champ drops the reference condition this often (for CFG)
    snr_gamma: Annotated[float, Range(gt=0)] | None = (
        None  # Min-SNR-gamma loss weighting (Champ's option); null = off
    )
    train_image_encoder: bool = False  # the CLIP image encoder learns with stage 1 (no pretrained one here)


@dataclass
class Stage2Part(PartConfig):
    num_frames: int = 8
    stride: int = 1
    uncond_prob: float = 0.1


@dataclass
class TeacherConfig:
    champ_dir: str | None = None  # a folder of Champ's released weights: imported instead of training
    import_dir: str | None = None  # a released teacher of this project (teacher.json checked): imported
    out: str = "models/teacher"
    seed: int = 0
    vae: VAEPart = field(default_factory=lambda: VAEPart(steps=300, lr=1e-3, batch_size=16))
    stage1: Stage1Part = field(default_factory=lambda: Stage1Part(steps=600, lr=3e-4, batch_size=8))
    stage2: Stage2Part = field(default_factory=lambda: Stage2Part(steps=100, lr=3e-4, batch_size=2))
