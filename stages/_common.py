"""Glue shared by the training and evaluation stages: params parsing, MLflow run, threads."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from cosec.config import load_section, to_dict
from cosec.teacher.recipe import ModelSize, RunConfig
from cosec.train.tracking import MLflowTracker

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # in the project; MLFLOW_TRACKING_URI overrides it


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


def setup(stage: str, params: str) -> Common:
    common = load_section(params, "common", Common)
    if common.threads:
        torch.set_num_threads(common.threads)
    return common


def tracker(common: Common, stage: str, params: dict, tags: dict | None = None) -> MLflowTracker:
    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    t = MLflowTracker(common.experiment, stage=stage, tracking_uri=uri, tags={"dvc.stage": stage, **(tags or {})})
    t.log_params({**params, "common": to_dict(common)})
    return t


def read_index(common: Common) -> pd.DataFrame:
    path = Path(common.index)
    if not path.is_file():
        raise SystemExit(f"{path}: index not found; run `dvc repro index` first")
    return pd.read_parquet(path)
