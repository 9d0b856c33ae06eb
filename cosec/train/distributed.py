"""Run a training loop in process, or on several workers through Ray Train (TorchTrainer, DDP).

The loop function is the same either way: `loop_fn(config: dict) -> dict | None`. Inside it, use
`device()` and `rank_seed()`; the Trainer in cosec.train.loop finds rank and world size from
torch.distributed and writes its checkpoint files itself (rank 0), so an in-process run and a Ray run
resume from the same files. Gradients are synced by the wrapper `data_parallel` puts around the module
that trains (DDP through Ray Train's `prepare_model`, or FSDP), or by the loop's own averaging.
`launch` is the one entry point the training recipes use: a worker function, its payload and the run
settings.

Without a cluster address Ray binds loopback only: `ray.init(address="local", include_dashboard=False,
_node_ip_address="127.0.0.1")`; with one (`RunConfig.ray_address` or RAY_ADDRESS) the driver joins that
cluster. Inside Ray Train the loop also reports every checkpoint to Ray (`report_checkpoint`) and resumes
from `reported_checkpoint()` after Ray restarts a lost worker group (`FailureConfig(max_failures)`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

LoopFn = Callable[[dict[str, Any]], "dict[str, Any] | None"]


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def in_ray_train() -> bool:
    """Whether this process is a Ray Train worker (inside ``TorchTrainer``'s training function)."""
    if "ray.train" not in sys.modules:  # a Ray Train worker has imported it; saves the import elsewhere
        return False
    try:
        import ray.train

        ray.train.get_context().get_world_rank()
        return True
    except Exception:  # noqa: BLE001 - outside a Ray Train session every accessor raises
        return False


def device() -> torch.device:
    """The worker's device: Ray's assignment inside Ray Train, else CUDA if present, else CPU."""
    if in_ray_train():
        import ray.train.torch

        return ray.train.torch.get_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def rank_seed(seed: int) -> int:
    """The data seed of this rank: every Ray worker draws its own batches (rank 0 keeps ``seed``)."""
    return seed + 7919 * rank()


DATA_PARALLEL = ("ddp", "fsdp", "loop")  # common.run.data_parallel


def data_parallel(
    module: nn.Module, strategy: str = "ddp", find_unused_parameters: bool = False
) -> nn.Module:
    """``module`` wrapped for data parallelism over the process group, or ``module`` itself on one worker
    and with ``strategy`` "loop" (the Trainer then averages gradients after backward).

    "ddp": DistributedDataParallel (bucketed all-reduce overlapped with backward), through Ray Train's
    ``prepare_model`` inside Ray Train; ``find_unused_parameters`` only where a forward really leaves
    trainable parameters out of the loss. "fsdp": FullyShardedDataParallel (parameters, gradients and
    optimiser state sharded across ranks), from torch directly: ``prepare_model`` refuses it without CUDA,
    torch's runs on CPU (gloo) too. Set requires_grad first (the wrappers register what trains then); run
    every training forward through the wrapper and save through ``module`` (no ``module.`` key prefix).
    """
    if strategy not in DATA_PARALLEL:
        raise ValueError(f"common.run.data_parallel must be one of {DATA_PARALLEL}, got {strategy!r}")
    if world_size() == 1 or strategy == "loop":
        return module
    dev = device()
    if strategy == "fsdp":
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with torch.no_grad():  # every rank starts from rank 0's weights (sync_module_states needs CUDA)
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=0)
        # use_orig_params: the optimiser keeps the module's own parameters (sharded views of the flat one)
        return FSDP(module, device_id=dev, use_orig_params=True)
    kwargs = {"find_unused_parameters": find_unused_parameters}
    if in_ray_train():
        import ray.train.torch

        return ray.train.torch.prepare_model(
            module, move_to_device=False, parallel_strategy="ddp", parallel_strategy_kwargs=kwargs
        )
    ids = [dev] if dev.type == "cuda" else None  # torch.distributed without Ray (torchrun)
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, **kwargs)


