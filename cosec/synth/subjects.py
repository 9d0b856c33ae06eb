"""Synthetic subjects: anny phenotypes and clothing (colours and patterns pinned to the body)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from cosec.body.base import PART_INDEX

PATTERNS = ("solid", "stripes", "checks", "dots", "zigzag")


@dataclass
class Subject:
    """One synthetic person. Colours are RGB in [0,1]; pattern frequencies in cycles per metre."""

    subject_id: str
    phenotype: list[float]  # anny: gender, age, muscle, weight, height, proportions
    skin: list[float]
    hair: list[float]
    top: list[float]
    top_alt: list[float]
    top_pattern: str
    top_freq: float
    bottom: list[float]
    bottom_alt: list[float]
    bottom_pattern: str
    bottom_freq: float
    shoes: list[float]
    long_sleeves: bool
    long_trousers: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def albedo_fn(self, rest_vertices: torch.Tensor):
        """Albedo (N,3) in [0,1] from rest-pose surface points (N,3) and part labels (N,)."""
        top_z = float(rest_vertices[:, 2].max())
        head_y = float(rest_vertices[:, 1].mean())
        cols = {k: torch.tensor(getattr(self, k), dtype=torch.float32) for k in
                ("skin", "hair", "top", "top_alt", "bottom", "bottom_alt", "shoes")}  # fmt: skip

        def albedo(p: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
            out = cols["skin"].expand(p.shape[0], 3).clone()
            P = PART_INDEX
            is_top = (part == P["torso"]) | (part == P["upperarm_l"]) | (part == P["upperarm_r"])
            if self.long_sleeves:
                is_top |= (part == P["forearm_l"]) | (part == P["forearm_r"])
            is_bottom = (part == P["hips"]) | (part == P["thigh_l"]) | (part == P["thigh_r"])
            if self.long_trousers:
                is_bottom |= (part == P["shin_l"]) | (part == P["shin_r"])
            is_shoe = (part == P["foot_l"]) | (part == P["foot_r"])
            # Hair: the top of the head and the back of the skull.
            is_hair = (part == P["head"]) & (
                (p[:, 2] > top_z - 0.09) | ((p[:, 1] > head_y + 0.02) & (p[:, 2] > top_z - 0.2))
            )
            out[is_top] = _pattern(p[is_top], self.top_pattern, self.top_freq, cols["top"], cols["top_alt"])
            out[is_bottom] = _pattern(
                p[is_bottom], self.bottom_pattern, self.bottom_freq, cols["bottom"], cols["bottom_alt"]
            )
            out[is_shoe] = cols["shoes"]
            out[is_hair] = cols["hair"]
            return out

        return albedo


def _pattern(p: torch.Tensor, kind: str, freq: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solid-texture patterns evaluated on rest-pose coordinates (so they move with the body)."""
    w = 2 * torch.pi * freq
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    if kind == "solid":
        t = torch.zeros_like(x)
    elif kind == "stripes":
        t = (torch.sin(w * z) > 0).float()
    elif kind == "checks":
        t = ((torch.sin(w * x) * torch.sin(w * y) * torch.sin(w * z)) > 0).float()
    elif kind == "dots":
        cell = torch.remainder(p * freq, 1.0) - 0.5
        t = (cell.norm(dim=1) < 0.33).float()
    elif kind == "zigzag":
        t = (
            torch.sin(w * (z + 0.25 * torch.abs(torch.remainder(3 * freq * (x + y), 1.0) - 0.5) / freq)) > 0
        ).float()
    else:
        raise ValueError(f"unknown clothing pattern '{kind}' (one of {PATTERNS})")
    return a * (1 - t[:, None]) + b * t[:, None]


_SKIN = np.array(
    [[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.69, 0.49, 0.36], [0.45, 0.31, 0.22], [0.30, 0.20, 0.15]]
)
_HAIR = np.array(
    [[0.08, 0.06, 0.05], [0.30, 0.18, 0.10], [0.65, 0.50, 0.30], [0.55, 0.25, 0.12], [0.80, 0.80, 0.78]]
)


def _colour(rng: np.random.Generator) -> list[float]:
    import colorsys

    h, s, v = rng.random(), rng.uniform(0.35, 1.0), rng.uniform(0.3, 1.0)
    return [float(c) for c in colorsys.hsv_to_rgb(h, s, v)]


def sample_subject(subject_id: str, rng: np.random.Generator, detailed: bool = False) -> Subject:
    """A random subject; `detailed` (the fashion split) favours fine, high-contrast patterns."""
    pat_choices = PATTERNS[1:] if detailed else PATTERNS
    freq_lo, freq_hi = (7.0, 14.0) if detailed else (3.0, 8.0)
    top, bottom = _colour(rng), _colour(rng)
    # Contrasting second colours: a pattern must be visible, or a blurry prediction would not lose.
    top_alt = [1.0 - c * 0.9 for c in top]
    bottom_alt = [1.0 - c * 0.9 for c in bottom]
    return Subject(
        subject_id=subject_id,
        phenotype=[float(rng.uniform(0, 1)), float(rng.uniform(0.45, 0.75)), float(rng.uniform(0.2, 0.8)),
                   float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.3, 0.7))],
        skin=_SKIN[rng.integers(len(_SKIN))].tolist(), hair=_HAIR[rng.integers(len(_HAIR))].tolist(),
        top=top, top_alt=top_alt, top_pattern=str(rng.choice(pat_choices)),
        top_freq=float(rng.uniform(freq_lo, freq_hi)),
        bottom=bottom, bottom_alt=bottom_alt, bottom_pattern=str(rng.choice(pat_choices)),
        bottom_freq=float(rng.uniform(freq_lo, freq_hi)), shoes=_colour(rng),
        long_sleeves=bool(rng.random() < 0.5), long_trousers=bool(rng.random() < 0.6),
    )  # fmt: skip
