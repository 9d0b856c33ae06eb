"""Stage 'evaluate': teacher @ N DDIM steps (CFG and none) vs students @ N LCM steps on every test split
-> reports/metrics.json (+ the reasons for nulls), the sample grids and the Fig. 5 jitter heat maps (the stage
that holds the generated frames draws them: reports/samples/jitter_<split>.png)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cosec.config import to_dict
from cosec.eval.report import paper_tables_columns, save_jitter_heatmap, save_sample_grid, write_metrics_json
from cosec.eval.runner import run_evaluation
from cosec.models import ChampModel

from .common import read_index, tracked
from .params import EvaluateConfig
from .stage import Stage

if TYPE_CHECKING:
    from .params import Params

Config = EvaluateConfig


def run(params: Params) -> None:
    with tracked(params.common, "evaluate", {"evaluate": to_dict(params.evaluate)}) as tracker:
        _evaluate(params, tracker)
    print(f"metrics written to {params.evaluate.out}/metrics.json")


def load_students(paths: dict[str, str]) -> dict:
    """Each student's D-UNet from its folder: a Champ folder (full, or LoRA merged) or a LoRA adapter alone
    (merged into the base it records)."""
    from cosec.distill.lora import load_student

    return {name: load_student(path).denoising_unet for name, path in paths.items()}


def _evaluate(params: Params, tracker) -> None:
    from PIL import Image

    common, cfg = params.common, params.evaluate
    teacher = ChampModel.from_pretrained(cfg.teacher)
    students = load_students(cfg.students)
    clips: dict[str, dict[str, np.ndarray]] = {}
    table, grids = run_evaluation(
        teacher,
        students,
        common.data_root,
        read_index(common),
        cfg.protocol,
        progress=common.run.progress,
        clips=clips,
    )
    out = Path(cfg.out)
    write_metrics_json(table, out / "metrics.json")
    for split, rows in grids.items():
        path = save_sample_grid(rows, out / "samples" / f"{split}.png", columns=tuple(rows[0]))
        tracker.log_image(np.asarray(Image.open(path)), f"samples_{split}")
    for split, videos in clips.items():
        if len(videos) > 1 and len(videos["ground truth"]) > 1:  # Fig. 5 needs a model and 2 frames
            path = save_jitter_heatmap(videos, out / "samples" / f"jitter_{split}.png")
            tracker.log_image(np.asarray(Image.open(path).convert("RGB")), f"jitter_{split}")
    for split in table.values:
        tracker.log_table(paper_tables_columns(table, split), f"metrics_{split}")


STAGE = Stage("evaluate", ("common", "evaluate"), run)
