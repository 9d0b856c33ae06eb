"""DVC stage 'evaluate': teacher @ N DDIM steps (CFG 3.5 and none) vs student @ N LCM steps on every
test split -> reports/metrics.json (+ notes) and the sample arrays the report stage draws."""

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _common import read_index, setup, tracked
from PIL import Image

from cosec.config import load_section, to_dict
from cosec.eval.report import save_sample_grid, write_metrics_json
from cosec.eval.runner import EvalProtocol, run_evaluation
from cosec.models import ChampModel


@dataclass
class EvaluateStage:
    teacher: str = "models/teacher"
    students: dict[str, str] = field(default_factory=lambda: {"student": "models/student"})
    out: str = "reports"
    protocol: EvalProtocol = field(default_factory=EvalProtocol)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    common = setup(args.params)
    cfg = load_section(args.params, "evaluate", EvaluateStage)
    with tracked(common, "evaluate", {"evaluate": to_dict(cfg)}) as run:
        teacher = ChampModel.from_pretrained(cfg.teacher)
        students = {
            name: ChampModel.from_pretrained(path).denoising_unet for name, path in cfg.students.items()
        }
        table, grids = run_evaluation(
            teacher,
            students,
            common.data_root,
            read_index(common),
            cfg.protocol,
            progress=common.run.progress,
        )
        out = Path(cfg.out)
        write_metrics_json(table, out / "metrics.json")
        for split, rows in grids.items():
            path = save_sample_grid(rows, out / "samples" / f"{split}.png", columns=tuple(rows[0]))
            run.log_image(np.asarray(Image.open(path)), f"samples_{split}")
        for split in table.values:
            run.log_table(
                {
                    "entry": [f"{m}@{s}" for m, s, _ in table.rows(split)],
                    **{
                        k: [v.get(k) for _, _, v in table.rows(split)]
                        for k in ("ssim", "psnr", "l1", "ssim_person", "psnr_person", "hf_ratio", "jitter")
                    },
                },
                f"metrics_{split}",
            )
    print(f"metrics written to {cfg.out}/metrics.json")


if __name__ == "__main__":
    main()
