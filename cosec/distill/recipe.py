"""Distillation phases on the prepared data, run through the shared training loop.

The data helpers' items (Phase1Dataset / Phase2Dataset) become prepare_batch groups here; the loop
supplies accumulation, clipping, checkpoints and resume; the EMA target follows every optimiser step.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import torch

from cosec.atomic import atomic_write
from cosec.data.datasets import Phase1Dataset, Phase2Dataset
from cosec.models import ChampModel
from cosec.train import distributed
from cosec.train.batches import batch_stream
from cosec.train.config import RunConfig
from cosec.train.loop import TrainConfig, train
from cosec.train.tracking import NullTracker, Tracker

from .batch import prepare_batch
from .config import DistillConfig
from .referencelcm import ReferenceLCM


def phase1_group(item: dict, sources: pd.Series) -> dict:
    """A Phase1Dataset item -> a prepare_batch group (RAS references first, then ERS)."""
    ras, ers = item["ras_rows"].tolist(), item["ers_rows"].tolist()
    rows = ras + ers
    return {
        "video": sources.at[int(item["row"])],
        "target": item["pixel_values"],
        "guidance": item["guidance"],
        "refs": list(item["ras_refs"]) + list(item["ers_refs"]),
        "ref_keys": rows,
        "ref_videos": [sources.at[r] for r in rows],
        "num_ras": len(ras),
    }


def phase2_group(item: dict, sources: pd.Series) -> dict:
    """A Phase2Dataset item -> a clip group with its first pair of RAS references."""
    rows = item["ras_rows"][0].tolist()
    frames = item["rows"].tolist()
    return {
        "video": sources.at[frames[0]],
        "target": item["pixel_values"],
        "guidance": item["guidance"],
        "target_keys": frames,
        "refs": list(item["ras_refs"][0]),
        "ref_keys": rows,
        "ref_videos": [sources.at[r] for r in rows],
        "num_ras": len(rows),
    }


def _group_stream(model: ChampModel, dataset, to_group, batch_size: int, seed: int):
    """Resumable stream of DistillBatches: batch i depends only on (seed, i), as batch_stream's."""
    return batch_stream(
        dataset,
        batch_size,
        seed,
        collate=lambda items: prepare_batch(model, [to_group(item) for item in items]),
    )


def run_phase(
    phase: int,
    teacher: ChampModel,
    cfg: DistillConfig,
    data_root,
    index: pd.DataFrame,
    work_dir: str | Path,
    batch_size: int,
    train_config: dict,
    k_ras: int = 2,
    m_ers: int = 2,
    window: int = 8,
    num_frames: int = 8,
    student_init: dict | None = None,
    tracker: Tracker | None = None,
    data_parallel: str = "ddp",
) -> ReferenceLCM:
    """Distil phase 1 (frames) or 2 (clips) and return the ReferenceLCM (``lcd.shipped()`` = the model to save;
    ``lcd.train_result``: the loop's TrainResult, None for a phase of 0 steps).

    On several ranks the student trains inside ``data_parallel``'s wrapper (common.run.data_parallel: DDP,
    FSDP for a full-weight student (a LoRA student's adapters are small: DDP), or the loop's averaging)."""
    teacher = teacher.to(distributed.device())
    lcd = ReferenceLCM(teacher, cfg, student_init=student_init)
    lcd.train_result = None
    pcfg = cfg.phase(phase)
    data_seed = distributed.rank_seed(cfg.seed)  # each Ray worker draws its own groups
    res = teacher.config.resolution
    sources = index["source_video"]
    if phase == 1:
        data = Phase1Dataset(
            data_root,
            index,
            length=10**6,
            k_ras=k_ras,
            m_ers=m_ers,
            window=window,
            split="train",
            seed=cfg.seed,
            resolution=res,
        )
        stream = _group_stream(teacher, data, lambda it: phase1_group(it, sources), batch_size, data_seed)
        step = lcd.phase1_step
    else:
        data = Phase2Dataset(
            data_root,
            index,
            length=10**6,
            num_frames=num_frames,
            split="train",
            seed=cfg.seed,
            resolution=res,
        )
        stream = _group_stream(teacher, data, lambda it: phase2_group(it, sources), batch_size, data_seed)
        step = lcd.phase2_step

    def step_fn(batch):
        losses = step(batch)
        return losses["loss"], {k: float(v.detach()) for k, v in losses.items() if k != "loss"}

    if pcfg.steps > 0:
        params = lcd.trainable_parameters(phase)  # before wrapping: the wrappers register what trains
        strategy = "ddp" if lcd.is_lora and data_parallel == "fsdp" else data_parallel
        wrapped = distributed.data_parallel(lcd.student, strategy)  # every student forward uses all weights
        wrapped = None if wrapped is lcd.student else wrapped  # one worker, or the loop's averaging
        lcd.use_wrapper(wrapped)

        def update_ema(_step, _logs):
            with distributed.full_weights(wrapped):  # FSDP: the student's full weights, on every rank
                lcd.update_ema()

        config = TrainConfig(
            max_steps=pcfg.steps,
            out_dir=str(work_dir),
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            betas=cfg.adam_betas,
            clip_grad_norm=cfg.max_grad_norm,
            seed=cfg.seed,
            desc=f"phase{phase}",
            optimizer=cfg.optimizer,
            **train_config,
        )
        lcd.train_result = train(
            step_fn,
            stream,
            params,
            config,
            state=lcd.train_state(),
            tracker=tracker or NullTracker(),
            callbacks=[update_ema],
            generators={"referencelcm": lcd.generator},  # draws the step's timesteps and noise
            wrapper=wrapped,
        )
        if distributed.sync_mode(wrapped) == "fsdp":  # hand back a plain student holding the full weights
            with distributed.full_weights(wrapped):
                full = {k: v.detach().clone() for k, v in lcd.student.state_dict().items()}
            lcd.student = copy.deepcopy(lcd.target)
            lcd.student.load_state_dict(full)
        lcd.use_wrapper(None)
    return lcd


