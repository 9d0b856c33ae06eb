"""`cosec stage NAME --params FILE`: any pipeline stage by hand, outside DVC (the code the stage scripts run).

`cosec data STAGE` is kept for the data stages (synth, ingest, frames, guidance, index).
"""

from __future__ import annotations

DATA_STAGES = ("synth", "ingest", "frames", "guidance", "index")


def _run(args) -> int:
    from .entry import main
    from .stages import STAGES

    argv = ([args.variant] if getattr(args, "variant", None) else []) + ["--params", args.params]
    return main(STAGES[args.stage], argv + (["--debug"] if args.debug else []))


def register(subparsers) -> None:
    from .stages import STAGES

    p = subparsers.add_parser("stage", help="run one pipeline stage by hand (outside DVC's cache)")
    p.add_argument("stage", choices=list(STAGES))
    p.add_argument(
        "variant",
        nargs="?",
        help="ablation: the rung (referencelcm, eta, eta_cons, eta_cons_tmp); seeds_data, seeds_distill: the seed",
    )
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=_run)
    d = subparsers.add_parser("data", help="data stages: synth, ingest, frames, guidance, index")
    d.add_argument("stage", choices=DATA_STAGES)
    d.add_argument("--params", default="params.yaml")
    d.add_argument("--debug", action="store_true")
    d.set_defaults(func=_run)
