"""The shared training loop, checkpoints, experiment tracking and Ray Train wiring."""

from cosec._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "MLflowTracker": ".tracking",
        "NonFiniteLossError": ".loop",
        "NullTracker": ".tracking",
        "Tracker": ".tracking",
        "TrainConfig": ".loop",
        "TrainResult": ".loop",
        "Trainer": ".loop",
        "train": ".loop",
    },
)
