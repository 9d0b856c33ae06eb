"""Stage 'seeds_report': <seeds.out>/<seed>.json of every seed -> reports/seeds.md and reports/seeds.json: mean,
sd and range over seeds of every measure, and each claim's per-seed margins with a verdict (cosec.eval.seeds)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cosec.atomic import write_json_atomic, write_text_atomic
from cosec.eval.report import load_metrics_json
from cosec.eval.seeds import aggregate, seeds_markdown

from .stage import Stage

if TYPE_CHECKING:
    from .params import Params


def run_report(params: Params) -> None:
    from cosec.data.io import DataError

    cfg = params.seeds
    runs = {}
    for seed in cfg.seeds:
        path = Path(cfg.out) / f"{seed}.json"
        if not path.is_file():
            raise DataError(f"{path}: missing; run `dvc repro seeds/dvc.yaml` (seed {seed})")
        runs[seed] = load_metrics_json(path).values  # checked as reports/metrics.json is
    result = aggregate(runs)
    write_json_atomic(result, Path(cfg.table))
    write_text_atomic(seeds_markdown(result), Path(cfg.report))
    print(f"written {cfg.report} and {cfg.table}")


STAGE = Stage("seeds_report", ("seeds",), run_report)
