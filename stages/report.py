"""DVC stage 'report': Markdown tables shaped like the paper's Tables 3-5 and the quality-vs-steps plots."""

import argparse
from pathlib import Path

from cosec.eval.report import load_metrics_json, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--metrics", default="reports/metrics.json")
    parser.add_argument("--out", default="reports/summary")
    args = parser.parse_args()
    # the table comes from metrics.json itself: write only the tables and plots, no second copy
    files = write_report(load_metrics_json(Path(args.metrics)), Path(args.out), with_json=False)
    for name, path in files.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
