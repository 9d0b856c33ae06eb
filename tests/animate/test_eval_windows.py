"""The evaluation runner denoises test clips longer than one window (and than the motion modules' table)."""

from __future__ import annotations

import pytest

from cosec.data.config import IndexConfig
from cosec.data.index import build_index
from cosec.eval.runner import EvalProtocol, run_evaluation
from tests.animate.conftest import tiny_model, write_champ_video


def test_runner_takes_clips_longer_than_one_window(tmp_path):
    root = tmp_path / "prepared"
    write_champ_video(root / "dance" / "blob_000", frames=41)  # 40-frame clip + the reference frame
    df, _ = build_index(IndexConfig(root=str(root), out=str(tmp_path / "index.parquet")), log=lambda *_: None)
    teacher = tiny_model()
    cfg = EvalProtocol(splits=["dance"], teacher_steps=[1], teacher_nocfg_steps=[], student_steps=[1],
                       reference="first", grid_frames=2)  # fmt: skip
    calls = []
    forward = teacher.denoising_unet.forward

    def counted(sample, *a, **k):
        calls.append(sample.shape[2])
        return forward(sample, *a, **k)

    teacher.denoising_unet.forward = counted
    table, grids = run_evaluation(teacher, {"student": teacher.denoising_unet}, root, df, cfg, progress=False)
    assert set(table.values["dance"]) == {"reference@0", "teacher@1", "student@1"}
    assert all(v == v for v in table.values["dance"]["student@1"].values() if isinstance(v, float))  # no NaN
    # two windows of 24 (0-23, 16-39): teacher 1 step x 2 windows x (cond + uncond), student 1 x 2
    assert calls == [24] * 6
    with pytest.raises(ValueError, match="window"):
        run_evaluation(teacher, {}, root, df, EvalProtocol(splits=["dance"], window=40), progress=False)
    with pytest.raises(ValueError, match="window_overlap"):
        EvalProtocol(window=8, window_overlap=8)
