"""The project's own contracts: set-up commands, CI entry point, console script, pins."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_readme_has_the_two_setup_commands():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "dvc repro" in main_job and "pytest" in tests
    for command in commands:
        assert "-c constraints.txt" in command  # the CPU torch pin is always applied


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_constraints_pin_torch_and_pyproject_allows_a_range():
    pins = (REPO / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", pins, flags=re.M)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    torch_spec = next(d for d in project["project"]["dependencies"] if d.startswith("torch"))
    assert "==" not in torch_spec and ">=" in torch_spec
    assert project["project"]["scripts"]["cosec"] == "cosec.cli:main"
    banned = {"torchvision", "torch-fidelity", "lpips", "piq"}
    names = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower() for d in project["project"]["dependencies"]}
    assert not names & banned


def test_cli_help_lists_command_groups():
    out = subprocess.run([sys.executable, "-m", "cosec", "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "champ" in out.stdout


def test_dvc_project_initialised_without_analytics():
    config = (REPO / ".dvc" / "config").read_text()
    assert "analytics = false" in config


def test_reproduce_graph_is_the_main_graph_under_reproduce():
    """reproduce/dvc.yaml repeats dvc.yaml with its data under reproduce/: the two must not drift."""
    import yaml

    main = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    repro = yaml.safe_load((REPO / "reproduce" / "dvc.yaml").read_text())["stages"]
    assert list(repro) == list(main)
    params = yaml.safe_load((REPO / "reproduce" / "params.yaml").read_text())
    assert set(params) >= {
        "synth",
        "frames",
        "guidance",
        "index",
        "common",
        "teacher",
        "distill",
        "phase1",
        "phase2",
        "evaluate",
    }

    def strip(value):
        return json.loads(json.dumps(value).replace("reproduce/", ""))

    for name, stage in repro.items():
        assert stage.pop("wdir") == ".."
        if "params" in main[name]:
            (sections,) = stage.pop("params")
            assert sections == {"reproduce/params.yaml": main[name]["params"]}, name
        expected = {k: v for k, v in main[name].items() if k != "params"}
        if "deps" in expected:  # the shipped teacher is the main graph's input only; reproduce trains its own
            expected["deps"] = [d for d in expected["deps"] if d != "shipped/teacher"]
        assert strip(stage) == expected, name
        for out in stage.get("outs", []) + stage.get("metrics", []):
            path = out if isinstance(out, str) else next(iter(out))
            assert path.startswith("reproduce/"), (name, path)  # never writes over the default run's files
