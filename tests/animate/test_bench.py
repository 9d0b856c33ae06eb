"""`cosec bench` runs teacher and student side by side on one clip and reports time, memory and the ratio."""

from __future__ import annotations

import json

from cosec.cli import main as cosec_main


def test_bench_reports_teacher_and_students(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--frames", "3", "--window", "2", "--overlap", "1", "--teacher-steps", "2",
            "--student-steps", "1,2", "--threads", "1", "--json", str(out)]  # fmt: skip
    assert cosec_main(argv) == 0
    stdout = capsys.readouterr().out
    assert "scaled_dot_product_attention" in stdout and "speed-up student@2 vs teacher@2" in stdout
    data = json.loads(out.read_text())
    runs = {r["run"]: r for r in data["results"]}
    assert list(runs) == ["teacher@2 DDIM+CFG 3.5", "student@1 LCM", "student@2 LCM"]
    assert runs["teacher@2 DDIM+CFG 3.5"]["unet_calls"] == 2 * 2 * 2  # steps x windows x CFG branches
    assert runs["student@1 LCM"]["unet_calls"] == 2
    assert all(r["seconds_per_frame"] > 0 and r["peak_mb"] > 0 for r in runs.values())
    assert runs["student@1 LCM"]["speedup"] > 0


def test_bench_refuses_an_unknown_size(capsys):
    assert cosec_main(["bench", "--model", "huge"]) == 2
    assert "tiny or sd15" in capsys.readouterr().err
