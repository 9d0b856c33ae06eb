"""The `cosec` console script.

Each command group lives next to the code it drives and exposes
``register(subparsers)``; this module only wires them together, importing a group
lazily so that `cosec --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> module exposing `register(subparsers)`; keep the list short and flat
COMMAND_GROUPS: dict[str, str] = {
    "champ": "cosec.models.cli",
    "animate": "cosec.animate",
    "bench": "cosec.bench",
    "pipeline": "cosec.pipeline.cli",
    "eval": "cosec.eval.cli",
}


def build_parser(groups: dict[str, str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cosec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in (groups or COMMAND_GROUPS).values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # a group not built yet is simply absent from the CLI
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
