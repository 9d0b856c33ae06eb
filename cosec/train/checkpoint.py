"""Training checkpoints: atomic files named by step, keep-last-K, RNG capture and restore.

Checkpoint files hold tensors and plain containers only (RNG states included: numpy's and Python's
as tensors/lists), and they are read with ``torch.load(weights_only=True)``: a file that would need
to run code to load (a planted pickle) is refused, naming the file, before anything in it runs.
"""

from __future__ import annotations

import pickle
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cosec.atomic import atomic_write

_NAME = re.compile(r"^ckpt-(\d{8})\.pt$")


class TrainCheckpointError(ValueError):
    """A training checkpoint (or its per-rank RNG file) cannot be used; the message names the file."""


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


def _legacy_numpy_globals() -> dict[str, Any]:
    """The numpy globals of the RNG state in checkpoints written before RNG states became tensors
    (``np.random.get_state()``'s uint32 key array): an ndarray rebuilt from its dtype and bytes, no code."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return {
        "numpy.ndarray": np.ndarray,
        "numpy.dtype": np.dtype,
        f"{_reconstruct.__module__}._reconstruct": _reconstruct,
        "numpy.core.multiarray._reconstruct": _reconstruct,
        "numpy._core.multiarray._reconstruct": _reconstruct,
        "numpy.dtypes.UInt32DType": type(np.dtype(np.uint32)),
    }


def safe_load(path: Path, what: str = "checkpoint") -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only; nothing in the file runs.

    Files of older cosec versions, whose only non-tensor objects are numpy's RNG key array, still load.
    Anything else that needs a Python global is refused with TrainCheckpointError naming the file.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = err
    except Exception as err:  # noqa: BLE001 - truncated zip, not a torch file: re-raised with the file name
        raise TrainCheckpointError(f"{path}: cannot load {what} ({type(err).__name__}: {err})") from err
    try:  # reads the pickle's opcodes only; runs nothing
        wanted = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - an unreadable pickle: refused below
        wanted = None
    legacy = _legacy_numpy_globals()
    if wanted and wanted <= set(legacy):
        try:
            with torch.serialization.safe_globals(list({id(v): v for v in legacy.values()}.values())):
                return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001
            first = err
    if wanted:
        why = f"it needs the Python globals {', '.join(sorted(wanted))}, which could run code"
    else:
        why = f"{type(first).__name__}: {str(first).splitlines()[0][:160]}"
    raise TrainCheckpointError(
        f"{path}: refused: not a plain tensor file ({why}). cosec reads training files with "
        "torch.load(weights_only=True) and runs no code from them; delete the file if you did not write it"
    ) from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    ckpt = safe_load(path, "checkpoint")
    if not isinstance(ckpt, dict) or "step" not in ckpt or "state" not in ckpt:
        raise TrainCheckpointError(f"{path}: not a cosec training checkpoint (no 'step'/'state')")
    return ckpt


def prune(folder: Path, keep_last: int) -> None:
    """Delete all but the newest keep_last checkpoints (and their per-rank RNG files)."""
    found = list_checkpoints(folder)
    for step, path in found[: max(len(found) - keep_last, 0)]:
        path.unlink(missing_ok=True)
        for extra in Path(folder).glob(f"ckpt-{step:08d}.rank*.rng.pt"):
            extra.unlink(missing_ok=True)


def rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Every random stream of this process as tensors and plain values (readable with weights_only=True):
    torch's CPU (and CUDA) default generators, numpy's and Python's global RNGs, and the named private
    generators (the ones that draw timesteps and noise in a training step)."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },  # fmt: skip
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state(state: Any) -> tuple:
    if isinstance(state, dict):
        keys = state["keys"].numpy().astype(np.uint32)
        return state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"]
    return tuple(state)  # written before RNG states became tensors: np.random.get_state() itself


def _python_state(state: Any) -> tuple:
    if isinstance(state, dict):
        return state["version"], tuple(int(v) for v in state["internal"].tolist()), state["gauss_next"]
    return state


def set_rng_state(
    state: dict[str, Any], generators: Mapping[str, torch.Generator] | None = None
) -> list[str]:
    """Restore what rng_state captured; returns the names of ``generators`` the state had no entry for
    (left as they are)."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(_numpy_state(state["numpy"]))
    random.setstate(_python_state(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state.get("generators", {})
    absent = []
    for name, gen in (generators or {}).items():
        if name in saved:
            gen.set_state(saved[name])
        else:
            absent.append(name)
    return absent


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
