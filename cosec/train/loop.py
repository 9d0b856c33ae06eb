"""The one training loop every stage uses (teacher stages 1/2, distillation phases 1/2).

Read it top to bottom: resume -> for each step: accumulate micro-batch gradients under autocast,
check the loss is finite, clip, AdamW step, callbacks (EMA, validation), log, checkpoint.
The stage supplies `step_fn(batch) -> loss` (or `(loss, {"loss_cd": ..., "loss_eta": ...})`), the
parameters to optimise, the objects whose state must survive an interruption and the private
torch.Generators its step draws from (timesteps, noise, augmentations).

Data parallelism (several ranks): when the step's forward runs through a DDP or FSDP ``wrapper`` (see
cosec.train.distributed.data_parallel), backward syncs the gradients and the loop only skips that sync on
all but the last micro-batch; without one the loop averages the gradients itself after backward.

Resume is exact: a checkpoint holds the step, every `state` object, the optimiser, and every random
stream of the process (torch/numpy/python global RNGs and the named `generators`); the data are a
function of the step (`batch_stream`), so a run resumed from step s computes what an uninterrupted
run computes from step s on, bit for bit on CPU.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

import cosec.train.checkpoint as ckpt
from cosec.train import distributed
from cosec.train.tracking import NullTracker, Tracker


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


class NonFiniteLossError(RuntimeError):
    """The loss (or the gradient norm) became NaN/inf; no checkpoint was written for this step.

    ``step`` is the optimiser step that failed (None when raised outside the loop) and ``checkpoint`` the
    last good checkpoint file (None when there is none); the message names both, on one line.
    """

    def __init__(self, message: str, step: int | None = None, checkpoint: str | Path | None = None):
        super().__init__(message)
        self.step = step
        self.checkpoint = None if checkpoint is None else str(checkpoint)

    def __reduce__(self):  # keeps step and checkpoint across processes (Ray workers -> driver)
        return (type(self), (self.args[0], self.step, self.checkpoint))

    @classmethod
    def at(cls, what: str, step: int, folder: Path) -> NonFiniteLossError:
        last = ckpt.latest_checkpoint(folder)
        where = f"the last good checkpoint is {last}" if last else f"no checkpoint in {folder} yet"
        return cls(f"{what} at step {step}; {where} (nothing written for this step)", step, last)


OPTIMIZERS = ("adamw", "adamw8bit")
StepOutput = torch.Tensor | tuple[torch.Tensor, Mapping[str, torch.Tensor | float]]
Callback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainConfig:
    max_steps: int
    out_dir: str  # checkpoints go to <out_dir>/checkpoints
    lr: float = 1e-5
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_accum: int = 1  # micro-batches per optimiser step
    optimizer: str = "adamw"  # "adamw", or "adamw8bit": bitsandbytes' 8-bit AdamW (CUDA parameters only)
    clip_grad_norm: float | None = 1.0  # None: no clipping
    mixed_precision: str = "bf16"  # "bf16": autocast on CUDA (no-op on CPU); "no": fp32
    checkpoint_every: int = 100
    keep_last: int = 3
    log_every: int = 10
    seed: int = 0
    resume: bool = True
    progress: bool = True
    desc: str = "train"

    def __post_init__(self):
        if self.max_steps < 1 or self.grad_accum < 1 or self.checkpoint_every < 1 or self.keep_last < 1:
            raise ValueError(
                f"TrainConfig: max_steps, grad_accum, checkpoint_every, keep_last must be >= 1: {self}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.mixed_precision not in ("bf16", "no"):
            raise ValueError(
                f"TrainConfig.mixed_precision must be 'bf16' or 'no', got {self.mixed_precision!r}"
            )
        self.betas = tuple(self.betas)

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.out_dir) / "checkpoints"


@dataclass
class TrainResult:
    step: int
    resumed_from: int
    last_logs: dict[str, float] = field(default_factory=dict)
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    data_parallel: str = "none"  # how gradients were synced: "ddp", "fsdp", "loop" (own averaging), "none"


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def make_optimizer(params: list, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, or bitsandbytes' 8-bit AdamW (its state in 8 bits: a quarter of AdamW's memory), CUDA only."""
    kwargs = dict(lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, **kwargs)
    flat = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    off_gpu = sorted({str(t.device) for t in flat if t.device.type != "cuda"})
    if off_gpu:
        raise ValueError(
            f"optimizer 'adamw8bit' (bitsandbytes) needs the trainable weights on CUDA, they are on {off_gpu}; "
            "use optimizer: adamw on CPU"
        )
    try:
        import bitsandbytes as bnb
    except ImportError as err:
        raise ImportError(
            f"optimizer 'adamw8bit' needs bitsandbytes: pip install 'cosec-lcd[cuda]' ({err})"
        ) from err
    return bnb.optim.AdamW8bit(params, **kwargs)


