"""Experiment tracking behind a small protocol: a null tracker and an MLflow one (rank 0 only)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Tracker(Protocol):
    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def log_image(self, image: np.ndarray, name: str, step: int | None = None) -> None: ...
    def log_table(self, table: Any, name: str) -> None: ...
    def close(self) -> None: ...


class NullTracker:
    """Records nothing (non-zero ranks, tests, runs without tracking)."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        return None

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        return None

    def log_image(self, image: np.ndarray, name: str, step: int | None = None) -> None:
        return None

    def log_table(self, table: Any, name: str) -> None:
        return None

    def close(self) -> None:
        return None


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts -> {"a.b": "value"} strings (MLflow params are flat strings of at most 6000 chars)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, prefix=f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


def git_commit(cwd: str | Path | None = None) -> str | None:
    """HEAD commit of the repository containing cwd, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


class MLflowTracker:
    """One MLflow run. Tracking URI: the argument, else MLFLOW_TRACKING_URI, else MLflow's default.

    Tags: cosec.stage, cosec.experiment and the git commit (mlflow.source.git.commit). Only rank 0
    records; other ranks get a tracker that does nothing. Pass run_id to continue a run after a resume.
    """

    def __init__(
        self,
        experiment: str,
        stage: str,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: Mapping[str, str] | None = None,
        rank: int = 0,
        run_id: str | None = None,
    ):
        self.active = rank == 0
        self.run_id: str | None = run_id
        self.experiment, self.stage = experiment, stage
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not self.active:
            return
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        if run_id is not None:
            self.run_id = self.client.get_run(run_id).info.run_id
            return
        all_tags = {"cosec.stage": stage, "cosec.experiment": experiment, **(tags or {})}
        commit = git_commit()
        if commit:
            all_tags["mlflow.source.git.commit"] = commit
        run = self.client.create_run(experiment_id, run_name=run_name or stage, tags=all_tags)
        self.run_id = run.info.run_id

    def spec(self) -> dict[str, Any]:
        """What a worker process needs to log into this same run (see ``tracker_from_spec``)."""
        return {
            "experiment": self.experiment,
            "stage": self.stage,
            "run_id": self.run_id,
            "tracking_uri": self.tracking_uri,
        }

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.active:
            return
        from mlflow.entities import Param

        flat = flatten_params(params)
        existing = self.client.get_run(self.run_id).data.params
        # MLflow params are immutable: a resumed run keeps the first value of each key.
        fresh = [Param(k, v) for k, v in flat.items() if k not in existing]
        for start in range(0, len(fresh), 100):
            self.client.log_batch(self.run_id, params=fresh[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if not self.active:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items() if v is not None]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def log_image(self, image: np.ndarray, name: str, step: int | None = None) -> None:
        if not self.active:
            return
        if step is None:
            self.client.log_image(self.run_id, np.asarray(image), artifact_file=f"{name}.png")
        else:
            self.client.log_image(self.run_id, np.asarray(image), key=name, step=int(step))

    def log_table(self, table: Any, name: str) -> None:
        """A pandas DataFrame or {column: values} dict, stored as the run artifact <name>.json."""
        if not self.active:
            return
        self.client.log_table(self.run_id, data=table, artifact_file=f"{name}.json")

    def close(self, status: str = "FINISHED") -> None:
        if self.active and self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


def tracker_from_spec(spec: Mapping[str, Any] | None, rank: int) -> Tracker:
    """A tracker for a training worker: rank 0 logs into the driver's MLflow run, the others do nothing."""
    if not spec or rank != 0:
        return NullTracker()
    return MLflowTracker(
        spec["experiment"], spec["stage"], tracking_uri=spec["tracking_uri"], run_id=spec["run_id"]
    )
