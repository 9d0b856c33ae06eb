"""A newcomer's shell: no venv activated, PATH as a new machine has it. The README's commands must work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow

PLAIN_PATH = "/usr/local/bin:/usr/bin:/bin"


def _readme_first_command() -> str:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return blocks[0].strip()


def _after_install(command: str) -> str:
    """The README's command with the venv creation and the install left out (the test session did both)."""
    parts = [p.strip() for p in command.split("&&")]
    assert parts[0].startswith("python3 -m venv .venv"), parts
    return " && ".join(p for p in parts[1:] if " install " not in f" {p} ")


def _plain_env(project_env: dict) -> dict:
    env = {k: v for k, v in project_env.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = PLAIN_PATH
    return env


def test_readme_commands_run_stages_with_the_project_python_from_a_plain_shell(
    smoke_project: Path, project_env
):
    venv = smoke_project / ".venv"
    if not venv.exists():
        venv.symlink_to(Path(sys.prefix))  # the venv the README's first command would have made here
    tail = _after_install(_readme_first_command())
    assert tail.endswith("dvc repro"), tail
    # the README's words, then one stage forced so that DVC really runs a stage command
    cmd = f"{tail} --force --single-item report"
    proc = subprocess.run(
        ["bash", "-c", cmd],
        cwd=smoke_project,
        env=_plain_env(project_env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Running stage 'report'" in proc.stdout


def test_prefect_worker_runs_stages_with_its_own_interpreter(project_env):
    import importlib.util

    spec = importlib.util.spec_from_file_location("cosec_flows_distill", REPO / "flows" / "distill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stage_env = module.stage_env

    env = stage_env(_plain_env(project_env))
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    # what a DVC stage command does: `python` from PATH must see the project
    proc = subprocess.run(
        ["python", "-c", "import cosec.pipeline.entry, sys; print(sys.prefix)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert Path(proc.stdout.strip()) == Path(sys.prefix)
