"""The shared training loop, checkpoints, experiment tracking and Ray Train wiring."""

from cosec.train.loop import NonFiniteLossError, TrainConfig, Trainer, TrainResult, train
from cosec.train.tracking import MLflowTracker, NullTracker, Tracker

__all__ = [
    "MLflowTracker",
    "NonFiniteLossError",
    "NullTracker",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "Tracker",
    "train",
]
