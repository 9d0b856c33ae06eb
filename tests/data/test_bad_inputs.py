"""Every kind of bad input gets a message naming the file; all problems are reported; skip mode
writes a rejects file; nothing half-written is left behind."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from cosec.body.params import load_frame_params, save_frame_params, stack_frames
from cosec.data.config import FramesConfig, GuidanceConfig, IndexConfig, IngestConfig
from cosec.data.frames import run_frames
from cosec.data.guidance import run_guidance
from cosec.data.index import build_index
from cosec.data.ingest import run_ingest
from cosec.data.io import DataError


def _champ_copy(tiny_data, tmp_path, videos=("train_000_dance", "train_001_walk")):
    src = tmp_path / "champ" / "train"
    for v in videos:
        shutil.copytree(tiny_data["root"] / "train" / v, src / v)
    return tmp_path / "champ"


def _frames_copy(tiny_data, tmp_path, video="train_000_dance"):
    """A frames-stage folder (images + params) for one video."""
    dst = tmp_path / "frames" / "train" / video
    shutil.copytree(tiny_data["base"] / "frames" / "train" / video, dst)
    return tmp_path / "frames", dst


def _no_temporaries(path):
    return not [p for p in path.rglob("*") if p.name.startswith(".") and ".tmp" in p.name]


def test_truncated_and_unreadable_videos(tiny_data, tmp_path):
    raw = tmp_path / "raw" / "train"
    for v in ("train_000_dance", "train_001_walk", "train_002_turn"):
        shutil.copytree(tiny_data["base"] / "raw" / "train" / v, raw / v)
    vid = raw / "train_000_dance" / "video.mp4"
    vid.write_bytes(vid.read_bytes()[: len(vid.read_bytes()) // 3])
    (raw / "train_001_walk" / "video.mp4").write_bytes(b"not a video at all")
    cfg = FramesConfig(raw=str(tmp_path / "raw"), out=str(tmp_path / "frames"), resolution=32)
    with pytest.raises(DataError) as err:
        run_frames(cfg, log=lambda *_: None)
    msg = str(err.value)
    assert "2 problem(s)" in msg  # both reported, not just the first
    assert f"{vid}: unreadable or truncated video" in msg
    assert "train_001_walk/video.mp4: unreadable or truncated video" in msg
    # the good video was still written, the bad ones left nothing (not even a partial folder)
    assert (tmp_path / "frames" / "train" / "train_002_turn" / "images" / "0005.png").is_file()
    assert not (tmp_path / "frames" / "train" / "train_000_dance").exists()
    assert _no_temporaries(tmp_path / "frames")
    # skip mode: no exception, rejects listed
    run_frames(FramesConfig(raw=cfg.raw, out=cfg.out, resolution=32, on_error="skip"), log=lambda *_: None)
    rejects = json.loads((tmp_path / "frames" / "rejects_frames.json").read_text())["rejects"]
    assert sorted(r["item"] for r in rejects) == ["train/train_000_dance", "train/train_001_walk"]


def test_champ_layout_problems_all_reported(tiny_data, tmp_path):
    root = _champ_copy(tiny_data, tmp_path, ("train_000_dance", "train_001_walk", "train_002_turn"))
    v0, v1, v2 = (root / "train" / v for v in ("train_000_dance", "train_001_walk", "train_002_turn"))
    bad_png = v0 / "normal" / "0003.png"
    bad_png.write_bytes(bad_png.read_bytes()[:40])  # truncated PNG
    shutil.rmtree(v1 / "dwpose")  # missing guidance folder
    (v2 / "depth" / "0005.png").unlink()  # different frame counts
    with pytest.raises(DataError) as err:
        build_index(IndexConfig(root=str(root), out=str(tmp_path / "i.parquet")), log=lambda *_: None)
    msg = str(err.value)
    assert "3 problem(s)" in msg
    assert f"{bad_png}: unreadable PNG" in msg
    assert f"{v1}: missing guidance folder(s) ['dwpose']" in msg
    assert f"{v2}: folders have different frame counts" in msg and "'depth': 5" in msg
    assert not (tmp_path / "i.parquet").exists()
    df, problems = build_index(IndexConfig(root=str(root), out=str(tmp_path / "i.parquet"), on_error="skip"),
                               log=lambda *_: None)  # fmt: skip
    assert len(problems.items) == 3 and df.empty and (tmp_path / "i.parquet").is_file()
    assert len(json.loads((tmp_path / "i.rejects.json").read_text())["rejects"]) == 3


def test_wrong_resolution(tiny_data, tmp_path):
    root = _champ_copy(tiny_data, tmp_path, ("train_000_dance",))
    img = root / "train" / "train_000_dance" / "semantic_map" / "0002.png"
    Image.fromarray(np.zeros((20, 32, 3), np.uint8)).save(img)
    with pytest.raises(DataError, match=rf"{img}: resolution 32x20, expected 32x32"):
        build_index(IndexConfig(root=str(root), out=str(tmp_path / "i.parquet")), log=lambda *_: None)


def test_nan_and_misshaped_body_params(tiny_data, tmp_path):
    frames, vid = _frames_copy(tiny_data, tmp_path)
    nan_file = vid / "params" / "0002.npz"
    p = stack_frames([load_frame_params(nan_file)], "x")
    p.transl[0, 1] = np.nan
    save_frame_params(nan_file, p, 0)
    bad = dict(np.load(vid / "params" / "0004.npz"))
    bad["body_pose"] = bad["body_pose"][:5]
    np.savez(vid / "params" / "0004.npz", **bad)
    out = tmp_path / "prepared"
    with pytest.raises(DataError) as err:
        run_guidance(GuidanceConfig(frames=str(frames), out=str(out), contact_sheets=""), log=lambda *_: None)
    msg = str(err.value)
    assert f"{nan_file}: 'transl' contains NaN" in msg
    assert f"{vid / 'params' / '0004.npz'}: 'body_pose' has shape (5, 3)" in msg
    assert not (out / "train" / "train_000_dance").exists() and _no_temporaries(out)


def test_params_count_mismatch_and_no_fits(tiny_data, tmp_path):
    frames, vid = _frames_copy(tiny_data, tmp_path)
    (vid / "params" / "0005.npz").unlink()
    nofits = frames / "train" / "nofits"
    shutil.copytree(vid / "images", nofits / "images")
    with pytest.raises(DataError) as err:
        run_guidance(
            GuidanceConfig(frames=str(frames), out=str(tmp_path / "p"), contact_sheets=""),
            log=lambda *_: None,
        )
    msg = str(err.value)
    assert "5 body-parameter files for 6 frames" in msg
    assert f"{nofits}: no body parameters" in msg and "SMPL fits" in msg


def test_ingest_video_without_fits_says_what_is_needed(tiny_data, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(tiny_data["base"] / "raw" / "train" / "train_000_dance" / "video.mp4", src / "clip.mp4")
    with_fits = src / "good"
    shutil.copytree(tiny_data["base"] / "raw" / "train" / "train_001_walk", with_fits)
    cfg = IngestConfig(source=str(src), out=str(tmp_path / "raw"))
    with pytest.raises(DataError) as err:
        run_ingest(cfg, log=lambda *_: None)
    msg = str(err.value)
    assert "1 problem(s)" in msg and f"{src / 'clip.mp4'}: video has no SMPL fits" in msg
    assert "smpl_results/NNNN.npy" in msg
    assert (tmp_path / "raw" / "train" / "good" / "video.mp4").is_file()
    assert len(list((tmp_path / "raw" / "train" / "good" / "params").iterdir())) == 6


def test_ingest_champ_layout_then_guidance_passes_it_through(tiny_data, tmp_path):
    src = _champ_copy(tiny_data, tmp_path, ("train_000_dance",))
    run_ingest(IngestConfig(source=str(src), out=str(tmp_path / "raw")), log=lambda *_: None)
    run_frames(
        FramesConfig(raw=str(tmp_path / "raw"), out=str(tmp_path / "fr"), resolution=32), log=lambda *_: None
    )
    run_guidance(GuidanceConfig(frames=str(tmp_path / "fr"), out=str(tmp_path / "prep"),
                                contact_sheets=str(tmp_path / "sheets")), log=lambda *_: None)  # fmt: skip
    a = tiny_data["root"] / "train" / "train_000_dance" / "semantic_map" / "0003.png"
    b = tmp_path / "prep" / "train" / "train_000_dance" / "semantic_map" / "0003.png"
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "sheets" / "train__train_000_dance.png").is_file()
