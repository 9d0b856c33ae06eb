"""The whole DAG on a smoke configuration: outputs, metrics schema, MLflow records, selective reruns."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

import pytest
import torch
import yaml

from .conftest import run

pytestmark = pytest.mark.slow

STAGES = ["synth", "frames", "guidance", "index", "teacher", "phase1", "phase2", "evaluate", "report"]


def test_whole_dag_writes_every_output_and_the_metrics_contract(smoke_project: Path):
    lock = yaml.safe_load((smoke_project / "dvc.lock").read_text())
    assert sorted(lock["stages"]) == sorted(STAGES)
    for out in (
        "models/teacher/model.safetensors",
        "models/phase1/model.safetensors",
        "models/student/model.safetensors",
        "data/index.parquet",
        "reports/summary/metrics.md",
    ):
        assert (smoke_project / out).is_file(), out
    metrics = json.loads((smoke_project / "reports/metrics.json").read_text())
    assert sorted(metrics) == ["dance", "fashion", "wild"]
    for split, entries in metrics.items():
        assert {"reference@0", "teacher@2", "teacher_nocfg@2", "student@1", "student@2"} <= set(entries), (
            split
        )
        for key, values in entries.items():
            for name in ("ssim", "psnr", "l1", "ssim_person", "psnr_person"):
                assert isinstance(values[name], float), (split, key, name)
            for name in ("lpips", "fid", "fid_vid", "fvd"):
                assert values[name] is None  # no backbone weights in the smoke run: null, never a stand-in
    assert "| Champ (teacher) | 2 |" in (smoke_project / "reports/summary/metrics.md").read_text()


def test_mlflow_holds_each_stage_with_loss_components_and_tables(smoke_project: Path, project_env):
    db = project_env["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")
    con = sqlite3.connect(db)
    stages = {tag for (tag,) in con.execute("select value from tags where key = 'cosec.stage'")}
    assert {"teacher", "phase1", "phase2", "evaluate"} <= stages
    keys = {
        k
        for (k,) in con.execute(
            "select distinct m.key from metrics m join tags t on m.run_uuid = t.run_uuid "
            "where t.key = 'cosec.stage' and t.value = 'phase1'"
        )
    }
    assert {"loss", "loss_cd", "loss_eta", "loss_cons", "loss_tmp", "lr"} <= keys
    commits = {v for (v,) in con.execute("select value from tags where key = 'mlflow.source.git.commit'")}
    assert commits, "runs are not linked to a git commit"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=project_env["MLFLOW_TRACKING_URI"])
    (run_id,) = [
        r
        for (r,) in con.execute(
            "select r.run_uuid from runs r join tags t on r.run_uuid = t.run_uuid "
            "where t.key = 'cosec.stage' and t.value = 'evaluate' order by r.start_time desc limit 1"
        )
    ]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"metrics_dance.json", "metrics_fashion.json", "metrics_wild.json"} <= artifacts


def test_a_phase2_parameter_change_reruns_only_what_follows(smoke_project: Path, project_env):
    params_path = smoke_project / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    params["phase2"]["loss"]["tmp_weight"] = 0.1
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        out = run([sys.executable, "-m", "dvc", "repro"], smoke_project, project_env).stdout
        ran = set(re.findall(r"Running stage '([\w@]+)'", out))
        assert ran == {"phase2", "evaluate", "report"}, out[-3000:]
    finally:
        params_path.write_text(original)
        run([sys.executable, "-m", "dvc", "repro"], smoke_project, project_env)


def _stage_on_two_workers(
    project: Path, env: dict, namespace: list[str], tmp_path: Path, section: str, out: str, stage_args: str
) -> None:
    """Run one stage script with common.run.num_workers = 2 (and `section.out` = out) in the loopback namespace."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["common"]["run"]["num_workers"] = 2
    params[section]["out"] = out
    (tmp_path / "ray.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(env, RAY_USAGE_STATS_ENABLED="0", GLOO_SOCKET_IFNAME="lo")
    cmd = f'ip link set lo up && exec "{sys.executable}" {stage_args} --params "{tmp_path / "ray.yaml"}"'
    run([*namespace, cmd], project, env, timeout=600)


@pytest.mark.ray
def test_teacher_stage_trains_on_two_ray_workers(
    smoke_project: Path, project_env, loopback_namespace, tmp_path
):
    _stage_on_two_workers(
        smoke_project,
        project_env,
        loopback_namespace,
        tmp_path,
        "teacher",
        "models/teacher_ray",
        "stages/teacher.py",
    )
    from cosec.models import ChampModel

    model = ChampModel.from_pretrained(smoke_project / "models/teacher_ray")
    assert model.denoising_unet.has_motion_modules  # stage 2 ran too
    ckpts = sorted(p.name for p in (smoke_project / "runs").glob("teacher-*/stage1-*/checkpoints/*rank1*"))
    assert ckpts, "rank 1 wrote no RNG state: the run was not distributed"


@pytest.mark.ray
def test_phase1_distils_on_two_ray_workers(smoke_project: Path, project_env, loopback_namespace, tmp_path):
    _stage_on_two_workers(
        smoke_project,
        project_env,
        loopback_namespace,
        tmp_path,
        "phase1",
        "models/phase1_ray",
        "stages/phase1.py",
    )
    from cosec.models import ChampModel

    ray_student = ChampModel.from_pretrained(smoke_project / "models/phase1_ray").denoising_unet.state_dict()
    teacher = ChampModel.from_pretrained(smoke_project / "models/teacher").denoising_unet.state_dict()
    assert any(not torch.equal(ray_student[k], teacher[k]) for k in teacher)  # the student was trained
    assert sorted((smoke_project / "runs").glob("student/phase1-*/checkpoints/*rank1*")), "not distributed"


def test_ablation_ladder_writes_table4(smoke_project: Path, project_env):
    run([sys.executable, "-m", "dvc", "repro", "ablation/dvc.yaml"], smoke_project, project_env)
    for variant in ("referencelcm", "eta", "eta_cons", "eta_cons_tmp"):
        entries = json.loads((smoke_project / f"reports/ablation/{variant}.json").read_text())
        assert sorted(entries) == ["dance", "fashion", "wild"]
        assert all(set(rows) == {f"{variant}@2"} for rows in entries.values()), entries
    table = (smoke_project / "reports/ablation.md").read_text()
    for label in ("ReferenceLCM", "ETA", "CoNS"):
        assert label in table
    # each rung is its own MLflow run, tagged with its variant
    import sqlite3

    con = sqlite3.connect(project_env["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
    variants = {v for (v,) in con.execute("select value from tags where key = 'cosec.variant'")}
    assert {"referencelcm", "eta", "eta_cons", "eta_cons_tmp"} <= variants
