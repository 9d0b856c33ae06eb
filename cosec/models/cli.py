"""`cosec champ ...`: check Champ manifests, import a released Champ folder."""

from __future__ import annotations

import argparse
import sys
import warnings

import torch

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def register(subparsers: argparse._SubParsersAction) -> None:
    champ = subparsers.add_parser("champ", help="Champ checkpoints: manifest check, import")
    sub = champ.add_subparsers(dest="champ_command", metavar="SUBCOMMAND")
    sub.required = True

    check = sub.add_parser("check-manifest", help="check Champ key/shape manifests against the sd15 model")
    check.add_argument("directory", help="folder of <file>.json manifests (e.g. shared/champ_manifest)")
    check.add_argument("--config", default="sd15", help="model size to check against (default sd15)")
    check.set_defaults(func=_check_manifest)

    imp = sub.add_parser("import", help="load a released Champ folder and save it as a cosec checkpoint")
    imp.add_argument("source", help="Champ folder: 7 .pth files, image_encoder/, sd-vae-ft-mse/, unet/")
    imp.add_argument("destination", help="output folder (config.json + model.safetensors)")
    imp.add_argument("--config", default="sd15")
    imp.add_argument("--dtype", choices=sorted(_DTYPES), default="fp32", help="dtype to store (default fp32)")
    imp.add_argument(
        "--motion",
        choices=["yes", "no", "auto"],
        default="yes",
        help="load motion_module.pth: yes (default; an error when the folder lacks it), no (image-only "
        "model), auto (when present, with a warning when not)",
    )
    imp.set_defaults(func=_import)


def _check_manifest(args: argparse.Namespace) -> int:
    from .champ_release import ChampCheckpointError, check_manifest

    try:
        results = check_manifest(args.directory, args.config)
    except ChampCheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for r in results:
        status = "OK" if r.ok else "MISMATCH"
        extra = f" ({len(r.tolerated)} tolerated, dropped on load)" if r.tolerated else ""
        print(f"{r.name}.json: matched {r.matched}/{r.total} keys{extra} {status}")
        for problem in r.problems():
            print(f"  {problem}")
    bad = [r.name for r in results if not r.ok]
    print(
        f"{len(results) - len(bad)}/{len(results)} files fully matched"
        + (f"; mismatched: {', '.join(bad)}" if bad else "")
    )
    return 1 if bad else 0


def _import(args: argparse.Namespace) -> int:
    from .champ_release import ChampCheckpointError, load_champ

    motion = {"auto": None, "yes": True, "no": False}[args.motion]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load_champ(args.source, args.config, dtype=_DTYPES[args.dtype], motion_modules=motion)
    except ChampCheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for w in caught:
        if "motion_module.pth" in str(w.message):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    model.save_pretrained(args.destination)
    n = sum(p.numel() for p in model.parameters())
    print(
        f"saved {args.destination} ({n:,} parameters, motion modules: {model.denoising_unet.has_motion_modules})"
    )
    return 0
