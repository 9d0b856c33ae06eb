from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cosec.eval import report as R

BASE = {
    "ssim": 0.7,
    "psnr": 20.0,
    "l1": 1e-4,
    "ssim_person": 0.6,
    "psnr_person": 18.0,
    "hf_ratio": 0.9,
    "jitter": 3.0,
}


def _table() -> R.MetricsTable:
    t = R.MetricsTable()
    t.add("tiktok", "reference", 0, BASE, {"lpips": "backbone weights not provided"})
    for steps in (1, 2, 4):
        t.add("tiktok", "student", steps, {**BASE, "ssim": 0.70 + steps / 100, "lpips": 0.3 - steps / 100})
        t.add("tiktok", "teacher", steps, {**BASE, "ssim": 0.60 + steps / 100})
    t.add("tiktok", "teacher", 20, {**BASE, "ssim": 0.80})
    t.add("tiktok", "teacher_nocfg", 20, {**BASE, "ssim": 0.75})
    for i, variant in enumerate(R.ABLATION):
        t.add("ubc", variant, 2, {**BASE, "ssim": 0.70 + i / 100})
    return t


def test_metrics_json_schema_and_round_trip(tmp_path):
    t = _table()
    files = R.write_report(t, tmp_path)
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert set(data) == {"tiktok", "ubc"}
    entry = data["tiktok"]["student@2"]
    for key in ("ssim", "psnr", "l1", "ssim_person", "psnr_person", "lpips", "fid", "fid_vid", "fvd"):
        assert key in entry
    assert entry["lpips"] == pytest.approx(0.28) and entry["fid"] is None and entry["fvd"] is None
    assert data["tiktok"]["reference@0"]["ssim"] == 0.7 and "teacher_nocfg@20" in data["tiktok"]
    notes = json.loads((tmp_path / "metrics_notes.json").read_text())
    assert notes["tiktok"]["reference@0"]["lpips"] == "backbone weights not provided"
    back = R.load_metrics_json(tmp_path / "metrics.json")
    assert back.values == t.values and back.reasons == t.reasons
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    assert set(files) == {"metrics", "markdown", "plot_tiktok", "plot_ubc"}


def test_bad_entries_are_rejected(tmp_path):
    t = R.MetricsTable()
    with pytest.raises(ValueError, match="unknown model name 'champ'"):
        t.add("tiktok", "champ", 2, BASE)
    with pytest.raises(ValueError, match="missing or null.*psnr"):
        t.add("tiktok", "student", 2, {**BASE, "psnr": None})
    with pytest.raises(ValueError, match="not finite"):
        t.add("tiktok", "student", 2, {**BASE, "fid": float("nan")})
    bad = tmp_path / "metrics.json"
    bad.write_text(json.dumps({"tiktok": {"student-2": BASE}}))
    with pytest.raises(ValueError, match="metrics.json: bad metrics entry 'student-2'"):
        R.load_metrics_json(bad)
    assert R.parse_entry_key("eta_cons_tmp@4") == ("eta_cons_tmp", 4)


def test_markdown_tables():
    t = _table()
    md = R.table3_markdown(t)
    lines = md.splitlines()
    assert "### tiktok" in lines and "### ubc" in lines
    rows = [ln for ln in lines if ln.startswith("| CoSeC-LCD |")]
    assert [r.split("|")[2].strip() for r in rows] == ["1", "2", "4"]
    assert "| Champ (teacher) | 20 | 0.800 |" in md and "| Champ, no CFG | 20 | 0.750 |" in md
    # rows follow the model order: reference, teacher, teacher without CFG, student
    order = [ln.split("|")[1].strip() for ln in lines if ln.startswith("| ") and "steps" not in ln]
    assert order.index("Reference frame") < order.index("Champ (teacher)") < order.index("CoSeC-LCD")
    assert "- lpips: backbone weights not provided (reference@0)" in md
    ab = R.ablation_markdown(t)
    labels = [
        ln.split("|")[1].strip() for ln in ab.splitlines() if ln.startswith("| ") and "variant" not in ln
    ]
    assert labels == ["ReferenceLCM", "+ spatial ETA", "+ spatial CoNS", "+ temporal ETA"]
    assert "tiktok" not in ab


def test_figures(tmp_path):
    t = _table()
    plot = R.plot_quality_vs_steps(t, "tiktok", tmp_path / "q.png")
    assert Image.open(plot).size[0] > 400
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 24, 32, 3), dtype=np.uint8)
    row = {
        "reference": frames[0],
        "pose": frames[1],
        "ground truth": frames[2],
        "teacher": frames[3],
        "student": frames[0][..., 0],
    }
    grid = Image.open(R.save_sample_grid([row, row], tmp_path / "grid.png"))
    assert grid.size == (5 * 32, 14 + 2 * 24)
    assert np.array_equal(np.asarray(grid)[14:38, 64:96], frames[2])  # third column is the ground truth
    with pytest.raises(ValueError, match="row 0 has no image 'student'"):
        R.save_sample_grid([{k: v for k, v in row.items() if k != "student"}], tmp_path / "g2.png")
    heat = R.save_jitter_heatmap({"ground truth": frames, "student": frames[::-1]}, tmp_path / "jitter.png")
    assert Image.open(heat).size[1] > 100
    with pytest.raises(ValueError, match="at least 2 frames"):
        R.save_jitter_heatmap({"student": frames[:1]}, tmp_path / "j2.png")
