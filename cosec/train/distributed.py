"""Run a training loop in process, or on several workers through Ray Train (TorchTrainer, DDP).

The loop function is the same either way: `loop_fn(config: dict) -> dict | None`. Inside it, use
`device()` and `rank_seed()`; the Trainer in cosec.train.loop finds rank and world size from
torch.distributed, averages gradients across ranks and writes its checkpoint files itself (rank 0),
so an in-process run and a Ray run resume from the same files. `launch` is the one entry point the
training recipes use: a worker function, its payload and the run settings.

Ray binds loopback only: `ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1")`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

LoopFn = Callable[[dict[str, Any]], "dict[str, Any] | None"]


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _in_ray_worker() -> bool:
    try:
        import ray.train

        ray.train.get_context().get_world_rank()
        return True
    except Exception:  # noqa: BLE001 - outside a Ray Train session every accessor raises
        return False


def device() -> torch.device:
    """The worker's device: Ray's assignment inside Ray Train, else CUDA if present, else CPU."""
    if _in_ray_worker():
        import ray.train.torch

        return ray.train.torch.get_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def rank_seed(seed: int) -> int:
    """The data seed of this rank: every Ray worker draws its own batches (rank 0 keeps ``seed``)."""
    return seed + 7919 * rank()


def init_ray_local(num_cpus: int | None = None) -> None:
    """Start a private single-node Ray bound to 127.0.0.1, no dashboard, no usage stats."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # The cluster is single-node on loopback, so gloo (CPU DDP) talks over lo as well.
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    if not ray.is_initialized():
        ray.init(
            address="local",
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            num_cpus=num_cpus,
            log_to_driver=True,
            configure_logging=False,
        )


def _ray_worker(payload: dict[str, Any]) -> None:
    import tempfile

    import ray.train

    result = payload["loop_fn"](payload["config"]) or {}
    # Ray Train v2 keeps metrics only with a checkpoint: rank 0 reports its result as a tiny one;
    # every worker must call report once.
    if ray.train.get_context().get_world_rank() == 0:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "result.json").write_text(json.dumps(result, default=str))
            ray.train.report(dict(result), checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report({})


def run(
    loop_fn: LoopFn,
    config: dict[str, Any],
    num_workers: int = 1,
    use_gpu: bool = False,
    storage_path: str | Path | None = None,
    name: str = "cosec-train",
) -> dict[str, Any]:
    """Run loop_fn(config) in this process (1 worker, no GPU) or on num_workers Ray Train workers.

    Returns the dict loop_fn returned (rank 0's, via Ray's result metrics in the Ray case).
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    if num_workers == 1 and not use_gpu:
        return dict(loop_fn(config) or {})
    import ray.train
    from ray.train.torch import TorchTrainer

    init_ray_local()
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"loop_fn": loop_fn, "config": config},
        scaling_config=ray.train.ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        run_config=ray.train.RunConfig(name=name, storage_path=str(storage_path) if storage_path else None),
    )
    result = trainer.fit()
    if result.error is not None:
        raise RuntimeError(f"Ray Train run {name!r} failed: {result.error}") from result.error
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train run {name!r} finished without rank 0's result")
    with result.checkpoint.as_directory() as folder:
        return json.loads((Path(folder) / "result.json").read_text())


def _launched(payload: dict[str, Any]) -> dict[str, Any]:
    """A Ray worker's side of `launch`: rebuild the tracker (rank 0 logs into the driver's run)."""
    from cosec.train.tracking import tracker_from_spec

    return payload["worker"](payload["payload"], tracker_from_spec(payload["tracker"], rank()))


def launch(
    worker: Callable[[dict[str, Any], Any], dict[str, Any]],
    payload: dict[str, Any],
    run_config,
    work_dir: str | Path,
    name: str,
    tracker=None,
) -> dict[str, Any]:
    """``worker(payload, tracker)`` in this process, or on Ray Train workers when ``run_config.distributed``.

    Paths in ``payload`` must already be absolute (Ray workers run in their own folder); the worker
    returns a small dict (file paths) that rank 0 fills. Ray's own files go under ``work_dir/ray``.
    """
    if not run_config.distributed:
        return dict(worker(payload, tracker) or {})
    spec = tracker.spec() if hasattr(tracker, "spec") else None
    return run(
        _launched,
        {"worker": worker, "payload": payload, "tracker": spec},
        num_workers=run_config.num_workers,
        use_gpu=run_config.use_gpu,
        storage_path=Path(work_dir).resolve() / "ray",
        name=name,
    )
