"""The project's own checkpoint format: ``config.json`` + ``model.safetensors`` in a folder.

Only the file format lives here (reading, writing, key checks); ``ChampModel.from_pretrained`` and
``save_pretrained`` build the model around it. Champ's released files are mapped in
``cosec.models.champ_release``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cosec.atomic import atomic_write

from .config import ModelConfig

FORMAT = "cosec-champ/1"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class ChampCheckpointError(ValueError):
    """A Champ or project checkpoint file does not fit the model; the message names the file and the keys."""


def short_list(keys, limit: int = 12) -> str:
    keys = list(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, sort_keys=True)))


def write_model_folder(directory: str | os.PathLike, state: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write ``model.safetensors`` (tagged with FORMAT) and ``config.json`` (``meta``) atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(
        directory / WEIGHTS_NAME, lambda tmp: save_file(state, str(tmp), metadata={"format": FORMAT})
    )
    write_json(directory / CONFIG_NAME, {"format": FORMAT, **meta})
    return directory


def read_model_folder(directory: str | os.PathLike) -> tuple[dict, ModelConfig, dict[str, torch.Tensor]]:
    """(config.json as a dict, its model config, the state dict) of a folder written by write_model_folder."""
    directory = Path(directory)
    cfg_path, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not cfg_path.is_file() or not weights.is_file():
        raise ChampCheckpointError(
            f"{directory}: not a cosec checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    try:
        meta = json.loads(cfg_path.read_text())
        cfg = ModelConfig.from_dict(meta["model_config"])
        meta["motion_modules"] = bool(meta["motion_modules"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ChampCheckpointError(f"{cfg_path}: invalid checkpoint config ({err})") from err
    try:
        state = load_file(str(weights))
    except Exception as err:
        raise ChampCheckpointError(f"{weights}: cannot read ({type(err).__name__}: {err})") from err
    return meta, cfg, state


def check_state(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: str) -> None:
    """Every key present with its shape, nothing else; the error names the file and the keys."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatch = [
        f"{k}: {list(state[k].shape)} vs {list(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatch:
        parts = [
            f"{label} ({len(v)}): {short_list(v)}"
            for label, v in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", mismatch),
            )
            if v
        ]
        raise ChampCheckpointError(f"{source}: " + "; ".join(parts))


def assign_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load into a meta-built model without a second copy; every tensor must end up loaded."""
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise ChampCheckpointError(f"{source}: {err}") from err
    restore = getattr(model, "restore_buffers", None)
    if restore is not None:
        restore()  # non-persistent buffers are not in a state dict
    leftover = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover:
        raise ChampCheckpointError(f"{source}: tensors left unloaded: {short_list(leftover)}")
