"""Stage entry points: strict params before any work, one clean line for user errors, MLflow runs that end
KILLED on SIGINT/SIGTERM and are closed FAILED when a SIGKILLed stage next starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from cosec.config import ConfigError
from cosec.pipeline.params import load_params

REPO = Path(__file__).resolve().parents[2]


def _params(tmp_path: Path, change) -> Path:
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    change(doc)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _rename(doc, old, new):
    doc[new] = doc.pop(old)


CASES = {
    "misspelled section": (lambda d: _rename(d, "phase1", "phase_1"), "phase_1"),
    "unknown key": (lambda d: d["teacher"]["vae"].update(stepz=3), "teacher.vae: unknown key(s) ['stepz']"),
    "wrong type": (lambda d: d["phase1"]["loss"].update(steps="many"), "phase1"),
    "NaN learning rate": (
        lambda d: d["distill"].update(lr=float("nan")),
        "distill.lr: expected a finite number",
    ),
    "negative max_frames": (lambda d: d["frames"].update(max_frames=-3), "frames.max_frames: must be >= 0"),
    "zero stride": (lambda d: d["frames"].update(stride=0), "frames.stride: must be >= 1"),
    "zero batch": (
        lambda d: d["phase1"]["data"].update(batch_size=0),
        "phase1.data.batch_size: must be >= 1",
    ),
    "bad on_error": (lambda d: d["guidance"].update(on_error="ignore"), "guidance.on_error: must be one of"),
    "negative lr": (lambda d: d["teacher"]["stage1"].update(lr=-1.0), "teacher.stage1.lr: must be > 0"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_params_fail_at_load_naming_the_file_and_key(tmp_path, case):
    change, expected = CASES[case]
    path = _params(tmp_path, change)
    with pytest.raises(ConfigError) as err:
        if case == "wrong type":
            from cosec.pipeline.distill import loss_config

            p = load_params(path)
            loss_config(1, p.phase1, f"{path}:phase1.loss")
        else:
            load_params(path)
    assert str(path) in str(err.value) and expected in str(err.value), str(err.value)


def test_the_committed_params_files_parse():
    for name in ("params.yaml", "reproduce/params.yaml"):
        assert load_params(REPO / name).source.endswith(name)


def test_a_stage_cannot_read_a_section_it_does_not_declare():
    view = load_params(REPO / "params.yaml").only(("synth",))
    assert view.synth.seed == 0
    with pytest.raises(RuntimeError, match="add 'teacher'"):
        _ = view.teacher.out


def test_stage_script_prints_one_line_without_traceback(tmp_path):
    path = _params(tmp_path, lambda d: _rename(d, "phase1", "phase_1"))
    proc = subprocess.run(
        [sys.executable, "stages/phase1.py", "--params", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "phase_1" in lines[0], proc.stderr


# The child restores Python's SIGINT handler: a suite started in the background (`.ci/run &`) hands its
# children SIGINT ignored, as shells do for background jobs, and the SIGINT case would then wait forever.
TRACKED = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from cosec.pipeline.common import tracked
    from cosec.pipeline.params import Common
    common = Common(experiment="kill-test", mlflow_db=sys.argv[1])
    with tracked(common, "phase1", {"x": 1}) as run:
        print(run.run_id, flush=True)
        time.sleep(120)
""")


def _status(db: Path, experiment: str = "kill-test") -> list[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    return [r.info.status for r in client.search_runs([exp.experiment_id])]


def _start(tmp_path: Path) -> subprocess.Popen:
    script = tmp_path / "tracked.py"
    script.write_text(TRACKED)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "mlflow.db")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip(), proc.stderr.read()  # the run exists
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_stage_ends_its_run_killed(tmp_path, sig):
    proc = _start(tmp_path)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert _status(tmp_path / "mlflow.db") == ["KILLED"]


def test_a_sigkilled_run_is_closed_failed_when_the_stage_starts_again(tmp_path):
    proc = _start(tmp_path)
    proc.kill()
    proc.wait(timeout=60)
    assert _status(tmp_path / "mlflow.db") == ["RUNNING"]
    from cosec.pipeline.common import close_stale_runs
    from cosec.pipeline.params import Common

    common = Common(experiment="kill-test", mlflow_db=str(tmp_path / "mlflow.db"))
    env_uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        closed = close_stale_runs(common, "phase1")
        assert len(closed) == 1
        assert _status(tmp_path / "mlflow.db") == ["FAILED"]
        assert close_stale_runs(common, "phase1") == []  # nothing left to close
    finally:
        if env_uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = env_uri
