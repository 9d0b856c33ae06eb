"""A released (shipped) teacher: the project's own teacher folder plus ``teacher.json``, its manifest.

The manifest records the sha256 of ``model.safetensors``, the settings and command that trained it and the
training metrics. ``load_release`` imports such a folder instead of training, the way ``champ_dir`` imports
Champ's weights: it checks the checksum and that the model shapes match the run's ``common.model``, and names
the file and the mismatch when something is wrong.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cosec.atomic import write_json_atomic
from cosec.config import ConfigError
from cosec.models import ChampModel
from cosec.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME

MANIFEST = "teacher.json"
# calibrated or recorded by training, not chosen by common.model
_TRAINED_KEYS = {"scaling_factor"}


class ReleaseError(ConfigError):
    """A released teacher folder that cannot be imported as it is (a user error: one line, no traceback)."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: str | Path, *, settings: dict, command: str, metrics: dict) -> dict:
    """Write ``teacher.json`` beside a saved teacher (after ``save_pretrained``); return what was written."""
    folder = Path(folder)
    manifest = {
        "sha256": {WEIGHTS_NAME: sha256_file(folder / WEIGHTS_NAME)},
        "command": command,
        "settings": settings,
        "metrics": metrics,
    }
    write_json_atomic(manifest, folder / MANIFEST)
    return manifest


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ReleaseError(
            f"{path}: missing; a released teacher folder holds {WEIGHTS_NAME}, {CONFIG_NAME} and {MANIFEST}"
        )
    try:
        manifest = json.loads(path.read_text())
        manifest["sha256"][WEIGHTS_NAME]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ReleaseError(f"{path}: not a teacher manifest ({err})") from err
    return manifest


def verify(folder: str | Path) -> dict:
    """Check the weights' checksum against the manifest; return the manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise ReleaseError(f"{weights}: missing")
    want, got = manifest["sha256"][WEIGHTS_NAME], sha256_file(weights)
    if got != want:
        raise ReleaseError(
            f"{weights}: sha256 {got[:12]}... does not match {MANIFEST}'s {want[:12]}... (a changed or truncated "
            f"file: restore it with `git checkout -- {folder}`, or retrain it with `dvc repro shipped/dvc.yaml`)"
        )
    return manifest


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key in _TRAINED_KEYS:
                continue
            out += _differences(a.get(key), b.get(key), f"{path}.{key}" if path else key)
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        a, b = list(a), list(b)
    return [] if a == b else [f"{path}: released {a!r}, this run {b!r}"]


def load_release(folder: str | Path, expected: dict | None = None) -> ChampModel:
    """The released teacher in ``folder``, after its checksum and (with ``expected``, a ModelConfig dict)
    its model shapes are checked."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReleaseError(f"{folder}: no such folder (teacher.import_dir)")
    verify(folder)
    model = ChampModel.from_pretrained(folder)
    if expected is not None:
        diff = _differences(model.config.to_dict(), expected)
        if diff:
            raise ReleaseError(
                f"{folder}: the released teacher's model does not match common.model ("
                + "; ".join(diff[:6])
                + (f"; {len(diff) - 6} more" if len(diff) > 6 else "")
                + "): set common.model as in the release's teacher.json, or teacher.import_dir: null to train one"
            )
    return model
