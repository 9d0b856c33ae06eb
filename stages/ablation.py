"""Ablation ladder (paper Table 4), one variant per call: distil phase 1 and phase 2 with the variant's
regularisers, then score its student on every test split -> reports/ablation/<variant>.json.

    python stages/ablation.py referencelcm|eta|eta_cons|eta_cons_tmp --params params.yaml

Each row adds to the previous one: ReferenceLCM (no regulariser) -> + spatial ETA -> + spatial CoNS
-> + temporal ETA (the full CoSeC-LCD student, reused from the main pipeline's models/student).
"""

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from _common import read_index, setup, tracked
from distill_phase import distill
from evaluate import EvaluateStage

from cosec.config import load_section, to_dict
from cosec.eval.report import write_json_atomic
from cosec.eval.runner import EvalProtocol, run_evaluation
from cosec.models import ChampModel

# (phase-1 loss overrides, phase-2 loss overrides) of each rung; None = take the params value as is
LADDER = {
    "referencelcm": (
        {"eta_weight": 0.0, "cons_weight": 0.0},
        {"eta_weight": 0.0, "cons_weight": 0.0, "tmp_weight": 0.0},
    ),
    "eta": ({"cons_weight": 0.0}, {"eta_weight": 0.0, "cons_weight": 0.0, "tmp_weight": 0.0}),
    "eta_cons": ({}, {"eta_weight": 0.0, "cons_weight": 0.0, "tmp_weight": 0.0}),
    "eta_cons_tmp": None,
}


@dataclass
class AblationStage:
    out: str = "reports/ablation"
    models: str = "models/ablation"
    full_student: str = "models/student"  # the eta_cons_tmp rung is the main pipeline's student
    protocol: EvalProtocol = field(
        default_factory=lambda: EvalProtocol(teacher_steps=[], teacher_nocfg_steps=[], student_steps=[2])
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("variant", choices=sorted(LADDER))
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    common = setup(args.params)
    cfg = load_section(args.params, "ablation", AblationStage)
    teacher_dir = load_section(args.params, "evaluate", EvaluateStage).teacher
    if LADDER[args.variant] is None:
        student_dir = cfg.full_student
    else:
        over1, over2 = LADDER[args.variant]
        base = Path(cfg.models) / args.variant
        p1 = distill(1, args.params, over1, out=str(base / "phase1"), init="", variant=args.variant)
        student_dir = distill(2, args.params, over2, out=str(base / "student"), init=p1, variant=args.variant)
    with tracked(common, "ablation", {"ablation": to_dict(cfg)}, {"cosec.variant": args.variant}) as run:
        teacher = ChampModel.from_pretrained(teacher_dir)
        students = {args.variant: ChampModel.from_pretrained(student_dir).denoising_unet}
        table, _ = run_evaluation(
            teacher,
            students,
            common.data_root,
            read_index(common),
            cfg.protocol,
            progress=common.run.progress,
        )
        entries = {
            split: {f"{m}@{s}": v for m, s, v in table.rows(split) if m == args.variant}
            for split in table.values
        }
        write_json_atomic(entries, Path(cfg.out) / f"{args.variant}.json")
        for split, rows in entries.items():
            run.log_table(
                {
                    "entry": list(rows),
                    **{
                        k: [v[k] for v in rows.values()]
                        for k in ("ssim", "psnr", "ssim_person", "psnr_person", "hf_ratio")
                    },
                },
                f"ablation_{split}",
            )


if __name__ == "__main__":
    main()
