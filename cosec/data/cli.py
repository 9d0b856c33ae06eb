"""`cosec data ...`: the data stages by hand (the same functions the stages/ scripts call)."""

from __future__ import annotations

import argparse

from cosec.data.config import (
    FramesConfig,
    GuidanceConfig,
    IndexConfig,
    IngestConfig,
    SynthConfig,
    load_section,
)

STAGES = {
    "synth": ("synth", SynthConfig),
    "ingest": ("ingest", IngestConfig),
    "frames": ("frames", FramesConfig),
    "guidance": ("guidance", GuidanceConfig),
    "index": ("index", IndexConfig),
}


def run_stage(name: str, params: str) -> int:
    """Parse the stage's params section and run it; returns an exit code."""
    import torch

    section, cls = STAGES[name]
    cfg = load_section(params, section, cls)
    # Data stages work on small tensors: intra-op threads only add contention (30x slower on 2 cores).
    torch.set_num_threads(1)
    if name == "synth":
        from cosec.synth.dataset import write_synthetic_data

        write_synthetic_data(cfg)
    elif name == "ingest":
        from cosec.data.ingest import run_ingest

        run_ingest(cfg)
    elif name == "frames":
        from cosec.data.frames import run_frames

        run_frames(cfg)
    elif name == "guidance":
        from cosec.data.guidance import run_guidance

        run_guidance(cfg)
    else:
        from cosec.data.index import build_index

        build_index(cfg)
    return 0


def stage_main(name: str, argv: list[str] | None = None) -> int:
    """Entry point of a stages/<name>.py script: `--params params.yaml`."""
    import sys

    from cosec.data.io import DataError

    parser = argparse.ArgumentParser(prog=f"stages/{name}.py", description=f"data stage '{name}'")
    parser.add_argument(
        "--params", default="params.yaml", help=f"params YAML file (section '{STAGES[name][0]}')"
    )
    args = parser.parse_args(argv)
    try:
        return run_stage(name, args.params)
    except DataError as err:
        print(str(err), file=sys.stderr)
        return 1


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="data stages: synth, ingest, frames, guidance, index")
    p.add_argument("stage", choices=sorted(STAGES))
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=lambda a: stage_main(a.stage, ["--params", a.params]))
