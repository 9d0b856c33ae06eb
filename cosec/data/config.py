"""Typed configuration of the data stages, parsed once from a section of params.yaml (cosec.config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from cosec.config import Range, from_dict, load_section

OnError = Literal["fail", "skip"]  # skip: rejected items are listed in <out>/rejects.json

__all__ = [
    "DataParams",
    "FramesConfig",
    "GuidanceConfig",
    "IndexConfig",
    "IngestConfig",
    "SynthConfig",
    "from_dict",
    "load_section",
]


@dataclass
class SynthConfig:
    """The embedded synthetic benchmark (videos + per-frame anny parameters)."""

    out: str = "data/raw"  # raw root: <out>/<split>/<video>/{video.mp4, params/NNNN.npz, meta.json}
    seed: int = 0
    resolution: Annotated[int, Range(ge=8)] = 128  # pixels of the written videos (square)
    fps: Annotated[float, Range(gt=0)] = 12.0
    frames_per_video: Annotated[int, Range(ge=1)] = 24
    supersample: Annotated[int, Range(ge=1)] = (
        2  # RGB rendered at this multiple, then area-downsampled (anti-aliasing)
    )
    train_videos: int = 24
    train_subjects: int = 12  # train videos share subjects (2 motions each by default)
    test_videos: dict[str, int] = field(default_factory=lambda: {"dance": 5, "fashion": 5, "wild": 5})
    travel: float = 0.0  # metres: each video drifts sideways by up to +-travel over its length (0 = none)
    anny_cache: str | None = None  # default: $COSEC_ANNY_CACHE, else ~/.cache/anny


@dataclass
class IngestConfig:
    """Real data in (real/dvc.yaml's first stage): every accepted video is validated and copied into `out`,
    where the frames stage reads it. A benchmark names the videos to take and the split they form."""

    source: str = "real/source"  # your folder (it is never written to)
    # a benchmark's published videos and split (cosec/data/splits/<name>.json); none: the source's split folders
    benchmark: Literal["none", "tiktok", "ubc", "wild_tiktok"] = "none"
    part: str = "test"  # the benchmark's published list to take (ubc: test or train)
    # a list file (one video name per line) or "all"; null: the benchmark's own list
    videos: str | None = None
    layout: Literal["auto", "champ", "raw"] = "auto"  # champ: rendered maps; raw: video or frames + SMPL fits
    out: str = "real/data/raw"  # <out>/<split>/<video>/ (the frames stage's input)
    split: str = "train"  # benchmark none: the split of a source without split folders
    on_error: OnError = "fail"  # "fail" or "skip" (skipped items listed in <out>/rejects_ingest.json)


@dataclass
class FramesConfig:
    """Videos -> numbered PNG frames (decord)."""

    raw: str = "data/raw"
    out: str = "data/frames"  # <out>/<split>/<video>/{images/NNNN.png, params/NNNN.npz, meta.json}
    resolution: Annotated[int, Range(ge=8)] = 64  # square output frames; 256/512 for real training
    stride: Annotated[int, Range(ge=1)] = 1  # keep every stride-th frame
    max_frames: Annotated[int, Range(ge=0)] = 0  # 0 = all
    on_error: OnError = "fail"


@dataclass
class GuidanceConfig:
    """Body parameters -> depth, normal, semantic_map, dwpose, mask PNGs (+ contact sheets)."""

    frames: str = "data/frames"  # the frames stage's output
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
    on_error: OnError = "fail"


@dataclass
class IndexConfig:
    """The frame table (parquet) the samplers and datasets read."""

    root: str = "data/prepared"
    out: str = "data/index.parquet"
    on_error: OnError = "fail"


@dataclass
class DataParams:
    synth: SynthConfig = field(default_factory=SynthConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    frames: FramesConfig = field(default_factory=FramesConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
