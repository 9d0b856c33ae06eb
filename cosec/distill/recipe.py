"""Distillation phases on the prepared data, run through the shared training loop.

The data helpers' items (Phase1Dataset / Phase2Dataset) become prepare_batch groups here; the loop
supplies accumulation, clipping, checkpoints and resume; the EMA target follows every optimiser step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from cosec.data.datasets import Phase1Dataset, Phase2Dataset
from cosec.models import ChampModel
from cosec.train.loop import TrainConfig, train
from cosec.train.tracking import NullTracker, Tracker

from .batch import prepare_batch
from .config import DistillConfig
from .referencelcm import ReferenceLCD


def phase1_group(item: dict, sources: pd.Series) -> dict:
    """A Phase1Dataset item -> a prepare_batch group (RAS references first, then ERS)."""
    ras, ers = item["ras_rows"].tolist(), item["ers_rows"].tolist()
    rows = ras + ers
    return {"video": sources.at[int(item["row"])], "target": item["pixel_values"], "guidance": item["guidance"],
            "refs": list(item["ras_refs"]) + list(item["ers_refs"]), "ref_keys": rows,
            "ref_videos": [sources.at[r] for r in rows], "num_ras": len(ras)}


def phase2_group(item: dict, sources: pd.Series) -> dict:
    """A Phase2Dataset item -> a clip group with its first pair of RAS references."""
    rows = item["ras_rows"][0].tolist()
    frames = item["rows"].tolist()
    return {"video": sources.at[frames[0]], "target": item["pixel_values"], "guidance": item["guidance"],
            "target_keys": frames, "refs": list(item["ras_refs"][0]), "ref_keys": rows,
            "ref_videos": [sources.at[r] for r in rows], "num_ras": len(rows)}


class _GroupStream:
    """Resumable stream of batches of groups: batch i depends only on (seed, i)."""

    def __init__(self, model: ChampModel, dataset, to_group, batch_size: int, seed: int):
        self.model, self.dataset, self.to_group = model, dataset, to_group
        self.batch_size, self.seed = batch_size, seed

    def __call__(self, start_step: int):
        step = start_step
        while True:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            idx = torch.randint(0, len(self.dataset), (self.batch_size,), generator=g).tolist()
            groups: Sequence[dict] = [self.to_group(self.dataset[i]) for i in idx]
            yield prepare_batch(self.model, groups)
            step += 1


def run_phase(phase: int, teacher: ChampModel, cfg: DistillConfig, data_root, index: pd.DataFrame,
              work_dir: str | Path, batch_size: int, train_config: dict, k_ras: int = 2, m_ers: int = 2,
              window: int = 8, num_frames: int = 8, student_init: dict | None = None,
              tracker: Tracker | None = None) -> ReferenceLCD:
    """Distil phase 1 (frames) or 2 (clips) and return the ReferenceLCD (student = the model to ship)."""
    lcd = ReferenceLCD(teacher, cfg, student_init=student_init)
    pcfg = cfg.phase(phase)
    res = teacher.config.resolution
    sources = index["source_video"]
    if phase == 1:
        data = Phase1Dataset(data_root, index, length=10**6, k_ras=k_ras, m_ers=m_ers, window=window,
                             split="train", seed=cfg.seed, resolution=res)
        stream = _GroupStream(teacher, data, lambda it: phase1_group(it, sources), batch_size, cfg.seed)
        step = lcd.phase1_step
    else:
        data = Phase2Dataset(data_root, index, length=10**6, num_frames=num_frames, split="train", seed=cfg.seed,
                             resolution=res)
        stream = _GroupStream(teacher, data, lambda it: phase2_group(it, sources), batch_size, cfg.seed)
        step = lcd.phase2_step

    def step_fn(batch):
        losses = step(batch)
        return losses["loss"], {k: float(v.detach()) for k, v in losses.items() if k != "loss"}

    if pcfg.steps > 0:
        config = TrainConfig(max_steps=pcfg.steps, out_dir=str(work_dir), lr=cfg.lr, weight_decay=cfg.weight_decay,
                             betas=cfg.adam_betas, clip_grad_norm=cfg.max_grad_norm, seed=cfg.seed,
                             desc=f"phase{phase}", **train_config)
        train(step_fn, stream, lcd.trainable_parameters(phase), config,
              state={"student": lcd.student, "target": lcd.target}, tracker=tracker or NullTracker(),
              callbacks=[lambda _step, _logs: lcd.update_ema()])
    return lcd
