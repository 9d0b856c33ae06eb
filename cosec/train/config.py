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
    # how several workers sync gradients: "ddp" (DistributedDataParallel through Ray Train's prepare_model),
    # "fsdp" (FullyShardedDataParallel for the full-weight distillation student; other trainings use DDP)
    # or "loop" (the training loop's own all-reduce per parameter tensor after backward)
    data_parallel: Literal["ddp", "fsdp", "loop"] = "ddp"
    use_gpu: bool = False
    checkpoint_every: Annotated[int, Range(ge=1)] = 100
    keep_last: Annotated[int, Range(ge=1)] = 2
    log_every: Annotated[int, Range(ge=1)] = 10
    mixed_precision: Literal["bf16", "no"] = "bf16"  # autocast on GPU only
    progress: bool = True
    # an existing Ray cluster to join ("10.0.0.1:6379", "auto"); null: the RAY_ADDRESS variable, else a
    # private single-node Ray on 127.0.0.1
    ray_address: str | None = None
    # where Ray Train keeps checkpoints and results (a folder every node mounts at the same path, or a
    # URI Ray supports); null: <the stage's run folder>/ray
    storage_path: str | None = None
    # restarts of the worker group after a lost worker or node, from the last checkpoint (-1: unlimited)
    max_failures: Annotated[int, Range(ge=-1)] = 0

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

    def cluster_address(self) -> str | None:
        """The Ray cluster to join: ``ray_address``, else the RAY_ADDRESS variable, else None (a private Ray)."""
        import os

        return self.ray_address or os.environ.get("RAY_ADDRESS") or None

    def identity(self) -> dict:
        """The fields that change what is trained (not where it runs): what work-folder keys may hold.
        ``data_parallel`` is left out: a run resumes across ddp, fsdp and loop (same checkpoint format)."""
        from dataclasses import asdict

        return {
            k: v
            for k, v in asdict(self).items()
            if k not in ("ray_address", "storage_path", "max_failures", "data_parallel")
        }


def settings_digest(settings, length: int = 10) -> str:
    """A short, stable hash of JSON-able settings: names work folders that must change when settings do."""
    import hashlib
    import json

    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:length]
