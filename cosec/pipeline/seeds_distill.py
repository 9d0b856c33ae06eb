"""Stage 'seeds_distill' of the seeds study (seeds/dvc.yaml), for one seed s of the `seeds` section: the main
graph's teacher distilled (phase 1, then phase 2: the main graph's settings) with distill.seed = s on seed s's
data (stage 'seeds_data'), then teacher and student scored on that data's test splits with the evaluate
protocol -> <seeds.out>/<s>.json (reports/metrics.json's shape).

The teacher is the distillation's input, as in the paper: it is not retrained per seed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from cosec.config import to_dict

from .common import read_index, tracked
from .stage import Stage

if TYPE_CHECKING:
    from cosec.eval.config import EvalProtocol

    from .params import Params


def seed_params(params: Params, seed: int) -> Params:
    """The distillation and evaluation params of one seed: its data, distill.seed, the study's teacher, and
    phase outputs under <seeds.models>/<seed>."""
    cfg = params.seeds
    root, models = cfg.data_root(seed), Path(cfg.models) / str(seed)
    common = dataclasses.replace(
        params.common, data_root=str(root / "prepared"), index=str(root / "index.parquet")
    )
    phase1 = dataclasses.replace(params.phase1, teacher=cfg.teacher, out=str(models / "phase1"))
    phase2 = dataclasses.replace(
        params.phase2, teacher=cfg.teacher, init=phase1.out, out=str(models / "student")
    )
    return dataclasses.replace(
        params,
        common=common,
        distill=dataclasses.replace(params.distill, seed=seed),
        phase1=phase1,
        phase2=phase2,
    )


def study_protocol(protocol: EvalProtocol) -> EvalProtocol:
    """The evaluate protocol, with any teacher / student step count a claim compares added (teacher@1 for
    'student@1 > teacher@1'), so that every claim is measured on every seed."""
    from cosec.eval.seeds import claim_entries

    need = claim_entries()
    return dataclasses.replace(
        protocol,
        teacher_steps=sorted(set(protocol.teacher_steps) | need.get("teacher", set())),
        student_steps=sorted(set(protocol.student_steps) | need.get("student", set())),
    )


def run(params: Params, variant: str) -> None:
    from cosec.eval.report import write_metrics_json

    from .distill import distill
    from .distill import logged as distill_logged

    seed = params.seeds.seed(variant)
    p = seed_params(params, seed)
    tags = {"cosec.variant": f"seed{seed}"}
    with tracked(p.common, "phase1", distill_logged(p, 1), tags) as run:  # one MLflow run per phase
        distill(p, 1, run, variant=f"seed{seed}")
    with tracked(p.common, "phase2", distill_logged(p, 2), tags) as run:
        student = distill(p, 2, run, variant=f"seed{seed}")
    protocol = study_protocol(p.evaluate.protocol)
    logged = {"seeds": to_dict(p.seeds), "protocol": to_dict(protocol)}
    with tracked(p.common, "seeds", logged, tags) as tracker:
        table = score(p, student, protocol)
        path = write_metrics_json(table, Path(p.seeds.out) / f"{seed}.json")
        for split in table.values:
            rows = table.values[split]
            columns = ("ssim_person", "psnr_person", "hf_ratio", "ab_error_person", "jitter")
            tracker.log_table(
                {"entry": list(rows), **{k: [v.get(k) for v in rows.values()] for k in columns}},
                f"seeds_{split}",
            )
    print(f"seed {seed}: metrics written to {path}")


def score(params: Params, student_dir: str, protocol: EvalProtocol):
    """Teacher (the study's) and student on this seed's test splits: the MetricsTable."""
    from cosec.distill.lora import load_student
    from cosec.eval.runner import run_evaluation
    from cosec.models import ChampModel

    common = params.common
    teacher = ChampModel.from_pretrained(params.seeds.teacher)
    students = {"student": load_student(student_dir).denoising_unet}
    table, _ = run_evaluation(
        teacher, students, common.data_root, read_index(common), protocol, progress=common.run.progress
    )
    return table


STAGE = Stage(
    "seeds_distill",
    ("common", "distill", "phase1", "phase2", "evaluate", "seeds"),
    run,
    variant_arg="seed",
)
