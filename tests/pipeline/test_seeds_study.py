"""The seeds study end to end on a tiny project (2 seeds, a handful of steps): each seed makes its own data
and distils the one given teacher with its own seed, and the report has every split, entry and claim."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from cosec.eval.seeds import CLAIMS, METRICS
from cosec.models import ChampModel, ModelSize
from cosec.pipeline.entry import run_stage
from cosec.pipeline.seeds_data import STAGE as DATA
from cosec.pipeline.seeds_distill import STAGE as DISTILL
from cosec.pipeline.seeds_report import STAGE as REPORT

SPLITS = ("dance", "fashion", "wild")
PARAMS = {
    "synth": {
        "resolution": 32,
        "frames_per_video": 8,
        "train_videos": 4,
        "train_subjects": 2,
        "test_videos": {s: 1 for s in SPLITS},
        "supersample": 1,
    },
    "frames": {"resolution": 32},
    "guidance": {"contact_frames": 1, "contact_sheets": "unused"},
    "index": {},
    "common": {
        "threads": 1,
        "mlflow_db": "mlflow.db",
        "model": {"resolution": 32},
        "run": {"checkpoint_every": 10, "log_every": 1, "progress": False, "mixed_precision": "no"},
    },
    "distill": {"lr": 1.0e-2},
    "phase1": {"loss": {"steps": 2}, "data": {"batch_size": 1, "k_ras": 2, "m_ers": 1, "window": 4}},
    "phase2": {"loss": {"steps": 1}, "data": {"batch_size": 1, "num_frames": 3}},
    "evaluate": {
        "protocol": {
            "teacher_steps": [2],
            "teacher_nocfg_steps": [],
            "student_steps": [2],
            "max_videos": 1,
            "max_frames": 2,
            "min_gap": 4,
            "ci_resamples": 20,
            "ci_frechet_resamples": 0,
        }
    },
    "seeds": {"seeds": [0, 1], "teacher": "teacher"},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny project after data@0, data@1, distill@0, distill@1 and report (run as DVC runs them)."""
    base = tmp_path_factory.mktemp("seeds_study")
    (base / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    torch.manual_seed(0)
    teacher = ChampModel.build(ModelSize(resolution=32).build_config(), motion_modules=True)
    teacher.save_pretrained(base / "teacher")
    mp = pytest.MonkeyPatch()
    mp.chdir(base)  # the stages' paths (and runs/) are relative, as under DVC's wdir
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        for seed in ("0", "1"):
            run_stage(DATA, "params.yaml", seed)
        for seed in ("0", "1"):
            run_stage(DISTILL, "params.yaml", seed)
        run_stage(REPORT, "params.yaml")
    finally:
        mp.undo()
    return base


def test_each_seed_has_its_own_data(study):
    frames = []
    for seed in (0, 1):
        root = study / "seeds/data" / str(seed)
        assert (root / "index.parquet").is_file()
        image = next(iter(sorted((root / "prepared/dance").glob("*/images/0000.png"))))
        frames.append(np.asarray(Image.open(image)))
    assert not np.array_equal(*frames), "synth.seed must change the synthetic videos"


def test_each_seed_distils_the_one_teacher_into_its_own_student(study):
    students = [load_file(str(study / f"seeds/models/{s}/student/model.safetensors")) for s in (0, 1)]
    assert set(students[0]) == set(students[1])
    assert any(not torch.equal(students[0][k], students[1][k]) for k in students[0])
    assert (study / "seeds/models/0/phase1/model.safetensors").is_file()
    assert not (study / "seeds/models/0/teacher").exists()  # the teacher is the input, not retrained


def test_each_seed_scores_every_claims_entry_and_the_seeds_differ(study):
    runs = [json.loads((study / f"reports/seeds/{s}.json").read_text()) for s in (0, 1)]
    for doc in runs:
        assert sorted(doc) == sorted(SPLITS)
        for split in SPLITS:
            # the protocol's entries and every entry a claim compares (teacher@1, @4, @20 added)
            assert {"reference@0", "teacher@1", "teacher@2", "teacher@4", "teacher@20"} <= set(doc[split])
            assert {"student@1", "student@2", "student@4"} <= set(doc[split])
    assert runs[0]["dance"]["student@2"]["psnr_person"] != runs[1]["dance"]["student@2"]["psnr_person"]
    assert runs[0]["dance"]["teacher@20"]["psnr_person"] != runs[1]["dance"]["teacher@20"]["psnr_person"]


def test_report_has_every_split_metric_and_claim_over_both_seeds(study):
    result = json.loads((study / "reports/seeds.json").read_text())
    runs = [json.loads((study / f"reports/seeds/{s}.json").read_text()) for s in (0, 1)]
    assert result["seeds"] == [0, 1]
    assert sorted(result["metrics"]) == sorted(result["claims"]) == sorted(SPLITS)
    for split in SPLITS:
        assert sorted(result["claims"][split]) == sorted(c.name for c in CLAIMS)
        for row in result["claims"][split].values():
            assert set(row) == set(METRICS)
            assert row["psnr_person"]["n"] == 2 and row["psnr_person"]["verdict"] in (
                "holds on every seed",
                "mixed",
                "fails",
            )
        s = result["metrics"][split]["student@2"]["psnr_person"]
        values = [r[split]["student@2"]["psnr_person"] for r in runs]
        assert s["values"] == values and s["mean"] == pytest.approx(np.mean(values))
        assert s["sd"] == pytest.approx(np.std(values, ddof=1)) and s["sd"] > 0
        c = result["claims"][split]["student@2 > teacher@4"]["ssim_person"]
        expected = [r[split]["student@2"]["ssim_person"] - r[split]["teacher@4"]["ssim_person"] for r in runs]
        assert c["margins"] == pytest.approx(expected)
    text = (study / "reports/seeds.md").read_text()
    for split in SPLITS:
        assert f"### {split}" in text
    for claim in CLAIMS:
        assert text.count(f"| {claim.name} |") == len(SPLITS)


def test_a_seed_outside_the_list_is_refused(study, monkeypatch):
    from cosec.config import ConfigError

    monkeypatch.chdir(study)
    with pytest.raises(ConfigError, match="not in seeds.seeds"):
        run_stage(DATA, "params.yaml", "5")


def test_a_seed_sets_the_data_and_distillation_seeds_and_every_path(tmp_path):
    from cosec.pipeline.params import load_params
    from cosec.pipeline.seeds_data import data_configs
    from cosec.pipeline.seeds_distill import seed_params, study_protocol

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    params = load_params(tmp_path / "params.yaml")
    synth, frames, guidance, index = data_configs(params, 1)
    assert synth.seed == 1 and synth.resolution == 32 and synth.out == "seeds/data/1/raw"
    assert (frames.raw, frames.out) == ("seeds/data/1/raw", "seeds/data/1/frames")
    assert (guidance.frames, guidance.out) == ("seeds/data/1/frames", "seeds/data/1/prepared")
    assert (index.root, index.out) == ("seeds/data/1/prepared", "seeds/data/1/index.parquet")
    p = seed_params(params, 1)
    assert p.distill.seed == 1 and p.distill.lr == 1.0e-2
    assert (p.common.data_root, p.common.index) == ("seeds/data/1/prepared", "seeds/data/1/index.parquet")
    assert p.phase1.teacher == p.phase2.teacher == "teacher"
    assert (p.phase1.out, p.phase2.init, p.phase2.out) == (
        "seeds/models/1/phase1",
        "seeds/models/1/phase1",
        "seeds/models/1/student",
    )
    assert (
        params.distill.seed == 0 and params.common.data_root == "data/prepared"
    )  # the main params untouched
    protocol = study_protocol(params.evaluate.protocol)
    assert protocol.teacher_steps == [1, 2, 4, 20] and protocol.student_steps == [1, 2, 4]
    assert protocol.max_frames == 2 and protocol.teacher_nocfg_steps == []


def test_the_stage_scripts_take_the_seed_as_their_argument(tmp_path, monkeypatch, capsys):
    from cosec.pipeline.entry import main

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    monkeypatch.chdir(tmp_path)
    assert main(DATA, ["seven", "--params", "params.yaml"]) == 1
    assert "seeds_data: error: seed 'seven': expected an integer" in capsys.readouterr().err
    assert main(DISTILL, ["2", "--params", "params.yaml"]) == 1
    assert "seed 2 is not in seeds.seeds [0, 1]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(DATA, ["--params", "params.yaml"])  # the seed is required