def distill_phase(
    teacher_dir: str | Path,
    init_dir: str | Path | None,
    run: RunConfig,
    tracker: Tracker | None = None,
    **kwargs,
) -> dict:
    """run_phase in this process or on Ray Train workers (as ``run`` says).

    Returns ``{"state": the shipped (for LoRA: merged) D-UNet state dict, "adapter": the LoRA adapter folder
    or None, "resumed_from": the step the last attempt started from (> 0 after a resume or a restart)}``.
    The teacher and the phase-2 starting student (a model folder, or a LoRA adapter folder) are loaded by
    every worker. ``kwargs`` are run_phase's (phase, cfg, data_root, index, work_dir, batch_size, ...);
    ``train_config`` comes from ``run``.
    """
    work = Path(kwargs["work_dir"]).resolve()
    payload = {
        "teacher": str(Path(teacher_dir).resolve()),
        "init": str(Path(init_dir).resolve()) if init_dir else None,
        # absolute paths: Ray workers run in their own working folder (on a cluster: shared storage)
        "kwargs": {
            **kwargs,
            "data_root": str(Path(kwargs["data_root"]).resolve()),
            "work_dir": str(work),
            "train_config": run.loop_settings(),
            "data_parallel": run.data_parallel,
        },
    }
    # the Ray run's name is the work folder's: unique in a storage_path shared by many runs
    result = distributed.launch(_phase_worker, payload, run, work, work.name, tracker)
    state = torch.load(result["student"], map_location="cpu", weights_only=True)
    return {
        "state": state,
        "adapter": result.get("adapter"),
        "resumed_from": int(result.get("resumed_from", 0)),
    }


def _require(path: str | None, what: str) -> None:
    """A worker on another machine sees only what shared storage gives it: say so instead of a bare OSError."""
    if path is not None and not Path(path).exists():
        import socket

        raise FileNotFoundError(
            f"{what} {path} does not exist on node {socket.gethostname()}: on a Ray cluster of several "
            "machines every input and the run folder must be on storage mounted at the same path on every node"
        )


def student_init_state(init: str, teacher: str, cfg: DistillConfig) -> dict[str, torch.Tensor]:
    """The phase-2 starting student from ``init`` (phase 1's output): a LoRA student starts from phase 1's
    adapter; a full student from phase 1's D-UNet (a merged folder, or an adapter merged into the teacher)."""
    from . import lora

    has_adapter = lora.is_adapter_folder(init)
    if cfg.student == "lora":
        if not has_adapter:
            raise ValueError(
                f"{init}: a student: lora phase 2 starts from phase 1's LoRA adapter ({lora.ADAPTER_CONFIG}), "
                "this folder has none: run phase 1 with distill.student: lora, or phase 2 with student: full"
            )
        return lora.load_adapter(init)[1]
    from cosec.models.checkpoint import CONFIG_NAME

    if has_adapter and not (Path(init) / CONFIG_NAME).is_file():  # adapter only: merge into the teacher
        return lora.load_lora_student(init, base_dir=teacher).denoising_unet.state_dict()
    return ChampModel.from_pretrained(init).denoising_unet.state_dict()


def _phase_worker(payload: dict, tracker: Tracker | None) -> dict:
    kw = payload["kwargs"]
    _require(payload["teacher"], "teacher folder")
    _require(payload["init"], "phase-2 starting folder")
    _require(kw["data_root"], "data root")
    teacher = ChampModel.from_pretrained(payload["teacher"])
    init = student_init_state(payload["init"], payload["teacher"], kw["cfg"]) if payload["init"] else None
    lcd = run_phase(teacher=teacher, student_init=init, tracker=tracker, **kw)
    work = Path(kw["work_dir"])
    out = work / "student.pt"
    result = {
        "student": str(out),
        "resumed_from": lcd.train_result.resumed_from if lcd.train_result else 0,
        "data_parallel": lcd.train_result.data_parallel if lcd.train_result else "none",
        "adapter": str(work / "adapter") if lcd.is_lora else None,
    }
    if distributed.rank() == 0:
        state = {k: v.cpu() for k, v in lcd.shipped().state_dict().items()}
        atomic_write(out, lambda tmp: torch.save(state, tmp))
        if lcd.is_lora:
            lcd.save_adapter(result["adapter"], base_model=payload["teacher"])
    return result
