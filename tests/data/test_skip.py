"""on_error: skip never lets a rejected video through (its stale output of an earlier run is removed),
one malformed body-parameter file rejects its video only, and frames.stride / frames.max_frames are
range-checked where they are used."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from cosec.data.config import FramesConfig, GuidanceConfig, IngestConfig
from cosec.data.frames import run_frames
from cosec.data.guidance import run_guidance
from cosec.data.ingest import run_ingest
from cosec.data.io import DataError

QUIET = {"log": lambda *_: None}
VIDEOS = ("train_000_dance", "train_001_walk")


def _raw_copy(tiny_data, tmp_path, videos=VIDEOS):
    for v in videos:
        shutil.copytree(tiny_data["base"] / "raw" / "train" / v, tmp_path / "raw" / "train" / v)
    return tmp_path / "raw"


def _frames_copy(tiny_data, tmp_path, videos=VIDEOS):
    for v in videos:
        shutil.copytree(tiny_data["base"] / "frames" / "train" / v, tmp_path / "frames" / "train" / v)
    return tmp_path / "frames"


@pytest.mark.parametrize(("key", "value"), [("stride", 0), ("stride", -2), ("max_frames", -3)])
def test_bad_frame_selection_is_refused_naming_the_key(tiny_data, tmp_path, key, value):
    raw = _raw_copy(tiny_data, tmp_path, VIDEOS[:1])
    cfg = FramesConfig(raw=str(raw), out=str(tmp_path / "frames"), resolution=32, **{key: value})
    with pytest.raises(
        DataError, match=rf"frames\.{key}: must be an integer >= {1 if key == 'stride' else 0}"
    ):
        run_frames(cfg, **QUIET)
    assert not (tmp_path / "frames").exists()  # refused before any work


def test_frames_skip_removes_a_rejected_videos_stale_output(tiny_data, tmp_path):
    raw = _raw_copy(tiny_data, tmp_path)
    cfg = FramesConfig(raw=str(raw), out=str(tmp_path / "frames"), resolution=32, on_error="skip")
    run_frames(cfg, **QUIET)
    bad, good = (tmp_path / "frames" / "train" / v for v in VIDEOS)
    assert (bad / "images" / "0000.png").is_file() and (good / "images" / "0000.png").is_file()
    kept = sorted(p.name for p in (good / "images").iterdir())
    (raw / "train" / VIDEOS[0] / "video.mp4").write_bytes(b"no longer a video")
    problems = run_frames(cfg, **QUIET)
    assert problems.bad_items() == {f"train/{VIDEOS[0]}"}
    assert not bad.exists()  # the earlier run's frames of the rejected video are gone
    assert sorted(p.name for p in (good / "images").iterdir()) == kept
    rejects = json.loads((tmp_path / "frames" / "rejects_frames.json").read_text())["rejects"]
    assert [r["item"] for r in rejects] == [f"train/{VIDEOS[0]}"]
    assert not [p for p in (tmp_path / "frames" / "train").iterdir() if p.name.startswith(".")]
    # under "fail" the earlier output stays (the stage fails; nothing downstream runs)
    shutil.copytree(good, bad)
    with pytest.raises(DataError, match="no longer a video|unreadable"):
        run_frames(dataclasses.replace(cfg, on_error="fail"), **QUIET)
    assert bad.exists()


def _malform(path, **changes):
    data = dict(np.load(path))
    data.update(changes)
    np.savez(path, **data)


@pytest.mark.parametrize(
    "change",
    [
        {"focal": np.array([], np.float32)},  # IndexError inside the reader
        {"transl": np.array(["a", "b", "c"])},  # ValueError: strings where numbers belong
        {"shape": np.zeros(3, np.float32)},  # other frames have 10 betas: stack_frames' BodyParamError
    ],
    ids=["empty-focal", "string-transl", "shape-size"],
)
def test_one_malformed_param_file_rejects_its_video_only(tiny_data, tmp_path, change):
    frames = _frames_copy(tiny_data, tmp_path)
    out, sheets = tmp_path / "prepared", tmp_path / "sheets"
    cfg = GuidanceConfig(frames=str(frames), out=str(out), contact_sheets=str(sheets), on_error="skip")
    run_guidance(cfg, **QUIET)  # an earlier, good run of both videos
    bad_out, good_out = (out / "train" / v for v in VIDEOS)
    bad_sheet = sheets / f"train__{VIDEOS[0]}.png"
    assert (bad_out / "depth" / "0000.png").is_file() and bad_sheet.is_file()
    good_before = (good_out / "depth" / "0003.png").read_bytes()

    bad_file = frames / "train" / VIDEOS[0] / "params" / "0002.npz"
    _malform(bad_file, **change)
    with pytest.raises(DataError) as err:  # "fail": a clean DataError naming the file, not a raw traceback
        run_guidance(dataclasses.replace(cfg, on_error="fail"), **QUIET)
    named = str(bad_file) if "shape" not in change else str(bad_file.parent)
    assert named in str(err.value) and "1 problem(s)" in str(err.value)

    problems = run_guidance(cfg, **QUIET)  # "skip": the other video goes on, the bad one is gone
    assert problems.bad_items() == {f"train/{VIDEOS[0]}"}
    assert not bad_out.exists() and not bad_sheet.exists()
    assert (good_out / "depth" / "0003.png").read_bytes() == good_before
    assert (sheets / f"train__{VIDEOS[1]}.png").is_file()
    rejects = json.loads((out / "rejects_guidance.json").read_text())["rejects"]
    assert [r["item"] for r in rejects] == [f"train/{VIDEOS[0]}"] and named in rejects[0]["problem"]


def test_ingest_skip_removes_a_rejected_videos_earlier_copy(tiny_data, tmp_path):
    src = _raw_copy(tiny_data, tmp_path / "src")
    cfg = IngestConfig(source=str(src), out=str(tmp_path / "raw"), on_error="skip")
    run_ingest(cfg, **QUIET)
    copied = tmp_path / "raw" / "train" / VIDEOS[0]
    assert (copied / "video.mp4").is_file()
    _malform(sorted((src / "train" / VIDEOS[0] / "params").iterdir())[0], focal=np.array([], np.float32))
    problems = run_ingest(cfg, **QUIET)
    assert problems.bad_items() == {f"train/{VIDEOS[0]}"}
    assert not copied.exists() and (tmp_path / "raw" / "train" / VIDEOS[1] / "video.mp4").is_file()
