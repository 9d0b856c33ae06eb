"""Stage 'ablation_report': reports/ablation/<variant>.json -> reports/ablation.md: the paper's Table 4 (with the
bootstrap intervals and the published ladder beside ours) and Tables 1/2 completed with ReferenceLCM from the
main run's reports/metrics.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from cosec.atomic import write_text_atomic
from cosec.eval.report import ABLATION, MetricsTable, load_metrics_json, table4_markdown

from .stage import Stage

if TYPE_CHECKING:
    from .params import Params


def run_report(params: Params) -> None:
    """reports/ablation/<variant>.json (+ reports/metrics.json) -> reports/ablation.md (Tables 4 and 1/2)."""
    from cosec.data.io import DataError

    cfg = params.ablation
    table = MetricsTable()
    main = Path(params.report.metrics)
    if not main.is_file():
        raise DataError(f"{main}: missing; run `dvc repro` (the main graph) before the ablation report")
    for split, entries in load_metrics_json(main).values.items():
        for key, values in entries.items():
            model, steps = key.rsplit("@", 1)
            if model in ("teacher", "student"):  # Tables 1/2 take the teacher and the full student from it
                table.add(split, model, int(steps), values)
    for variant in ABLATION:
        path = Path(cfg.out) / f"{variant}.json"
        if not path.is_file():
            raise DataError(f"{path}: missing; run `dvc repro ablation/dvc.yaml` (variant {variant})")
        for split, entries in json.loads(path.read_text()).items():
            for key, values in entries.items():
                model, steps = key.rsplit("@", 1)
                table.add(split, model, int(steps), values)
    text = (
        "# Ablation ladder (paper Table 4 shape)\n\nEach row adds to the previous one; brackets: 95% bootstrap "
        "interval over test videos. Published rows are the paper's (TikTok).\n\n"
        + table4_markdown(table, params.report.benchmarks)
    )
    write_text_atomic(text, Path(cfg.report))
    print(f"written {cfg.report}")


STAGE = Stage("ablation_report", ("ablation", "report"), run_report)
