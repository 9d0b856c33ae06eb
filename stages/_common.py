"""Glue shared by the training and evaluation stages: params parsing, MLflow run, threads."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from cosec.config import load_section, to_dict
from cosec.teacher.recipe import ModelSize, RunConfig
from cosec.train.tracking import MLflowTracker

MLFLOW_DB = "mlflow.db"  # in the project; MLFLOW_TRACKING_URI overrides it


@dataclass
class Common:
    experiment: str = "cosec-lcd"
    data_root: str = "data/prepared"
    index: str = "data/index.parquet"
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    model: ModelSize = field(default_factory=ModelSize)
    run: RunConfig = field(default_factory=RunConfig)


def parse_args(stage: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"stages/{stage}.py", description=f"DVC stage '{stage}'")
    parser.add_argument("--params", default="params.yaml", help="params YAML file")
    return parser.parse_args()


def setup(params: str) -> Common:
    common = load_section(params, "common", Common)
    if common.threads:
        torch.set_num_threads(common.threads)
    return common


def tracker(common: Common, stage: str, params: dict, tags: dict | None = None) -> MLflowTracker:
    # absolute, so Ray workers (which run in their own folder) log into the same store
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(MLFLOW_DB).resolve()}"
    t = MLflowTracker(
        common.experiment, stage=stage, tracking_uri=uri, tags={"dvc.stage": stage, **(tags or {})}
    )
    t.log_params({**params, "common": to_dict(common)})
    return t


@contextlib.contextmanager
def tracked(common: Common, stage: str, params: dict, tags: dict | None = None):
    """An MLflow run for the stage body: FINISHED when it returns, FAILED (and re-raised) when it does not."""
    run = tracker(common, stage, params, tags)
    try:
        yield run
    except BaseException:
        run.close("FAILED")
        raise
    run.close()


def work_dir(name: str, config: dict, inputs: list[str] = ()) -> str:
    """Checkpoint folder of a training stage, keyed by its configuration and its input models.

    A rerun after an interruption finds its checkpoints and resumes; a rerun after a change of
    params or of an upstream model starts afresh instead of resuming a stale run.
    """
    stamp = {"config": config, "inputs": {}}
    for path in inputs:
        for f in sorted(Path(path).rglob("*")) if Path(path).is_dir() else [Path(path)]:
            if f.is_file():
                st = f.stat()
                stamp["inputs"][str(f)] = [st.st_size, st.st_mtime_ns]
    digest = hashlib.sha1(json.dumps(stamp, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"runs/{name}-{digest}"


def read_index(common: Common) -> pd.DataFrame:
    path = Path(common.index)
    if not path.is_file():
        raise SystemExit(f"{path}: index not found; run `dvc repro index` first")
    return pd.read_parquet(path)
