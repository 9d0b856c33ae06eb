"""Training checkpoints: atomic files named by step, keep-last-K, RNG capture and restore."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cosec.atomic import atomic_write

_NAME = re.compile(r"^ckpt-(\d{8})\.pt$")


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"ckpt-{step:08d}.pt"


def rank_rng_path(folder: Path, step: int, rank: int) -> Path:
    """RNG states of ranks other than 0 live beside the main checkpoint, one small file per rank."""
    return Path(folder) / f"ckpt-{step:08d}.rank{rank}.rng.pt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints in folder, oldest first (temp files are never listed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(folder: Path, max_step: int | None = None) -> Path | None:
    """The newest checkpoint in folder (with max_step: the newest at or before that step)."""
    found = [(s, p) for s, p in list_checkpoints(folder) if max_step is None or s <= max_step]
    return found[-1][1] if found else None


def atomic_save(obj: Any, path: Path) -> Path:
    """torch.save to a temp file beside path, fsync, then rename over path."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: cannot load checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or "step" not in ckpt or "state" not in ckpt:
        raise ValueError(f"{path}: not a cosec training checkpoint (no 'step'/'state')")
    return ckpt


def prune(folder: Path, keep_last: int) -> None:
    """Delete all but the newest keep_last checkpoints (and their per-rank RNG files)."""
    found = list_checkpoints(folder)
    for step, path in found[: max(len(found) - keep_last, 0)]:
        path.unlink(missing_ok=True)
        for extra in Path(folder).glob(f"ckpt-{step:08d}.rank*.rng.pt"):
            extra.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
