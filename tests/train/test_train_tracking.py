from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from cosec.train import MLflowTracker, NullTracker, TrainConfig, train
from cosec.train.tracking import flatten_params


def test_flatten_params():
    assert flatten_params({"a": {"b": 1, "c": {"d": (1, 2)}}, "e": None}) == {
        "a.b": "1",
        "a.c.d": "(1, 2)",
        "e": "None",
    }


@pytest.mark.slow
def test_mlflow_tracker_records_params_metrics_tables_images(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MLflowTracker("cosec-test", stage="phase1", tracking_uri=uri, tags={"variant": "eta"})
    model = nn.Linear(2, 1)
    train(
        lambda b: (model(b) - 1).pow(2).mean(),
        lambda s: iter(lambda: torch.ones(3, 2), None),
        model.parameters(),
        TrainConfig(max_steps=6, out_dir=str(tmp_path / "run"), lr=0.1, log_every=2, progress=False),
        tracker=tracker,
    )
    tracker.log_table({"model": ["student", "teacher"], "ssim": [0.7, 0.8]}, "metrics_table")
    tracker.log_image(np.zeros((8, 8, 3), dtype=np.uint8), "grid")
    tracker.close()

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["cosec.stage"] == "phase1" and run.data.tags["variant"] == "eta"
    assert run.data.tags["cosec.experiment"] == "cosec-test"
    assert run.data.params["train.max_steps"] == "6" and run.data.params["train.lr"] == "0.1"
    history = client.get_metric_history(tracker.run_id, "loss")
    assert [m.step for m in history] == [2, 4, 6]
    assert history[-1].value < history[0].value
    artifacts = {a.path for a in client.list_artifacts(tracker.run_id)}
    assert {"metrics_table.json", "grid.png"} <= artifacts
    local = client.download_artifacts(tracker.run_id, "metrics_table.json", str(tmp_path))
    table = json.loads(open(local).read())
    assert table["columns"] == ["model", "ssim"] and table["data"][1] == ["teacher", 0.8]
    # a resumed run continues the same MLflow run and keeps the first parameter values
    again = MLflowTracker("cosec-test", stage="phase1", tracking_uri=uri, run_id=tracker.run_id)
    again.log_params({"train": {"max_steps": 12, "new_key": 1}})
    params = client.get_run(tracker.run_id).data.params
    assert params["train.max_steps"] == "6" and params["train.new_key"] == "1"


def test_non_zero_rank_tracker_records_nothing(tmp_path):
    tracker = MLflowTracker(
        "cosec-test", stage="phase1", tracking_uri=f"sqlite:///{tmp_path / 'x.db'}", rank=1
    )
    tracker.log_metrics({"loss": 1.0}, step=1)
    tracker.close()
    assert tracker.run_id is None and not (tmp_path / "x.db").exists()
    NullTracker().log_metrics({"loss": 1.0}, step=1)
