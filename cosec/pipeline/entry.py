"""The entry point of every stage script: parse params once, run the stage, one clean line for a user error."""

from __future__ import annotations

import argparse
import errno
import os
import sys

from cosec.config import ConfigError, read_yaml

from .params import load_params
from .stage import Stage

DEBUG_ENV = "COSEC_DEBUG"
# Errors that mean bad input, configuration or a training run that cannot go on: a message, not a
# traceback. Looked up where loaded (a stage that never imported a module cannot raise its errors),
# so this module adds no dependency to any stage.
_USER_ERRORS = {
    "cosec.data.io": "DataError",
    "cosec.body.base": "BodyParamError",
    "cosec.models.checkpoint": "ChampCheckpointError",
    "cosec.train.loop": "NonFiniteLossError",
    "cosec.train.checkpoint": "TrainCheckpointError",
    "cosec.animate.inputs": "AnimateError",
    "cosec.eval.state_dicts": "WeightsRejected",
}
# what to do after an OSError that is not about one bad input file
_OS_HINTS = {
    errno.ENOSPC: "free disk space and rerun (finished outputs are kept)",
    errno.EDQUOT: "free disk space and rerun (finished outputs are kept)",
    errno.EACCES: "check the permissions of the file or folder",
    errno.EROFS: "the file system is read-only; write elsewhere",
}


def is_user_error(err: BaseException) -> bool:
    if isinstance(err, (ConfigError, OSError)):  # OSError: a missing file, a full disk, no permission
        return True
    for module, name in _USER_ERRORS.items():
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(err, cls):
            return True
    return False


def debug_requested(flag: bool = False) -> bool:
    """--debug given, or COSEC_DEBUG set to anything but '' or '0'."""
    return flag or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def error_line(err: BaseException) -> str:
    """The message of a user error as the user sees it: the file first for an OSError, and what to do."""
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        hint = _OS_HINTS.get(err.errno)
        return f"{where}{err.strerror}" + (f"; {hint}" if hint else "")
    return str(err).strip() or type(err).__name__


def parser(stage: Stage) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"stages/{stage.name}.py", description=f"pipeline stage '{stage.name}'")
    if stage.takes_variant:
        p.add_argument("variant", metavar=stage.variant_arg, choices=stage.variants or None)
    p.add_argument("--params", default="params.yaml", help="params YAML file")
    p.add_argument("--debug", action="store_true", help=f"show tracebacks (or set {DEBUG_ENV}=1)")
    return p


def run_stage(stage: Stage, params_path: str, variant: str | None = None) -> None:
    """Load the params file, then run ``stage`` on the sections it declares (raises on failure)."""
    params = load_params(params_path)
    missing = [s for s in stage.sections if s not in read_yaml(params_path)]
    if missing:  # a deleted or renamed section would otherwise run on the built-in defaults
        raise ConfigError(
            f"{params_path}: missing section(s) {missing} that stage '{stage.name}' reads; "
            "copy them from the project's params.yaml"
        )
    if "common" in stage.sections and params.common.threads:
        import torch

        torch.set_num_threads(params.common.threads)
    view = params.only(stage.sections)
    if stage.takes_variant:
        stage.run(view, variant)
    else:
        stage.run(view)


def main(stage: Stage, argv: list[str] | None = None) -> int:
    """``stages/<stage>.py [VARIANT] [--params FILE]``: 0 when done, 1 with one line for a user error,
    130 on Ctrl-C, 143 on SIGTERM (the stage's MLflow run is then KILLED)."""
    args = parser(stage).parse_args(argv)
    debug = debug_requested(args.debug)
    try:
        run_stage(stage, args.params, getattr(args, "variant", None))
    except KeyboardInterrupt:
        print(f"{stage.name}: interrupted", file=sys.stderr)
        return 130
    except BaseException as err:
        if type(err).__name__ == "StageKilled":
            print(f"{stage.name}: {err}", file=sys.stderr)
            return 143
        if debug or not is_user_error(err):
            raise
        line = error_line(err).removeprefix(f"{stage.name}: ")  # a DataError starts with the stage name too
        print(f"{stage.name}: error: {line}", file=sys.stderr)
        return 1
    return 0
