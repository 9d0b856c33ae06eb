"""`cosec animate`: a reference photo + a motion -> an mp4, with the distilled student (or any teacher).

Any length in constant memory: the video is denoised in Champ-style context windows at every step
(cosec.diffusion.windows), the VAE decodes in chunks and frames stream to the writer. See docs/animate.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "animate",
        help="animate a reference photo with a motion (guidance maps or body parameters) -> mp4",
        description=__doc__.splitlines()[0],
    )
    p.add_argument(
        "--model", required=True, help="cosec checkpoint folder (student or teacher) or Champ release"
    )
    p.add_argument("--reference", required=True, help="image of a person (PNG, JPEG, any size or aspect)")
    p.add_argument(
        "--motion",
        required=True,
        help="Champ-layout guidance folder (depth/ normal/ semantic_map/ dwpose/), e.g. data/prepared/<split>/"
        "<video>, or a folder of body-parameter files (or holding params/ or smpl_results/) to render",
    )
    p.add_argument("--out", required=True, help="output mp4")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: student 2, teacher 20)")
    p.add_argument("--sampler", choices=("lcm", "ddim"), default=None, help="default follows the model")
    p.add_argument(
        "--guidance-scale", type=float, default=None, help="CFG scale for ddim (default 3.5; LCM: CFG off)"
    )
    p.add_argument("--frames", default=None, metavar="A:B", help="frames of the motion to use (Python slice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    p.add_argument("--resolution", type=int, default=None, help="square output size (default: the model's)")
    p.add_argument(
        "--side-by-side", action="store_true", help="also write <out>.side_by_side.mp4: reference|pose|result"
    )
    p.add_argument("--png-dir", default=None, help="also write the result frames as NNNN.png here")
    p.add_argument(
        "--fps", type=float, default=None, help="output fps (default: the motion's meta.json, else 24)"
    )
    p.add_argument("--window", type=int, default=24, help="context window in frames (Champ: 24)")
    p.add_argument("--overlap", type=int, default=4, help="frames shared by consecutive windows (Champ: 4)")
    p.add_argument("--stride", type=int, default=1, help="context dilation levels (Champ: 1)")
    p.add_argument(
        "--renoise",
        choices=("independent", "shared"),
        default="independent",
        help="LCM re-noising between steps: per frame (the paper) or one noise image per clip (less flicker)",
    )
    p.add_argument(
        "--reference-fit",
        choices=("pad", "crop", "stretch"),
        default="pad",
        help="how a non-square reference becomes square (default pad: the whole person stays in view)",
    )
    p.add_argument("--shape-from", default=None, help="body-parameter file whose body shape the motion takes")
    p.add_argument("--smpl-model", default=None, help="your SMPL model folder (SMPL fits only)")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the denoising UNet (GPU; first call slow)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        return _animate(args)
    except Exception as err:  # a bad input gets one line, never a traceback
        from cosec.animate.inputs import AnimateError

        known = (AnimateError,)
        try:
            from cosec.data.io import DataError

            known += (DataError,)
        except ImportError:  # pragma: no cover
            pass
        if isinstance(err, known):
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise


def _animate(args: argparse.Namespace) -> int:
    import torch

    from cosec.animate.inputs import AnimateError, load_reference, open_motion, parse_frames
    from cosec.animate.run import FrameSink, animate, load_model, sampler_settings
    from cosec.diffusion.windows import ContextWindows

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise AnimateError(f"{out}: --out must be an .mp4 file")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise AnimateError(f"--device {args.device}: CUDA is not available on this machine")
    try:
        windows = ContextWindows(args.window, args.overlap, args.stride)
    except ValueError as err:
        raise AnimateError(f"--window/--overlap/--stride: {err}") from None
    loaded = load_model(args.model, args.device, args.dtype)
    model = loaded.model
    cfg = model.config
    res = args.resolution or cfg.resolution
    step = 8 * cfg.vae_factor  # the UNet halves the latent three times
    if res < step or res % step:
        raise AnimateError(f"--resolution {res}: must be a positive multiple of {step} for this model")
    if model.denoising_unet.has_motion_modules and args.window > cfg.motion.max_len:
        raise AnimateError(
            f"--window {args.window}: the motion modules take at most {cfg.motion.max_len} frames"
        )
    settings = sampler_settings(
        loaded.role, args.sampler, args.steps, args.guidance_scale, args.seed, windows, args.renoise
    )
    reference, ref_u8 = load_reference(args.reference, res, args.reference_fit)
    motion = open_motion(
        args.motion,
        cfg.guidance_types,
        res,
        args.fps,
        args.shape_from,
        args.smpl_model,
        progress=not args.quiet,
    )
    try:
        frames = parse_frames(args.frames, motion.num_frames)
        fps = motion.fps or 24.0
        role = f"{loaded.role} assumed" if loaded.note else loaded.role
        print(f"model: {args.model} ({loaded.kind}, {role}); sampler: {settings.describe()}")
        if loaded.note and args.sampler is None:
            print(f"note: {loaded.note}")
        print(
            f"motion: {args.motion} ({len(frames)} of {motion.num_frames} frames at {fps:g} fps"
            f"{', rendered from body parameters' if motion.rendered else ''}); {res}x{res}, {args.device} {args.dtype}"
        )
        unet = model.denoising_unet
        if args.compile:
            unet = torch.compile(unet)
        sink = FrameSink(out, fps, args.png_dir)
        sinks = [lambda i, f: sink.add(f)]
        side = None
        if args.side_by_side:
            import numpy as np

            side = FrameSink(out.with_name(f"{out.stem}.side_by_side.mp4"), fps)
            sinks.append(
                lambda i, f: side.add(np.concatenate([ref_u8, motion.pose_image(frames[i], res), f], axis=1))
            )
        ok = False
        try:
            result = animate(
                model, reference, motion, frames, settings, sinks, res, unet, progress=not args.quiet
            )
            ok = True
        finally:
            sink.close(keep=ok)
            if side is not None:
                side.close(keep=ok)
    finally:
        motion.close()
    print(f"wrote {out} ({result.frames} frames, {result.windows} window(s) per step)")
    if side is not None:
        print(f"wrote {side.path}")
    if args.png_dir:
        print(f"wrote {result.frames} PNG frames to {args.png_dir}")
    print(
        f"time: {result.seconds:.2f} s, {result.seconds_per_frame:.3f} s/frame "
        f"(reference {result.seconds_condition:.2f} s, denoise {result.seconds_denoise:.2f} s, "
        f"decode+write {result.seconds_decode:.2f} s)"
    )
    return 0
