"""Stages 'phase1' and 'phase2': ReferenceLCM + CoSeC distillation of the teacher (paper section 3)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from cosec.config import from_dict, to_dict
from cosec.distill.config import Phase1Config, Phase2Config
from cosec.distill.recipe import distill_phase
from cosec.models import ChampModel

from .common import read_index, tracked, work_dir
from .params import PhaseStageConfig
from .stage import Stage

if TYPE_CHECKING:
    from .params import Params


Config = PhaseStageConfig


def loss_config(phase: int, stage: PhaseStageConfig, where: str, overrides: dict | None = None):
    """The phase's loss section (with optional ablation overrides) as Phase1Config / Phase2Config."""
    cls = Phase1Config if phase == 1 else Phase2Config
    return from_dict(cls, {**stage.loss, **(overrides or {})}, where)


def distill(
    params: Params,
    phase: int,
    tracker,
    loss_overrides: dict | None = None,
    out: str | None = None,
    init: str | None = None,
    variant: str = "student",
) -> str:
    """Run one distillation phase as params say (with optional loss overrides); returns the out folder."""
    name = f"phase{phase}"
    common, stage = params.common, getattr(params, name)
    loss = loss_config(phase, stage, f"{params.source}:{name}.loss", loss_overrides)
    cfg = dataclasses.replace(params.distill, **{name: loss})
    out = out or stage.out
    init = init if init is not None else stage.init
    inputs = [p for p in (stage.teacher, init, common.index) if p]
    # where Ray runs (cluster address, storage, restarts) is not part of the work folder's key
    keyed = {**to_dict(common), "run": common.run.identity()}
    work = work_dir(
        f"{variant}/{name}", {"distill": to_dict(cfg), "stage": to_dict(stage), "common": keyed}, inputs
    )
    d = stage.data
    result = distill_phase(
        stage.teacher,
        init,
        common.run,
        tracker,
        phase=phase,
        cfg=cfg,
        data_root=common.data_root,
        index=read_index(common),
        work_dir=work,
        batch_size=d.batch_size,
        k_ras=d.k_ras,
        m_ers=d.m_ers,
        window=d.window,
        num_frames=d.num_frames,
    )
    ship = cfg.lora.ship if cfg.student == "lora" else "merged"
    if ship == "merged":  # a plain Champ folder (for LoRA: the adapter merged), loadable everywhere
        student = ChampModel.from_pretrained(stage.teacher)  # fresh fp32 copy of the frozen parts
        student.denoising_unet.load_state_dict(result["state"])
        student.save_pretrained(out, role="student")
    if result["adapter"]:  # beside the merged weights (phase 2 starts from it), or alone
        write_adapter(result["adapter"], out, stage.teacher)
    resumed = f" (resumed from step {result['resumed_from']})" if result["resumed_from"] else ""
    print(f"{name} ({variant}) written to {out}{resumed}")
    return out


def write_adapter(source: str, out: str, teacher: str) -> None:
    """Copy the run's LoRA adapter into ``out``, recording the teacher folder as its base (relative to out)."""
    from cosec.distill import lora

    meta, adapter = lora.load_adapter(source)
    lora.save_adapter(out, adapter, meta["rank"], meta["alpha"], meta["target_modules"], meta["motion_modules"],
                      base_model=teacher)  # fmt: skip


def logged(params: Params, phase: int, loss_overrides: dict | None = None) -> dict:
    name = f"phase{phase}"
    loss = loss_config(phase, getattr(params, name), f"{params.source}:{name}.loss", loss_overrides)
    cfg = dataclasses.replace(params.distill, **{name: loss})
    return {"distill": to_dict(cfg), name: to_dict(getattr(params, name))}


def run_phase1(params: Params) -> None:
    with tracked(params.common, "phase1", logged(params, 1), {"cosec.variant": "student"}) as tracker:
        distill(params, 1, tracker)


def run_phase2(params: Params) -> None:
    with tracked(params.common, "phase2", logged(params, 2), {"cosec.variant": "student"}) as tracker:
        distill(params, 2, tracker)


PHASE1 = Stage("phase1", ("common", "distill", "phase1"), run_phase1)
PHASE2 = Stage("phase2", ("common", "distill", "phase2"), run_phase2)
