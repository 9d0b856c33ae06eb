"""The ablation ladder (paper Table 4): stage 'variant' distils and scores one rung, 'report' writes the table.

Each rung adds to the previous one: ReferenceLCM (no regulariser) -> + spatial ETA -> + spatial CoNS
-> + temporal ETA (the full CoSeC-LCD student, reused from the main pipeline's models/student).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cosec.atomic import write_json_atomic
from cosec.config import ConfigError, to_dict
from cosec.eval.report import ABLATION
from cosec.eval.runner import run_evaluation
from cosec.models import ChampModel

from .common import read_index, tracked
from .distill import distill
from .distill import logged as distill_logged
from .params import AblationConfig
from .stage import Stage

if TYPE_CHECKING:
    from .params import Params

_OFF = {"eta_weight": 0.0, "cons_weight": 0.0, "tmp_weight": 0.0}
# (phase-1 loss overrides, phase-2 loss overrides) of each rung, in ABLATION order; None = the main student
LADDER: dict[str, tuple[dict, dict] | None] = {
    "referencelcm": ({"eta_weight": 0.0, "cons_weight": 0.0}, _OFF),
    "eta": ({"cons_weight": 0.0}, _OFF),
    "eta_cons": ({}, _OFF),
    "eta_cons_tmp": None,
}
assert tuple(LADDER) == ABLATION, "the ladder and the report's row order must be the same rungs"


Config = AblationConfig


def _check(variant: str) -> None:
    if variant not in LADDER:
        raise ConfigError(f"unknown ablation variant {variant!r}; one of {list(LADDER)}")


def run_variant(params: Params, variant: str) -> None:
    _check(variant)
    common, cfg = params.common, params.ablation
    if LADDER[variant] is None:
        student_dir = cfg.full_student
    else:
        over1, over2 = LADDER[variant]
        base = Path(cfg.models) / variant
        tags = {"cosec.variant": variant}
        with tracked(
            common, "phase1", distill_logged(params, 1, over1), tags
        ) as run:  # one MLflow run per phase
            p1 = distill(params, 1, run, over1, out=str(base / "phase1"), init="", variant=variant)
        with tracked(common, "phase2", distill_logged(params, 2, over2), tags) as run:
            student_dir = distill(params, 2, run, over2, out=str(base / "student"), init=p1, variant=variant)
    with tracked(common, "ablation", {"ablation": to_dict(cfg)}, {"cosec.variant": variant}) as tracker:
        _score(params, variant, student_dir, tracker)


def _score(params: Params, variant: str, student_dir: str, tracker) -> None:
    common, cfg = params.common, params.ablation
    teacher = ChampModel.from_pretrained(cfg.teacher)
    students = {variant: ChampModel.from_pretrained(student_dir).denoising_unet}
    table, _ = run_evaluation(
        teacher, students, common.data_root, read_index(common), cfg.protocol, progress=common.run.progress
    )
    entries = {
        split: {f"{m}@{s}": v for m, s, v in table.rows(split) if m == variant} for split in table.values
    }
    write_json_atomic(entries, Path(cfg.out) / f"{variant}.json")
    for split, rows in entries.items():
        columns = ("ssim", "psnr", "ssim_person", "psnr_person", "hf_ratio")
        tracker.log_table(
            {"entry": list(rows), **{k: [v[k] for v in rows.values()] for k in columns}}, f"ablation_{split}"
        )


VARIANT = Stage("ablation", ("common", "distill", "phase1", "phase2", "ablation"), run_variant, tuple(LADDER))
