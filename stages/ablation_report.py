"""Ablation report: reports/ablation/<variant>.json -> reports/ablation.md (Table 4 shape)."""

import argparse
import json
from pathlib import Path

from cosec.eval.report import MetricsTable, ablation_markdown, write_text_atomic

ORDER = ("referencelcm", "eta", "eta_cons", "eta_cons_tmp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", default="reports/ablation")
    parser.add_argument("--out", default="reports/ablation.md")
    args = parser.parse_args()
    table = MetricsTable()
    for variant in ORDER:
        path = Path(args.variants) / f"{variant}.json"
        if not path.is_file():
            raise SystemExit(f"{path}: missing; run `dvc repro ablation/dvc.yaml` (variant {variant})")
        for split, entries in json.loads(path.read_text()).items():
            for key, values in entries.items():
                model, steps = key.rsplit("@", 1)
                table.add(split, model, int(steps), values)
    text = (
        "# Ablation ladder (paper Table 4 shape)\n\nEach row adds to the previous one.\n\n"
        + ablation_markdown(table)
    )
    write_text_atomic(text, Path(args.out))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
