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
    assert set(files) == {"metrics", "markdown", "paper_tables", "plot_tiktok", "plot_ubc"}


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


def test_intervals_round_trip_and_show_in_the_tables(tmp_path):
    t = R.MetricsTable()
    ci = {"ssim_ci": [0.69, 0.71], "psnr_ci": [19.5, 20.5], "videos": 4, "score_size": 256}
    t.add("dance", "teacher", 20, {**BASE, **ci})
    t.add("dance", "student", 2, {**BASE, "ssim": 0.72, **ci, "ssim_ci": [0.70, 0.74]})
    t.add("dance", "referencelcm", 2, {**BASE, "ssim": 0.71})
    R.write_metrics_json(t, tmp_path / "metrics.json")
    back = R.load_metrics_json(tmp_path / "metrics.json")
    assert back.values == t.values and back.values["dance"]["student@2"]["videos"] == 4
    assert json.loads((tmp_path / "metrics.json").read_text())["dance"]["teacher@20"]["ssim_ci"] == [
        0.69,
        0.71,
    ]
    with pytest.raises(ValueError, match="interval ssim_ci"):
        t.add("dance", "student", 4, {**BASE, "ssim_ci": [0.8, 0.7]})
    assert "| Champ (teacher) | 20 | 0.700 [0.690, 0.710] | 20.00 [19.50, 20.50] |" in R.table3_markdown(t)


def test_paper_tables_put_published_rows_beside_ours():
    t = _table()
    t.add("wild", "teacher", 20, BASE)
    t.add("wild", "student", 2, {**BASE, "ssim_ci": [0.6, 0.8]})
    md = R.paper_tables_markdown(
        t, {"tiktok": "tiktok", "ubc": "ubc", "wild": "wild_tiktok"}, {"wild": "j.png"}
    )
    assert "### Table 1: main comparison, TikTok (ours: split `tiktok`)" in md
    assert "| published (paper) | Champ (teacher) | 20 | 0.804 | 0.231 | 30.17 | 21.23 | 162.62 |" in md
    assert "| ours | Champ (teacher) | 20 | 0.800 |" in md and "| ours | CoSeC-LCD | 2 | 0.720 |" in md
    assert "ReferenceLCM (the ablation's first rung) is in reports/ablation.md" in md  # no rung on tiktok
    low = md.split("### Table 3")[1].split("###")[0]
    assert "| ours | Champ (teacher) | 4 |" in low and "| ours | Champ (teacher) | 20 |" not in low
    # the ubc split holds the ladder: Table 4 from its rungs; Table 2 is not drawn without a ubc student
    assert "### Table 4" not in md  # the ladder is TikTok's table: only splits standing for TikTok
    ab = R.table4_markdown(t)
    assert "### Table 4: ablation ladder" in ab and "| ours | + temporal ETA | 2 | 0.730 |" in ab
    assert "| published (paper) | + spatial CoNS | 2 | 0.770 | 0.254 | 29.59 | 189.36 |" in ab
    t5 = md.split("### Table 5")[1]
    assert "| ours | CoSeC-LCD | 2 | 0.700 [0.600, 0.800] |" in t5 and "Not evaluated here: teacher@1" in t5
    assert "![wild](j.png)" in md


def test_report_stages_write_tables_link_fig5_and_log_to_mlflow(tmp_path, monkeypatch):
    """The report stage (Tables 1-5, Fig. 5 linked, MLflow tables and figures) and the ablation report
    (Table 4 with intervals, Table 1 completed with ReferenceLCM) on a metrics file and a heat map."""
    from mlflow import MlflowClient

    from cosec.pipeline import ablation_report, report
    from cosec.pipeline.params import AblationConfig, Common, Params, ReportConfig

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ci = {"ssim_ci": [0.65, 0.75], "videos": 3, "score_size": 64}
    t = R.MetricsTable()
    t.add("dance", "teacher", 20, {**BASE, **ci})
    t.add("dance", "student", 2, {**BASE, **ci})
    R.write_metrics_json(t, tmp_path / "reports/metrics.json")
    frames = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    heat = tmp_path / "reports/samples/jitter_dance.png"
    R.save_jitter_heatmap({"ground truth": frames, "student": frames[::-1]}, heat)
    params = Params(common=Common(mlflow_db=str(tmp_path / "mlflow.db")), report=ReportConfig())
    report.STAGE.run(params.only(report.STAGE.sections))
    md = (tmp_path / "reports/summary/paper_tables.md").read_text()
    assert (
        "| ours | CoSeC-LCD | 2 | 0.700 [0.650, 0.750] |" in md
        and "![dance](../samples/jitter_dance.png)" in md
    )
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (exp,) = [e for e in client.search_experiments() if e.name == "cosec-lcd"]
    (run,) = client.search_runs([exp.experiment_id])
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "metrics_dance.json",
        "paper_tables.json",
        "jitter_dance.png",
        "quality_vs_steps_dance.png",
    } <= logged
    for variant in R.ABLATION:
        path = tmp_path / "reports/ablation" / f"{variant}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        rung = {**BASE, **ci, "ssim": 0.7 + R.ABLATION.index(variant) / 100}
        path.write_text(json.dumps({"dance": {f"{variant}@2": rung}}))
    params = Params(report=ReportConfig(), ablation=AblationConfig())
    ablation_report.STAGE.run(params.only(ablation_report.STAGE.sections))
    ab = (tmp_path / "reports/ablation.md").read_text()
    assert "| ours | + spatial ETA | 2 | 0.710 [0.650, 0.750] |" in ab
    t1 = ab.split("### Table 1")[1]
    assert "| ours | ReferenceLCM | 2 | 0.700" in t1 and "| ours | Champ (teacher) | 20 | 0.700" in t1
