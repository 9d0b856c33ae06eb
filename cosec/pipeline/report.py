"""Stage 'report': Markdown tables shaped like the paper's Tables 3-4 and the quality-vs-steps plots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cosec.eval.report import load_metrics_json, write_report

from .params import ReportConfig
from .stage import Stage

if TYPE_CHECKING:
    from .params import Params


Config = ReportConfig


def run(params: Params) -> None:
    cfg = params.report
    # the table comes from metrics.json itself: write only the tables and plots, no second copy
    files = write_report(load_metrics_json(Path(cfg.metrics)), Path(cfg.out), with_json=False)
    for name, path in files.items():
        print(f"{name}: {path}")


STAGE = Stage("report", ("report",), run)
