"""A tiny prepared training split for distillation tests: 3 videos of 2 sources (RAS/ERS need both) and
their index. Shared by the LoRA-stage and Ray-cluster tests (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_tiny_split(base: Path, size: int = 32, frames: int = 6) -> None:
    """base/prepared/train/vid_{a,b,c} (noise maps, sources src_a, src_b, src_a) and base/index.parquet."""
    from cosec.data.config import IndexConfig
    from cosec.data.index import build_index
    from cosec.data.io import MAP_FOLDERS

    rng = np.random.default_rng(0)
    for v, source in (("vid_a", "src_a"), ("vid_b", "src_b"), ("vid_c", "src_a")):
        folder = base / "prepared" / "train" / v
        for m in MAP_FOLDERS:
            (folder / m).mkdir(parents=True)
            for k in range(frames):
                shape = (size, size) + (() if m == "mask" else (3,))
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / m / f"{k:04d}.png")
        (folder / "meta.json").write_text(json.dumps({"source_video": source}))
    build_index(
        IndexConfig(root=str(base / "prepared"), out=str(base / "index.parquet")), log=lambda *_: None
    )
