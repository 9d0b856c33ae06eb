"""synth -> frames -> guidance -> index on a tiny benchmark, and the samplers and datasets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cosec.data.datasets import EvalDataset, Phase1Dataset, Phase2Dataset, TeacherDataset
from cosec.data.index import Phase1Sampler, Phase2Sampler, load_index
from cosec.data.io import MAP_FOLDERS
from cosec.render.maps import SEMANTIC_BACKGROUND
from cosec.synth.dataset import SPLIT_FAMILIES, plan
from cosec.synth.motions import UNSEEN_FAMILIES


def test_layout_and_contact_sheets(tiny_data):
    root, base = tiny_data["root"], tiny_data["base"]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["dance", "fashion", "train", "wild"]
    vid = root / "train" / "train_000_dance"
    for m in MAP_FOLDERS:
        names = sorted(p.name for p in (vid / m).iterdir())
        assert names == [f"{k:04d}.png" for k in range(6)]
    assert Image.open(vid / "images" / "0000.png").size == (32, 32)
    sheets = sorted((base / "sheets").glob("*.png"))
    assert len(sheets) == 6
    assert np.asarray(Image.open(sheets[0])).shape[1] == 6 * 32
    assert not list(base.rglob(".*.tmp*"))  # no temporaries left behind


def test_synthetic_splits_are_disjoint_and_pose_changes(tiny_data):
    df = tiny_data["index"]
    subjects = {s: set(df.loc[df.split == s, "subject"]) for s in df.split.unique()}
    for a in subjects:
        for b in subjects:
            if a != b:
                assert not subjects[a] & subjects[b]
    specs = plan(tiny_data["synth"])
    wild = [s.family for s in specs if s.split == "wild"]
    train = {s.family for s in specs if s.split == "train"}
    assert set(wild) <= set(UNSEEN_FAMILIES) and not train & set(UNSEEN_FAMILIES)
    assert set(SPLIT_FAMILIES) == {"train", "dance", "fashion", "wild"}
    # the pose really changes between the first and the last frame of every video
    for (split, video), g in df.groupby(["split", "video"]):
        g = g.sort_values("frame")
        m0 = np.asarray(Image.open(tiny_data["root"] / g.iloc[0]["mask"])) > 127
        m1 = np.asarray(Image.open(tiny_data["root"] / g.iloc[-1]["mask"])) > 127
        assert (m0 ^ m1).sum() > 0.1 * m0.sum(), f"{split}/{video}: body barely moves"


def test_index_columns(tiny_data):
    df = load_index(tiny_data["base"] / "index.parquet")
    for col in ["split", "video", "frame", "source_video", "t", "num_frames", *MAP_FOLDERS]:
        assert col in df.columns
    assert len(df) == 6 * 6 and df["t"].between(0, 1).all()
    assert (tiny_data["root"] / df.loc[0, "depth"]).is_file()


def test_phase1_sampler_ras_same_video_ers_other(tiny_data):
    df = tiny_data["index"]
    s = Phase1Sampler(df, k_ras=3, m_ers=2, window=2, split="train", seed=3)
    for g in s.groups(40):
        t = df.loc[g.target]
        assert t["split"] == "train"
        for r in g.ras:
            assert df.loc[r, "video"] == t["video"] and r != g.target
            assert abs(df.loc[r, "frame"] - t["frame"]) <= 2
        for e in g.ers:
            assert df.loc[e, "source_video"] != t["source_video"] and df.loc[e, "split"] == "train"
    again = Phase1Sampler(df, k_ras=3, m_ers=2, window=2, split="train", seed=3).groups(40)
    assert again == s.groups(40)
    assert Phase1Sampler(df, k_ras=3, m_ers=2, window=2, split="train", seed=4).groups(40) != again


def test_phase2_sampler_clips(tiny_data):
    df = tiny_data["index"]
    s = Phase2Sampler(df, num_frames=3, stride=2, pairs=2, split="train", seed=0)
    for c in s.clips(20):
        rows = df.loc[c.frames]
        assert rows["video"].nunique() == 1 and np.all(np.diff(rows["frame"].to_numpy()) == 2)
        for a, b in c.ras_pairs:
            assert df.loc[a, "source_video"] == df.loc[b, "source_video"] == rows.iloc[0]["source_video"]
    assert s.clips(5) == Phase2Sampler(df, 3, 2, 2, "train", seed=0).clips(5)


def _check_image(x, shape):
    assert x.shape == shape and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1


def _check_guidance(g, shape):
    assert sorted(g) == ["depth", "dwpose", "normal", "semantic_map"]
    for v in g.values():
        assert v.shape == shape and v.min() >= 0 and v.max() <= 1


def test_datasets_keys_shapes_ranges(tiny_data):
    root, df = tiny_data["root"], tiny_data["index"]
    item = TeacherDataset(root, df, "train", seed=0)[4]
    _check_image(item["pixel_values"], (3, 32, 32))
    _check_image(item["ref_pixels"], (3, 32, 32))
    _check_guidance(item["guidance"], (3, 32, 32))
    assert item["mask"].shape == (1, 32, 32) and set(item["mask"].unique().tolist()) == {0.0, 1.0}
    assert df.loc[item["ref_row"], "video"] == df.loc[item["row"], "video"] and item["ref_row"] != item["row"]
    # mask and maps agree: normals exactly on the body, Champ's semantic background elsewhere
    assert torch.equal(item["mask"][0] > 0, item["guidance"]["normal"].sum(0) > 0)
    bg = torch.tensor(SEMANTIC_BACKGROUND, dtype=torch.float32)[:, None] / 255
    assert torch.allclose(item["guidance"]["semantic_map"][:, item["mask"][0] == 0], bg, atol=1e-6)

    p1 = Phase1Dataset(root, df, length=4, k_ras=2, m_ers=3, seed=1)[0]
    _check_image(p1["ras_refs"], (2, 3, 32, 32))
    _check_image(p1["ers_refs"], (3, 3, 32, 32))
    p2 = Phase2Dataset(root, df, length=4, num_frames=4, stride=1, pairs=2, seed=1)[1]
    _check_image(p2["pixel_values"], (3, 4, 32, 32))
    _check_guidance(p2["guidance"], (3, 4, 32, 32))
    assert p2["mask"].shape == (1, 4, 32, 32) and p2["ras_refs"].shape == (2, 2, 3, 32, 32)
    ev = EvalDataset(root, df, "dance", resolution=16)
    assert len(ev) == 1
    e = ev[0]
    _check_image(e["ref_pixels"], (3, 16, 16))
    _check_image(e["pixel_values"], (3, 5, 16, 16))
    assert e["frame_names"] == [f"{k:04d}.png" for k in range(1, 6)] and e["mask"].shape == (1, 5, 16, 16)


def test_meta_is_carried(tiny_data):
    meta = json.loads((tiny_data["root"] / "fashion" / "fashion_000_turn" / "meta.json").read_text())
    assert meta["family"] == "turn" and meta["num_frames"] == 6 and meta["subject"]["top_pattern"] != "solid"
    assert isinstance(pd.read_parquet(tiny_data["base"] / "index.parquet"), pd.DataFrame)


@pytest.mark.parametrize("stage", ["synth", "frames", "guidance", "index", "ingest"])
def test_stage_scripts_parse_their_section(tmp_path, stage):
    from cosec.config import ConfigError
    from cosec.pipeline.params import load_params

    (tmp_path / "p.yaml").write_text(
        f"{stage}:\n  on_error: skip\n" if stage != "synth" else "synth:\n  seed: 3\n"
    )
    cfg = getattr(load_params(tmp_path / "p.yaml"), stage)
    assert (cfg.seed == 3) if stage == "synth" else (cfg.on_error == "skip")
    (tmp_path / "bad.yaml").write_text(f"{stage}:\n  nonsense: 1\n")
    with pytest.raises(ConfigError, match="nonsense"):
        load_params(tmp_path / "bad.yaml")


def test_travel_drifts_the_body_sideways_and_zero_travel_changes_nothing(tiny_data):
    from dataclasses import replace

    from cosec.synth.dataset import plan, video_params

    cfg = tiny_data["synth"]
    spec = plan(cfg)[0]
    still = video_params(spec, cfg)
    again = video_params(spec, replace(cfg, travel=0.0))
    moved = video_params(spec, replace(cfg, travel=0.5))
    np.testing.assert_array_equal(still.transl, again.transl)
    shift = moved.transl - still.transl
    assert np.allclose(shift[:, 1:], 0)  # sideways only (camera x)
    assert 0 < abs(shift[-1, 0] - shift[0, 0]) <= 1.0 + 1e-6  # up to +-0.5 m at the two ends
    assert np.allclose(np.diff(shift[:, 0], 2), 0, atol=1e-6)  # linear in time
