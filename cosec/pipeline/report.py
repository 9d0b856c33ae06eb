"""Stage 'report': Markdown tables shaped like the paper's Tables 1-5 (published rows beside ours), Fig. 5 linked
from the evaluate stage's heat maps, the quality-vs-steps plots; the same tables and figures go to MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cosec.config import to_dict
from cosec.eval.report import load_metrics_json, paper_tables_columns, write_report

from .common import tracked
from .params import ReportConfig
from .stage import Stage

if TYPE_CHECKING:
    from .params import Params


Config = ReportConfig


def run(params: Params) -> None:
    from PIL import Image

    cfg = params.report
    table = load_metrics_json(Path(cfg.metrics))
    figures = {s: Path(cfg.samples) / f"jitter_{s}.png" for s in table.values}
    figures = {s: p for s, p in figures.items() if p.is_file()}
    with tracked(params.common, "report", {"report": to_dict(cfg)}) as tracker:
        # the table comes from metrics.json itself: write only the tables and plots, no second copy
        files = write_report(
            table, Path(cfg.out), with_json=False, benchmarks=cfg.benchmarks, figures=figures
        )
        for split in table.values:
            tracker.log_table(paper_tables_columns(table, split), f"metrics_{split}")
        for path in [*files.values(), *figures.values()]:
            if Path(path).suffix == ".png":
                tracker.log_image(np.asarray(Image.open(path).convert("RGB")), Path(path).stem)
        tracker.log_table({"markdown": Path(files["paper_tables"]).read_text().splitlines()}, "paper_tables")
    for name, path in files.items():
        print(f"{name}: {path}")


STAGE = Stage("report", ("common", "report"), run)