def _split(out: StepOutput) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(out, tuple):
        loss, parts = out
        return loss, {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in parts.items()}
    return out, {}


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        step_fn: Callable[[Any], StepOutput],
        params: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
        state: Mapping[str, Stateful] | None = None,
        tracker: Tracker | None = None,
        callbacks: Sequence[Callback] = (),
        generators: Mapping[str, torch.Generator] | None = None,
        wrapper: nn.Module | None = None,
    ):
        """``wrapper``: the DDP/FSDP module (distributed.data_parallel) every forward of ``step_fn`` goes
        through; it syncs the gradients, so the loop's own averaging is off. ``state`` holds the unwrapped
        modules (checkpoint keys without a ``module.`` prefix)."""
        self.config = config
        self.step_fn = step_fn
        self.params = list(params)
        if not self.params:
            raise ValueError("Trainer: no parameters to optimise")
        self.optimizer = make_optimizer(self.params, config)
        self.state = dict(state or {})
        if "optimizer" in self.state:
            raise ValueError("Trainer: state key 'optimizer' is reserved")
        self.tracker = tracker or NullTracker()
        self.callbacks = list(callbacks)
        self.generators = dict(generators or {})  # saved and restored with the RNG states
        self.rank, self.world_size = _rank_world()
        mode = distributed.sync_mode(wrapper)
        if wrapper is not None and mode is None:
            raise TypeError(f"Trainer: wrapper must be DDP or FSDP, got {type(wrapper).__name__}")
        self.wrapper = wrapper
        self.data_parallel = mode or ("loop" if self.world_size > 1 else "none")
        self.step = 0

    # ---------------------------------------------------------------- checkpoints

    def _flat_params(self) -> list[torch.Tensor]:
        out = []
        for p in self.params:
            out.extend(p["params"] if isinstance(p, dict) else [p])
        return out

    def save(self, logs: Mapping[str, float] | None = None) -> Path | None:
        """Write this step's checkpoint; inside Ray Train also report it to Ray (every rank its files).

        Ranks > 0 write their RNG files first and rank 0 the main file after a barrier, so a main file on
        disk means the whole checkpoint is there."""
        folder = self.config.checkpoint_dir
        mine = []
        if self.rank > 0:
            mine.append(
                ckpt.atomic_save(
                    ckpt.rng_state(self.generators), ckpt.rank_rng_path(folder, self.step, self.rank)
                )
            )
        if self.world_size > 1:
            dist.barrier()
        path = None
        optimizer = distributed.optimizer_state(self.wrapper, self.optimizer)  # FSDP: gathered on every rank
        with distributed.full_weights(self.wrapper):  # FSDP: every rank gathers; rank 0 writes
            if self.rank == 0:
                blob = {
                    "step": self.step,
                    "state": {name: obj.state_dict() for name, obj in self.state.items()},
                    "optimizer": optimizer,
                    "rng": ckpt.rng_state(self.generators),
                    "config": asdict(self.config),
                    "world_size": self.world_size,
                }
                path = ckpt.atomic_save(blob, ckpt.checkpoint_path(folder, self.step))
                mine.append(path)
                ckpt.prune(folder, self.config.keep_last)
        if distributed.in_ray_train():
            distributed.report_checkpoint(mine, self.step, dict(logs or {}), self._fit_name())  # a barrier
        elif self.world_size > 1:
            dist.barrier()
        return path

    def _fit_name(self) -> str:
        """This training among the parts one Ray run may train in turn: its run folder's name."""
        return Path(self.config.out_dir).name

    def _resume_point(self, stack: contextlib.ExitStack) -> Path | None:
        """The checkpoint to resume from: the newest step every rank can load, from the run folder or from
        the checkpoint Ray Train restored (after a lost worker, or on another node whose run folder is empty)."""
        cfg = self.config
        folders = [cfg.checkpoint_dir]
        reported = distributed.reported_checkpoint_folder(stack, self._fit_name())
        if reported is not None:
            folders.append(reported)
        usable: dict[int, Path] = {}
        for folder in folders:
            for step, path in ckpt.list_checkpoints(folder):
                own = self.rank == 0 or ckpt.rank_rng_path(folder, step, self.rank).is_file()
                if step <= cfg.max_steps and own:
                    usable.setdefault(step, path)
        steps = set(usable)
        if self.world_size > 1:
            everyone: list[Any] = [None] * self.world_size
            dist.all_gather_object(everyone, sorted(steps))
            steps = set.intersection(*(set(s) for s in everyone))
        return usable[max(steps)] if steps else None

    def load(self, path: Path) -> int:
        blob = ckpt.load_checkpoint(path)
        missing = set(self.state) - set(blob["state"])
        if missing:
            raise ckpt.TrainCheckpointError(
                f"{path}: checkpoint has no state for {sorted(missing)} (has {sorted(blob['state'])})"
            )
        with distributed.full_weights(self.wrapper):  # FSDP: load the full weights, keep this rank's shard
            for name, obj in self.state.items():
                try:
                    obj.load_state_dict(blob["state"][name])
                except RuntimeError as err:  # torch lists every key: say which file and how much differs
                    first = str(err).strip().splitlines()[0][:200]
                    raise ckpt.TrainCheckpointError(
                        f"{path}: its state {name!r} does not fit this training's model ({first}...)"
                    ) from None
        try:
            distributed.load_optimizer_state(self.wrapper, self.optimizer, blob["optimizer"])
        except (ValueError, KeyError, IndexError) as err:  # another parameter set: say which file, what to do
            first = str(err).strip().splitlines()[0][:200]
            raise ckpt.TrainCheckpointError(
                f"{path}: its optimiser state does not fit the parameters this training optimises ({first}); "
                f"it was written by other code or settings: delete {Path(path).parent.parent} to start afresh"
            ) from None
        rng = blob["rng"]
        if self.rank:
            own = ckpt.rank_rng_path(Path(path).parent, blob["step"], self.rank)
            if not own.is_file():
                raise ckpt.TrainCheckpointError(f"{path}: no RNG file {own.name} for rank {self.rank}")
            rng = ckpt.safe_load(own, "RNG state")
        absent = ckpt.set_rng_state(rng, self.generators)
        self.step = int(blob["step"])
        if absent and self.step < self.config.max_steps:
            warnings.warn(
                f"{path}: written before generator states were checkpointed (no {sorted(absent)}): the run "
                "goes on from here, but not bit-identical to an uninterrupted one",
                stacklevel=2,
            )
        return self.step

    # ---------------------------------------------------------------- loop

    def _autocast(self):
        device = self._flat_params()[0].device
        if self.config.mixed_precision == "bf16" and device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _no_sync(self, local: bool):
        return self.wrapper.no_sync() if local and self.wrapper is not None else contextlib.nullcontext()

    def _all_finite(self, value: torch.Tensor) -> bool:
        ok = torch.isfinite(value.detach()).all().float().reshape(1)
        if self.world_size > 1:  # every rank must stop together, or the others hang in all-reduce
            ok = ok.to(value.device)
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item() > 0)

    def _average_gradients(self) -> None:
        """Data parallelism without a wrapper (common.run.data_parallel: loop): every rank steps with the
        mean gradient, one all-reduce per parameter tensor after backward.

        A parameter without a gradient on this rank (e.g. a branch its batch skipped) counts as zero,
        so all ranks take part in every reduction.
        """
        for p in self._flat_params():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(self.world_size)

    def _broadcast_parameters(self) -> None:
        """Start every rank from rank 0's trainable weights (FSDP: each rank holds its own shard)."""
        if self.data_parallel == "fsdp":
            return
        with torch.no_grad():
            for p in self._flat_params():
                dist.broadcast(p.data, src=0)

    def _batches(self, data: Iterable | Callable[[int], Iterator]) -> Iterator:
        """A callable is asked for the batches from the resume step on; an iterable is re-read and the
        micro-batches already consumed are skipped."""
        if callable(data) and not isinstance(data, Iterable):
            return iter(data(self.step))
        it = iter(data)
        for _ in range(self.step * self.config.grad_accum):
            next(it)
        return it

    def fit(self, data: Iterable | Callable[[int], Iterator]) -> TrainResult:
        cfg = self.config
        # a longer run continues from the newest checkpoint; one shorter than that restarts from an earlier one
        with contextlib.ExitStack() as stack:
            latest = self._resume_point(stack) if cfg.resume else None
            if latest is not None:
                self.load(latest)
            else:
                ckpt.seed_everything(cfg.seed + self.rank)
        if self.world_size > 1:
            self._broadcast_parameters()
        resumed_from = self.step
        if self.rank == 0:
            self.tracker.log_params(
                {
                    "train": asdict(cfg),
                    "world_size": self.world_size,
                    "data_parallel": self.data_parallel,
                    "resumed_from": resumed_from,
                }
            )
        batches = self._batches(data)
        result = TrainResult(step=self.step, resumed_from=resumed_from, data_parallel=self.data_parallel)
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            desc=cfg.desc,
            disable=not (cfg.progress and self.rank == 0),
        )
        try:
            while self.step < cfg.max_steps:
                logs = self._one_step(batches)
                self.step += 1
                for callback in self.callbacks:
                    callback(self.step, logs)
                result.history.append((self.step, logs))
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.4g}")
                if self.rank == 0 and (self.step % cfg.log_every == 0 or self.step == cfg.max_steps):
                    self.tracker.log_metrics(logs, step=self.step)
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.max_steps:
                    self.save(logs)
        finally:
            bar.close()
        result.step = self.step
        result.last_logs = result.history[-1][1] if result.history else {}
        return result

    def _one_step(self, batches: Iterator) -> dict[str, float]:
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {"loss": 0.0}
        for micro in range(cfg.grad_accum):
            local = micro < cfg.grad_accum - 1  # the wrapper syncs in the last micro-batch's backward only
            try:
                batch = next(batches)
            except StopIteration:
                raise RuntimeError(
                    f"training data ran out at step {self.step + 1} of {cfg.max_steps}"
                ) from None
            try:
                with self._no_sync(local), self._autocast():
                    loss, parts = _split(self.step_fn(batch))
            except (
                NonFiniteLossError
            ) as err:  # raised inside the step (ReferenceLCM): add step and checkpoint
                if err.step is not None:
                    raise
                raise NonFiniteLossError.at(str(err), self.step + 1, cfg.checkpoint_dir) from None
            if loss.ndim != 0:
                raise ValueError(f"step_fn must return a scalar loss, got shape {tuple(loss.shape)}")
            if not self._all_finite(loss):
                what = f"non-finite loss {float(loss.detach())} (components {parts})"
                raise NonFiniteLossError.at(what, self.step + 1, cfg.checkpoint_dir)
            # Gradients of the mean over micro-batches: each micro loss is scaled by 1/grad_accum.
            with self._no_sync(local):
                (loss / cfg.grad_accum).backward()
            sums["loss"] += float(loss.detach()) / cfg.grad_accum
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v / cfg.grad_accum
        if self.data_parallel == "loop":
            self._average_gradients()
        params = [p for p in self._flat_params() if p.grad is not None]
        max_norm = cfg.clip_grad_norm if cfg.clip_grad_norm is not None else math.inf
        if self.data_parallel == "fsdp":  # the norm over every rank's shard
            grad_norm = self.wrapper.clip_grad_norm_(max_norm)
        elif params:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        else:
            grad_norm = torch.zeros(())
        if not self._all_finite(grad_norm):
            what = f"non-finite gradient norm {float(grad_norm)}"
            raise NonFiniteLossError.at(what, self.step + 1, cfg.checkpoint_dir)
        self.optimizer.step()
        sums["grad_norm"] = float(grad_norm)
        sums["lr"] = float(self.optimizer.param_groups[0]["lr"])
        return sums


def train(
    step_fn: Callable[[Any], StepOutput],
    data: Iterable | Callable[[int], Iterator],
    params_to_optimise: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
    config: TrainConfig,
    state: Mapping[str, Stateful] | None = None,
    tracker: Tracker | None = None,
    callbacks: Sequence[Callback] = (),
    generators: Mapping[str, torch.Generator] | None = None,
    wrapper: nn.Module | None = None,
) -> TrainResult:
    """Run (or resume) training to config.max_steps; see Trainer."""
    return Trainer(config, step_fn, params_to_optimise, state, tracker, callbacks, generators, wrapper).fit(
        data
    )
