"""Typed configuration of the data stages, parsed once from a section of params.yaml."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class SynthConfig:
    """The embedded synthetic benchmark (videos + per-frame anny parameters)."""

    out: str = "data/raw"  # raw root: <out>/<split>/<video>/{video.mp4, params/NNNN.npz, meta.json}
    seed: int = 0
    resolution: int = 128  # pixels of the written videos (square)
    fps: float = 12.0
    frames_per_video: int = 24
    supersample: int = 2  # RGB rendered at this multiple, then area-downsampled (anti-aliasing)
    train_videos: int = 24
    train_subjects: int = 12  # train videos share subjects (2 motions each by default)
    test_videos: dict[str, int] = field(default_factory=lambda: {"dance": 5, "fashion": 5, "wild": 5})
    anny_cache: str | None = None  # default: $COSEC_ANNY_CACHE, else ~/.cache/anny


@dataclass
class IngestConfig:
    """Real data: a Champ-layout folder (validated, copied) or raw videos + SMPL fits."""

    source: str = ""  # folder to ingest
    layout: str = "auto"  # "champ", "raw" or "auto" (detect)
    raw_out: str = "data/raw"  # raw videos + fits go here (then frames -> guidance -> index)
    champ_out: str = "data/frames"  # a Champ-layout source is copied here (then guidance -> index)
    split: str = "train"  # split name for a source without split folders
    on_error: str = "fail"  # "fail" or "skip" (skipped items listed in <out>/rejects.json)


@dataclass
class FramesConfig:
    """Videos -> numbered PNG frames (decord)."""

    raw: str = "data/raw"
    out: str = "data/frames"  # <out>/<split>/<video>/{images/NNNN.png, params/NNNN.npz, meta.json}
    resolution: int = 64  # square output frames; 256/512 for real training
    stride: int = 1  # keep every stride-th frame
    max_frames: int = 0  # 0 = all
    on_error: str = "fail"


@dataclass
class GuidanceConfig:
    """Body parameters -> depth, normal, semantic_map, dwpose, mask PNGs (+ contact sheets)."""

    frames: str = "data/frames"  # the frames stage's output (or ingest's Champ-layout copy)
    out: str = (
        "data/prepared"  # Champ layout: <out>/<split>/<video>/{images,depth,normal,semantic_map,dwpose,mask}
    )
    backend: str = "auto"  # "gl" (moderngl/EGL), "torch" or "auto"
    smpl_model_path: str | None = None  # folder or file with the user's SMPL model (SMPL fits only)
    smpl_gender: str = "neutral"
    anny_cache: str | None = None
    shape_from: str | None = (
        None  # shape transfer: a body-parameter file whose shape/betas replace the motion's
    )
    contact_sheets: str = "reports/contact_sheets"
    contact_frames: int = 6
    on_error: str = "fail"


@dataclass
class IndexConfig:
    """The frame table (parquet) the samplers and datasets read."""

    root: str = "data/prepared"
    out: str = "data/index.parquet"
    on_error: str = "fail"


@dataclass
class DataParams:
    synth: SynthConfig = field(default_factory=SynthConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    frames: FramesConfig = field(default_factory=FramesConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    index: IndexConfig = field(default_factory=IndexConfig)


def from_dict(cls, data: dict | None, where: str = ""):
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrongly typed values."""
    data = dict(data or {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{where or cls.__name__}: unknown keys {unknown}; known: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}" if where else key)
    return cls(**kwargs)


def _coerce(tp, value, where: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = typing.get_args(tp)
        return {_coerce(kt, k, where): _coerce(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def load_section(params_path: str | os.PathLike, section: str, cls):
    """Parse section `section` of a params YAML file into `cls` (a missing section = defaults)."""
    path = Path(params_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: params file not found")
    with open(path) as fh:
        doc = yaml.safe_load(fh) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return from_dict(cls, doc.get(section), f"{path}:{section}")