def sync_mode(wrapper: nn.Module | None) -> str | None:
    """ "ddp" or "fsdp" for a data-parallel wrapper (it syncs gradients in backward), else None."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    if isinstance(wrapper, nn.parallel.DistributedDataParallel):
        return "ddp"
    return "fsdp" if isinstance(wrapper, FSDP) else None


def full_weights(wrapper: nn.Module | None) -> contextlib.AbstractContextManager:
    """Under FSDP: the wrapped module holds its full weights inside the block, on every rank (a collective:
    every rank enters it), and what is written to them is kept; otherwise nothing to do."""
    if sync_mode(wrapper) != "fsdp":
        return contextlib.nullcontext()
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    return FSDP.summon_full_params(wrapper, writeback=True)


def _param_names(wrapper: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The names of the optimiser's parameters in its state-dict order (0, 1, ... across groups)."""
    names = {id(p): n for n, p in wrapper.module.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def optimizer_state(wrapper: nn.Module | None, optimizer: torch.optim.Optimizer) -> dict:
    """The optimiser's full state dict as torch numbers it (a collective under FSDP: every rank gathers
    the shards, so the checkpoint loads into a DDP, loop or one-worker run too)."""
    if sync_mode(wrapper) != "fsdp":
        return optimizer.state_dict()
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    full = FSDP.optim_state_dict(wrapper, optimizer)  # keyed by parameter name
    index = {name: i for i, name in enumerate(_param_names(wrapper, optimizer))}
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in full["param_groups"]]
    return {"state": {index[n]: s for n, s in full["state"].items()}, "param_groups": groups}


def load_optimizer_state(wrapper: nn.Module | None, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a full optimiser state dict (``optimizer_state``'s, or a one-worker run's); FSDP keeps its shard."""
    if sync_mode(wrapper) != "fsdp":
        optimizer.load_state_dict(state)
        return
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    names = _param_names(wrapper, optimizer)
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]
    by_name = {"state": {names[int(i)]: s for i, s in state["state"].items()}, "param_groups": groups}
    optimizer.load_state_dict(FSDP.optim_state_dict_to_load(wrapper, optimizer, by_name))


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


def _is_loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rsplit(":", 1)[0]
    return host in ("localhost", "::1") or host.startswith("127.")


def init_ray(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` (``ray start --head`` printed it; "auto" finds a local one), or
    start a private single-node Ray on 127.0.0.1 when it is None."""
    import ray

    if address is None:
        init_ray_local()
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return
    extra = {"_node_ip_address": "127.0.0.1"} if _is_loopback(address) else {}  # driver on the cluster's lo
    ray.init(address=address, log_to_driver=True, configure_logging=False, **extra)


def _ray_worker(payload: dict[str, Any]) -> None:
    import tempfile

    import ray.train

    result = payload["loop_fn"](payload["config"]) or {}
    # Ray Train v2 keeps metrics only with a checkpoint: rank 0 reports its result as a tiny one;
    # every worker must call report once.
    if ray.train.get_context().get_world_rank() == 0:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / RESULT_FILE).write_text(json.dumps(result, default=str))
            ray.train.report(
                dict(result),
                checkpoint=ray.train.Checkpoint.from_directory(tmp),
                checkpoint_dir_name=RESULT_DIR,
            )
    else:
        ray.train.report({}, checkpoint_dir_name=RESULT_DIR)


RESULT_FILE, RESULT_DIR = "result.json", "result"


