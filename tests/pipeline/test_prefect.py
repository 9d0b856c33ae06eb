"""`prefect deployment run distill/phase2` against a real Prefect server and worker on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from .conftest import run

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def prefect_server(project_env, tmp_path):
    port = _free_port()
    env = dict(
        project_env,
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_UI_ENABLED="false",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(
                    f"Prefect server did not start:\n{(tmp_path / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(1)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_deployment_phase2_runs_to_completed(smoke_project: Path, prefect_server):
    env = prefect_server
    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    run(prefect + ["work-pool", "create", "cosec-local", "--type", "process"], smoke_project, env)
    run(prefect + ["deploy", "--all"], smoke_project, env)
    run(prefect + ["deployment", "run", "distill/phase2"], smoke_project, env)
    # the worker as a newcomer starts it: the venv's prefect, PATH without the venv (stages say `python ...`)
    plain = {k: v for k, v in env.items() if k != "VIRTUAL_ENV"} | {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    run(
        prefect + ["worker", "start", "--pool", "cosec-local", "--run-once"],
        smoke_project,
        plain,
        timeout=600,
    )

    out = run(
        prefect + ["flow-run", "ls", "--flow-name", "distill", "--limit", "1", "--output", "json"],
        smoke_project,
        env,
    ).stdout
    runs = json.loads(out)
    assert runs and runs[0]["state"]["type"] == "COMPLETED", runs

    # a stage's user error ends the flow Failed with the stage's own line as the state message
    params_path = smoke_project / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    params["phase2"]["loss"]["steps"] = 0  # refused by the phase2 stage: 0 steps would ship the teacher
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        run(prefect + ["deployment", "run", "distill/phase2"], smoke_project, env)
        # the worker's own exit code does not follow the flow's state: the state is checked below
        subprocess.run(
            prefect + ["worker", "start", "--pool", "cosec-local", "--run-once"],
            cwd=smoke_project,
            env=plain,
            capture_output=True,
            timeout=600,
        )
    finally:
        params_path.write_text(original)
        # DVC removed phase2's outputs before the stage refused to run: they come back from the run cache
        run([sys.executable, "-m", "dvc", "repro"], smoke_project, env)
    out = run(
        prefect + ["flow-run", "ls", "--flow-name", "distill", "--limit", "1", "--output", "json"],
        smoke_project,
        env,
    ).stdout
    (failed,) = json.loads(out)
    assert failed["state"]["type"] == "FAILED", failed
    assert "phase2: error: " in failed["state"]["message"], failed["state"]
    assert "phase2.loss: PhaseConfig: steps must be >= 1, got 0" in failed["state"]["message"]
    assert "Traceback" not in failed["state"]["message"]
