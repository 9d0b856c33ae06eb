"""Tiny models and motion folders for the animate tests, made here (no anny, no trained weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cosec.models import ChampModel

MAPS = ("images", "depth", "normal", "semantic_map", "dwpose", "mask")


def tiny_model(seed: int = 0) -> ChampModel:
    """The tiny model with motion modules and random (not zero) guidance / motion outputs, so they take part."""
    torch.manual_seed(seed)
    model = ChampModel.build("tiny", motion_modules=True)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("conv_out.weight", "proj_out.weight")) and (
                "guidance" in name or "motion" in name
            ):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def blob_frame(k: int, size: int, kind: str) -> np.ndarray:
    """A moving disc: a stand-in person (and its maps) for frame k."""
    yy, xx = np.mgrid[0:size, 0:size]
    cx, cy = size * (0.3 + 0.4 * (k % 10) / 9), size * 0.5
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 < (size * 0.2) ** 2
    if kind == "mask":
        return (inside * 255).astype(np.uint8)
    colour = {"images": (200, 80, 40), "depth": (128, 128, 128), "normal": (128, 128, 255),
              "semantic_map": (255, 0, 0), "dwpose": (0, 255, 0)}[kind]  # fmt: skip
    out = np.full((size, size, 3), 30 if kind == "images" else 0, np.uint8)
    out[inside] = colour
    return out


def write_champ_video(folder: Path, frames: int, size: int = 32, fps: float = 12.0, maps=MAPS) -> Path:
    """A Champ-layout video folder: <folder>/<map>/NNNN.png for every map, meta.json with fps."""
    for m in maps:
        (folder / m).mkdir(parents=True, exist_ok=True)
        for k in range(frames):
            Image.fromarray(blob_frame(k, size, m)).save(folder / m / f"{k:04d}.png")
    (folder / "meta.json").write_text(json.dumps({"fps": fps, "num_frames": frames}))
    return folder


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    """The same tiny model saved as a student (role recorded) and as an old-style folder (no role)."""
    base = tmp_path_factory.mktemp("models")
    model = tiny_model()
    return {
        "student": model.save_pretrained(base / "student", role="student"),
        "norole": model.save_pretrained(base / "norole"),
    }


@pytest.fixture(scope="session")
def motion_dir(tmp_path_factory) -> Path:
    """A 30-frame Champ-layout guidance folder at 32 px (longer than the 8-frame windows the tests use)."""
    return write_champ_video(tmp_path_factory.mktemp("motion") / "fashion" / "blob_000", frames=30)


@pytest.fixture(scope="session")
def reference_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ref") / "person.png"
    Image.fromarray(blob_frame(0, 48, "images")[:, 8:40]).save(path)  # 32 x 48: not square
    return path
