"""The evaluation protocol's settings (the `evaluate.protocol` section): a light module, so the params
schema can be parsed without loading the models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from cosec.config import Range

RENOISE = ("independent", "shared")  # cosec.diffusion.student.sample_student(renoise=...)


@dataclass
class EvalProtocol:
    splits: list[str] = field(default_factory=lambda: ["dance", "fashion", "wild"])
    teacher_steps: list[int] = field(default_factory=lambda: [2, 4, 6, 8, 20])
    teacher_nocfg_steps: list[int] = field(default_factory=lambda: [2, 20])
    student_steps: list[int] = field(default_factory=lambda: [1, 2, 4])
    guidance_scale: float = 3.5  # Champ's inference scale
    max_videos: Annotated[int, Range(ge=0)] = 0  # per split; 0 = all
    # per video; 0 = all (clips longer than `window` are denoised in context windows)
    max_frames: Annotated[int, Range(ge=0)] = 0
    # the clip: frames at least this far from frame 0 (and from the reference when "first")
    min_gap: Annotated[int, Range(ge=0)] = 1
    reference: str = "least_overlap"  # or "first" (frame 0); see docs/evaluation.md
    seed: int = 0
    student_renoise: str = "independent"  # LCM re-noising between steps: "independent" per frame, or "shared"
    # backbone weights for LPIPS / FID / FID-VID / FVD (a file missing or rejected: null with the reason)
    weights_dir: str | None = None
    grid_frames: int = 4  # frames of the first video per split in the sample grid
    # context window over frames (Champ: 24); at most the motion modules' position table
    window: Annotated[int, Range(ge=1)] = 24
    window_overlap: Annotated[int, Range(ge=0)] = 4  # frames shared by consecutive windows (Champ: 4)
    window_stride: Annotated[int, Range(ge=1)] = 1  # dilation levels (Champ: 1, contiguous windows only)
    # frames generated larger are downscaled to this (DisCo: 256); smaller ones are scored as generated
    score_size: Annotated[int, Range(ge=8)] = 256
    # bootstrap over test videos: resamples (0 = no intervals), fewer for the Frechet distances, level, seed
    ci_resamples: Annotated[int, Range(ge=0)] = 1000
    ci_frechet_resamples: Annotated[int, Range(ge=0)] = 200
    ci_level: Annotated[float, Range(gt=0, le=0.999)] = 0.95
    ci_seed: int = 0

    def __post_init__(self) -> None:
        # a bad window layout fails at load time (cosec.diffusion.windows.ContextWindows checks it again)
        if not 0 <= self.window_overlap < self.window:
            raise ValueError(
                f"window_overlap must be in [0, window={self.window}), got {self.window_overlap}"
            )
        if self.student_renoise not in RENOISE:  # fail at load time, not after the teacher rows
            raise ValueError(
                f"EvalProtocol: student_renoise must be one of {RENOISE}, got {self.student_renoise!r}"
            )
