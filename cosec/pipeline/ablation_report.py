"""Stage 'ablation_report': reports/ablation/<variant>.json -> reports/ablation.md (the paper's Table 4 shape)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from cosec.atomic import write_text_atomic
from cosec.eval.report import ABLATION, MetricsTable, ablation_markdown

from .stage import Stage

if TYPE_CHECKING:
    from .params import Params


def run_report(params: Params) -> None:
    """reports/ablation/<variant>.json -> reports/ablation.md (Table 4 shape)."""
    from cosec.data.io import DataError

    cfg = params.ablation
    table = MetricsTable()
    for variant in ABLATION:
        path = Path(cfg.out) / f"{variant}.json"
        if not path.is_file():
            raise DataError(f"{path}: missing; run `dvc repro ablation/dvc.yaml` (variant {variant})")
        for split, entries in json.loads(path.read_text()).items():
            for key, values in entries.items():
                model, steps = key.rsplit("@", 1)
                table.add(split, model, int(steps), values)
    text = (
        "# Ablation ladder (paper Table 4 shape)\n\nEach row adds to the previous one.\n\n"
        + ablation_markdown(table)
    )
    write_text_atomic(text, Path(cfg.report))
    print(f"written {cfg.report}")


STAGE = Stage("ablation_report", ("ablation",), run_report)