def run(
    loop_fn: LoopFn,
    config: dict[str, Any],
    num_workers: int = 1,
    use_gpu: bool = False,
    storage_path: str | Path | None = None,
    name: str = "cosec-train",
    address: str | None = None,
    max_failures: int = 0,
    keep_checkpoints: int | None = None,
) -> dict[str, Any]:
    """Run loop_fn(config) in this process (1 worker, no GPU) or on num_workers Ray Train workers.

    ``address``: the Ray cluster to join (None: a private one on 127.0.0.1). ``storage_path``: where Ray
    Train persists the checkpoints the loop reports (shared by every node on a cluster).
    ``max_failures``: how often a lost worker restarts the worker group from the last reported
    checkpoint (``ray.train.FailureConfig``). A rerun with the same ``name`` and ``storage_path`` goes on
    from the run Ray recorded there. Returns the dict loop_fn returned (rank 0's, via Ray's result).
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    if num_workers == 1 and not use_gpu:
        return dict(loop_fn(config) or {})
    import ray.train
    from ray.train.torch import TorchTrainer

    init_ray(address)
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"loop_fn": loop_fn, "config": config},
        scaling_config=ray.train.ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=str(storage_path) if storage_path else None,
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            # the loop's newest checkpoints and the final result beside them
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=keep_checkpoints + 1 if keep_checkpoints else None
            ),
        ),
    )
    result = trainer.fit()
    if result.error is not None:
        raise _worker_error(result.error) or RuntimeError(
            f"Ray Train run {name!r} failed: {result.error}"
        ) from result.error
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train run {name!r} finished without rank 0's result")
    with result.checkpoint.as_directory() as folder:
        found = Path(folder) / RESULT_FILE
        if not found.is_file():
            raise RuntimeError(f"Ray Train run {name!r}: its last checkpoint {folder} holds no {RESULT_FILE}")
        return json.loads(found.read_text())


def _worker_error(error: BaseException) -> BaseException | None:
    """The lowest rank's own exception (a NonFiniteLossError, a bad checkpoint) out of Ray's wrapper, so
    the stage reports it as it would in process; None for Ray's own failures (a lost node)."""
    failures = getattr(error, "worker_failures", None) or {}
    for rank_ in sorted(failures):
        cause = getattr(failures[rank_], "cause", None) or failures[rank_]
        if isinstance(cause, Exception) and not type(cause).__module__.startswith("ray."):
            return cause
    return None


# ---------------------------------------------------------------- checkpoints through Ray Train


FIT_FILE = "cosec-fit.txt"  # names the training a reported checkpoint belongs to


def report_checkpoint(files: list[Path], step: int, metrics: dict[str, float], fit: str) -> None:
    """Inside Ray Train: hand this rank's checkpoint files of ``step`` to Ray (every rank calls it at the
    same steps: report is a barrier). Ray merges the ranks' files into one checkpoint folder in storage.

    ``fit`` names the training they belong to: one Ray run may train several parts in turn (the teacher's
    VAE, stage 1, stage 2), and Ray hands back the run's last checkpoint whichever part reported it."""
    import shutil
    import tempfile

    import ray.train

    with tempfile.TemporaryDirectory(prefix="cosec-ckpt-") as tmp:
        (Path(tmp) / FIT_FILE).write_text(fit)
        for f in files:
            try:  # a hard link costs nothing; another file system needs a copy
                os.link(f, Path(tmp) / f.name)
            except OSError:
                shutil.copy2(f, Path(tmp) / f.name)
        ray.train.report(
            {"step": step, **metrics},
            checkpoint=ray.train.Checkpoint.from_directory(tmp),
            # one folder name per part and step: the teacher's parts all report step 1, 2, ... in one Ray
            # run, and two reports in one folder made Ray's pruning delete it twice ("Path not found")
            checkpoint_dir_name=f"{fit}-checkpoint-{step:08d}",
        )


def reported_checkpoint_folder(stack, fit: str) -> Path | None:
    """The folder of the last checkpoint this Ray Train run reported for ``fit`` (after a restart, or a
    rerun Ray restored), opened in ``stack``; None outside Ray Train, when there is none, or when the last
    one belongs to another part of the run."""
    if not in_ray_train():
        return None
    import ray.train

    reported = ray.train.get_checkpoint()
    if reported is None:
        return None
    folder = Path(stack.enter_context(reported.as_directory()))
    tag = folder / FIT_FILE
    return folder if tag.is_file() and tag.read_text() == fit else None


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

    Paths in ``payload`` must already be absolute (Ray workers run in their own folder) and, on a cluster
    of several machines, exist on every node (shared storage mounted at the same path); the worker
    returns a small dict (file paths) that rank 0 fills. Ray Train's checkpoints and results go to
    ``run_config.storage_path``, else ``work_dir/ray``; ``name`` names the run there (a rerun with the same
    name goes on from it), so it must be unique per work folder.
    """
    if not run_config.distributed:
        return dict(worker(payload, tracker) or {})
    spec = tracker.spec() if hasattr(tracker, "spec") else None
    storage = run_config.storage_path or Path(work_dir).resolve() / "ray"
    return run(
        _launched,
        {"worker": worker, "payload": payload, "tracker": spec},
        num_workers=run_config.num_workers,
        use_gpu=run_config.use_gpu,
        storage_path=storage,
        name=name,
        address=run_config.cluster_address(),
        max_failures=run_config.max_failures,
        keep_checkpoints=run_config.keep_last,
    )
