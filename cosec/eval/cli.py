"""`cosec eval ...`: evaluation tools by hand.

- `cosec eval check-weights DIR`: load every backbone file found in DIR strictly into its network and say,
  per file, `<file>: loaded K/N keys` or what does not match. Exit 0 only when every present file loads.
"""

from __future__ import annotations

import sys
from pathlib import Path


def check_weights(folder: str | Path, out=None) -> int:
    """Print one line per backbone file found in `folder`; 0 when all present files load, 1 otherwise,
    2 when the folder does not exist or holds none of the files."""
    out = out or sys.stdout
    from cosec.eval.backbones import BACKBONE_FILES, check_file

    folder = Path(folder)
    if not folder.is_dir():
        print(f"cosec eval check-weights: {folder} is not a folder", file=sys.stderr)
        return 2
    present = [name for name in BACKBONE_FILES if (folder / name).is_file()]
    if not present:
        print(
            f"cosec eval check-weights: none of the backbone files in {folder} "
            f"(looked for {', '.join(BACKBONE_FILES)})",
            file=sys.stderr,
        )
        return 2
    import torch

    torch.set_num_threads(1)  # loading only: building the networks needs no intra-op threads
    failed = 0
    for name in BACKBONE_FILES:
        if name not in present:
            print(f"{name}: not in {folder}", file=out)
            continue
        try:
            match = check_file(folder / name)
        except ValueError as err:
            failed += 1
            text = " ".join(str(err).split()).removeprefix(f"{folder / name}: ")
            print(f"{name}: REJECTED, {text}", file=out)
            continue
        if not match.ok:
            failed += 1
        print(
            f"{name}: {match.describe()}" if match.ok else f"{name}: REJECTED, {match.describe()}", file=out
        )
    if failed:
        print(
            f"cosec eval check-weights: {failed} of {len(present)} files in {folder} do not load",
            file=sys.stderr,
        )
        return 1
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluation tools: check-weights")
    sub = p.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")
    sub.required = True
    c = sub.add_parser(
        "check-weights",
        help="load every backbone weights file in DIR strictly and report, per file, what loads",
    )
    c.add_argument("dir", help="the weights folder (the evaluation's weights_dir)")
    c.set_defaults(func=lambda a: check_weights(a.dir))
