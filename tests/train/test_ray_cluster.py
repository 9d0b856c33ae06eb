"""A two-node Ray cluster on this machine (loopback-only namespace): the phase-1 stage joins it through
common.run.ray_address with 2 workers, one worker process is SIGKILLed mid-run, Ray Train restarts the
worker group from the last checkpoint (common.run.max_failures) and the stage finishes; the result equals
an uninterrupted run's on the same cluster."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml
from tiny_project import write_tiny_split

from cosec.train.checkpoint import list_checkpoints

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STEPS, EVERY = 6, 2


def _tiny_data(base: Path) -> None:
    """3 videos of 2 sources x 6 frames (32 px noise), their index and a tiny image-only teacher."""
    from cosec.models import ChampModel, ModelSize

    write_tiny_split(base)
    torch.manual_seed(0)
    ChampModel.build(ModelSize(resolution=32).build_config()).save_pretrained(base / "teacher")


def _params(folder: Path, data: Path, port: int) -> None:
    folder.mkdir()
    run = {"num_workers": 2, "checkpoint_every": EVERY, "keep_last": 2, "log_every": 1, "mixed_precision": "no",
           "progress": False, "ray_address": f"127.0.0.1:{port}", "max_failures": 2}  # fmt: skip
    params = {
        "common": {
            "data_root": str(data / "prepared"),
            "index": str(data / "index.parquet"),
            "threads": 1,
            "mlflow_db": "mlflow.db",
            "run": run,
        },  # fmt: skip
        "distill": {"lr": 1.0e-3, "seed": 5, "ema_decay": 0.9},
        "phase1": {
            "loss": {"steps": STEPS, "w": 1.5, "eta_weight": 0.5, "cons_weight": 0.1},
            "data": {"batch_size": 2, "k_ras": 2, "m_ers": 1, "window": 4},
            "teacher": str(data / "teacher"),
            "out": "student",
        },  # fmt: skip
    }
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


def _train_workers() -> list[int]:
    """Process ids of the Ray Train workers running now (Ray names them ``ray::RayTrainWorker...``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"RayTrainWorker" in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return sorted(pids)


def _checkpoints(folder: Path) -> list[int]:
    found = list((folder / "runs").glob("student/phase1-*/checkpoints"))
    return [s for s, _ in list_checkpoints(found[0])] if found else []


@pytest.mark.ray
@pytest.mark.slow
def test_two_node_cluster_survives_a_killed_worker(tmp_path, loopback_namespace):
    data = tmp_path / "data"
    _tiny_data(data)
    port = 6390
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    _params(clean, data, port)
    _params(killed, data, port)
    temp = tempfile.mkdtemp(prefix="cr", dir="/tmp")  # Ray's socket paths must stay short
    # Ray's token authentication, with a token of this test's own (nothing read from or written to ~/.ray)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**os.environ, **auth, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "GLOO_SOCKET_IFNAME": "lo",
           "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}  # fmt: skip
    script = HERE / "ray_cluster_driver.py"
    driver = f'ip link set lo up && exec "{sys.executable}" "{script}" {temp} {port} "{clean}" "{killed}"'
    proc = subprocess.Popen(
        [*loopback_namespace, driver], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    at_kill = None
    try:
        deadline = time.monotonic() + 900
        while proc.poll() is None and time.monotonic() < deadline:
            done = _checkpoints(killed) if (killed / "started").exists() else []
            if at_kill is None and done and done[-1] < STEPS:
                workers = _train_workers()
                if len(workers) == 2:
                    os.kill(workers[-1], signal.SIGKILL)  # one of the two workers, on either node
                    at_kill = done[-1]
            time.sleep(0.05)
        out = proc.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(temp, ignore_errors=True)
    logs = {
        f.name: (f / "stage.log").read_text() if (f / "stage.log").exists() else "" for f in (clean, killed)
    }
    assert proc.returncode == 0, out[-3000:] + logs["clean"][-3000:] + logs["killed"][-5000:]
    assert at_kill is not None, "the killed run finished before a worker could be killed"
    # the clean run never restarted; the killed one restarted from a checkpoint at or after the newest one
    # on disk when its worker died: at most one checkpoint interval of steps was lost
    assert "resumed from step" not in logs["clean"]
    resumed = re.search(r"phase1 \(student\) written to student \(resumed from step (\d+)\)", logs["killed"])
    assert resumed, logs["killed"][-5000:]
    assert at_kill <= int(resumed.group(1)) < STEPS and int(resumed.group(1)) % EVERY == 0
    for folder in (clean, killed):
        assert _checkpoints(folder)[-1] == STEPS
        (ray_run,) = (folder / "runs").glob("student/phase1-*/ray/phase1-*")  # Ray Train's storage
        final = ray_run / f"{ray_run.name}-checkpoint-{STEPS:08d}"  # the fit (run folder) names the part
        assert {p.name for p in final.iterdir()} >= {f"ckpt-{STEPS:08d}.pt", f"ckpt-{STEPS:08d}.rank1.rng.pt"}
    digest = {f.name: hashlib.sha256((f / "student" / "model.safetensors").read_bytes()).hexdigest()
              for f in (clean, killed)}  # fmt: skip
    assert digest["killed"] == digest["clean"]
