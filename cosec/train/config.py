"""How training runs (workers, checkpoints, logging), shared by every training stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from cosec.config import Range


@dataclass
class RunConfig:
    """How training runs, shared by every training stage."""

    num_workers: Annotated[int, Range(ge=1)] = (
        1  # > 1 (or use_gpu): Ray Train TorchTrainer workers, gradients averaged every step
    )
    use_gpu: bool = False
    checkpoint_every: Annotated[int, Range(ge=1)] = 100
    keep_last: Annotated[int, Range(ge=1)] = 2
    log_every: Annotated[int, Range(ge=1)] = 10
    mixed_precision: Literal["bf16", "no"] = "bf16"  # autocast on GPU only
    progress: bool = True

    @property
    def distributed(self) -> bool:
        """Whether the run goes through Ray Train (several workers, or a GPU worker)."""
        return self.num_workers > 1 or self.use_gpu

    def loop_settings(self) -> dict:
        """The cosec.train.loop.TrainConfig fields this config sets."""
        return {
            "checkpoint_every": self.checkpoint_every,
            "keep_last": self.keep_last,
            "log_every": self.log_every,
            "mixed_precision": self.mixed_precision,
            "progress": self.progress,
        }


def settings_digest(settings, length: int = 10) -> str:
    """A short, stable hash of JSON-able settings: names work folders that must change when settings do."""
    import hashlib
    import json

    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:length]
