"""A random SMPL-shaped model file (smplx's format); the real SMPL files are never shipped."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


def write_fake_smpl(path: Path, fmt: str = "pkl", num_vertices: int = 6890, seed: int = 0) -> Path:
    """Vertices are placed around their joint so that posing moves them plausibly."""
    rng = np.random.default_rng(seed)
    joints = rng.normal(0, 0.3, (24, 3))
    owner = rng.integers(0, 24, num_vertices)
    v_template = joints[owner] + rng.normal(0, 0.03, (num_vertices, 3))
    weights = np.zeros((num_vertices, 24))
    weights[np.arange(num_vertices), owner] = 1.0
    j_reg = np.zeros((24, num_vertices))
    for j in range(24):
        mine = np.nonzero(owner == j)[0]
        j_reg[j, mine] = 1.0 / max(1, len(mine))
    faces = rng.integers(0, num_vertices, (13776, 3)).astype(np.int64)
    kintree = np.array([[4294967295 if p < 0 else p for p in SMPL_PARENTS], list(range(24))], dtype=np.int64)
    data = {
        "v_template": v_template.astype(np.float32),
        "shapedirs": rng.normal(0, 0.01, (num_vertices, 3, 10)).astype(np.float32),
        "posedirs": rng.normal(0, 0.001, (num_vertices, 3, 207)).astype(np.float32),
        "J_regressor": j_reg.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": kintree,
        "f": faces,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pkl":
        with open(path, "wb") as fh:
            pickle.dump(data, fh)
    else:
        np.savez(path, **data)
    return path
