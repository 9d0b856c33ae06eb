"""Session fixtures: one anny model per test session, one tiny prepared dataset."""

from __future__ import annotations

import os

import pytest
import torch

from cosec.data.config import FramesConfig, GuidanceConfig, IndexConfig, SynthConfig


@pytest.fixture(scope="session")
def anny_body():
    """anny, built once per session (first build ~90 s; cache in $COSEC_ANNY_CACHE or ~/.cache/anny)."""
    from cosec.body.anny_body import AnnyBody

    return AnnyBody(cache_dir=os.environ.get("COSEC_ANNY_CACHE"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, anny_body):
    """The whole synth -> frames -> guidance -> index chain on a tiny benchmark."""
    from cosec.data.frames import run_frames
    from cosec.data.guidance import run_guidance
    from cosec.data.index import build_index
    from cosec.synth.dataset import write_synthetic_data

    base = tmp_path_factory.mktemp("tiny")
    torch.set_num_threads(1)
    synth = SynthConfig(out=str(base / "raw"), resolution=32, frames_per_video=6, train_videos=3,
                        train_subjects=2, test_videos={"dance": 1, "fashion": 1, "wild": 1})  # fmt: skip
    write_synthetic_data(synth, log=lambda *_: None)
    run_frames(FramesConfig(raw=synth.out, out=str(base / "frames"), resolution=32), log=lambda *_: None)
    gcfg = GuidanceConfig(
        frames=str(base / "frames"), out=str(base / "prepared"), contact_sheets=str(base / "sheets")
    )
    run_guidance(gcfg, log=lambda *_: None)
    icfg = IndexConfig(root=str(base / "prepared"), out=str(base / "index.parquet"))
    df, _ = build_index(icfg, log=lambda *_: None)
    return {"base": base, "synth": synth, "index": df, "root": base / "prepared"}
