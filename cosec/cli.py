"""The `cosec` console script.

Each command group lives next to the code it drives and exposes
``register(subparsers)``; this module only wires them together, importing a group
lazily so that `cosec --help` stays fast. A user error (bad input, configuration, checkpoint,
a full disk) that a command does not report itself ends here as one line and exit code 2;
`cosec --debug ...` or COSEC_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    # its own dest: a subcommand's --debug default would overwrite a shared one
    parser.add_argument(
        "--debug", dest="debug_all", action="store_true", help="show tracebacks of user errors"
    )
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
    if args.debug_all:
        os.environ["COSEC_DEBUG"] = "1"  # the stage entry points (and their subprocesses) read it
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        from cosec.pipeline.entry import debug_requested, error_line, is_user_error

        if debug_requested(getattr(args, "debug", False)) or not is_user_error(err):
            raise
        print(f"cosec {args.command}: error: {error_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
