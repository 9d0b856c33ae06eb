"""A copy of the project with a smoke configuration, run once through `dvc repro` for the whole module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

SMOKE = {
    "synth": {
        "resolution": 64,
        "frames_per_video": 8,
        "train_videos": 4,
        "train_subjects": 2,
        "test_videos": {"dance": 1, "fashion": 1, "wild": 1},
        "supersample": 1,
    },
    "frames": {"resolution": 64},
    "guidance": {"contact_frames": 2},
    "common": {
        "threads": 1,
        "model": {"vae_channels": None},
        "run": {"checkpoint_every": 1, "log_every": 1, "progress": False},
    },
    "teacher": {
        "import_dir": None,  # trains the teacher from scratch (the shipped one is tested in tests/teacher)
        "vae": {"steps": 2, "batch_size": 4},
        "stage1": {"steps": 2, "batch_size": 2},
        "stage2": {"steps": 1, "batch_size": 1, "num_frames": 4},
    },
    "phase1": {"loss": {"steps": 2}, "data": {"batch_size": 1}},
    "phase2": {"loss": {"steps": 2}, "data": {"batch_size": 1, "num_frames": 4}},
    "evaluate": {
        "protocol": {
            "teacher_steps": [2],
            "teacher_nocfg_steps": [2],
            "student_steps": [1, 2],
            "max_videos": 1,
            "max_frames": 3,
            "min_gap": 4,
        }
    },
    "ablation": {"protocol": {"max_videos": 1, "max_frames": 3, "min_gap": 4}},
}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) and key in base else value
    return out


def run(cmd: list[str], cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="session")
def project_env(session_home) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # dvc, prefect of this venv
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{session_home / 'pipeline-mlflow.db'}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def smoke_project(tmp_path_factory, project_env) -> Path:
    """The project's files (tracked and untracked, not ignored) in a fresh git repo, smoke params, repro'd."""
    dest = tmp_path_factory.mktemp("project") / "cosec-lcd"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        src = REPO / name
        if src.is_file() and not name.startswith(("reports/", "data/", "models/")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    (dest / "params.yaml").write_text(yaml.safe_dump(_merge(params, SMOKE), sort_keys=False))
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "smoke"],
    ):
        run(cmd, dest, project_env)
    run([sys.executable, "-m", "dvc", "repro"], dest, project_env)
    return dest
