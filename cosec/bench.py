"""`cosec bench`: end-to-end time per frame and peak memory, teacher (DDIM + CFG) vs student (LCM), one clip.

Every run is the path `cosec animate` takes (reference bank and CLIP once, context windows at every step,
VAE decoded in chunks, frames converted to uint8 and dropped instead of encoded into an mp4), on the same
reference, guidance and initial noise. The student has the teacher's architecture, so with random weights
(no ``--weights``) both are timed on the same network: speed does not depend on the weights' values.
Peak memory: CUDA max allocated on a GPU, the process's peak resident set (RSS, sampled every 2 ms) on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time per frame and peak memory: teacher@20 DDIM+CFG vs student@1,2,4 LCM on one clip",
        description=__doc__.splitlines()[0],
    )
    p.add_argument(
        "--model", default="tiny", help="tiny (the embedded benchmark's size) or sd15 (Champ's shapes)"
    )
    p.add_argument(
        "--weights", default=None, help="checkpoint folder (cosec or Champ release) instead of random weights"
    )
    p.add_argument(
        "--student-weights", default=None, help="checkpoint folder of the student (default: teacher's)"
    )
    p.add_argument(
        "--resolution", type=int, default=None, help="square size in pixels (default: the model's)"
    )
    p.add_argument("--frames", type=int, default=24, help="clip length (default 24, one context window)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    p.add_argument("--teacher-steps", type=int, default=20)
    p.add_argument("--guidance-scale", type=float, default=3.5, help="the teacher's CFG scale (Champ: 3.5)")
    p.add_argument("--student-steps", default="1,2,4", help="comma-separated LCM step counts")
    p.add_argument("--only", choices=("all", "teacher", "student"), default="all", help="which runs to make")
    p.add_argument("--window", type=int, default=24)
    p.add_argument("--overlap", type=int, default=4)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the denoising UNet (warm-up untimed)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=main)


DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass
class BenchResult:
    run: str
    unet_calls: int
    seconds: float
    seconds_per_frame: float
    peak_mb: float
    peak_over_start_mb: float
    speedup: float | None = None


class PeakMemory:
    """Peak memory during a block: CUDA max allocated (reset at entry) or RSS sampled by a thread (CPU)."""

    def __init__(self, device):
        import torch

        self.device = torch.device(device)
        self.peak = self.start = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                import os

                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # not Linux: the lifetime peak is the best there is
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> PeakMemory:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            self.start = self.peak = self.rss()
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self.rss())


class SyntheticMotion:
    """Guidance maps made up per frame (smooth blobs that move), generated only for the frames asked for, so
    a long benchmark clip holds nothing per frame; same frames give the same maps."""

    def __init__(self, types: tuple[str, ...], seed: int = 0):
        self.types, self.seed = types, seed

    def load(self, frames, size: int):
        import torch

        yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
        out = {}
        for k, t in enumerate(self.types):
            maps = []
            for f in frames:
                cx, cy = 0.5 * torch.sin(torch.tensor(0.1 * f + k)), 0.3 * torch.cos(torch.tensor(0.07 * f))
                blob = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) * 8)
                maps.append(torch.stack([blob, blob.roll(k + 1, 0), 1 - blob]))
            out[t] = torch.stack(maps, dim=1)[None]
        return out


def build_model(size: str, resolution: int | None, device: str, dtype: str, weights: str | None = None):
    """A ChampModel of the named size with random weights (motion modules on), or loaded from ``weights``."""
    import torch

    from cosec.models import ChampModel, model_config

    if weights:
        from cosec.animate.run import load_model

        return load_model(weights, device, dtype).model
    cfg = model_config(size)
    if resolution:
        cfg = replace(cfg, resolution=resolution)  # __post_init__ re-derives the UNet's sample size
    torch.manual_seed(0)
    model = ChampModel.build(cfg, motion_modules=True, device=device)
    with torch.no_grad():  # zero-initialised outputs would make the guidance and motion paths trivial
        for name, p in model.named_parameters():
            if name.endswith(("conv_out.weight", "proj_out.weight")) and (
                "guidance" in name or "motion" in name
            ):
                p.normal_(0, 0.02)
    return model.to(getattr(torch, DTYPES[dtype])).eval()


def attention_summary(model) -> str:
    """Which attention kernel the UNets, guidance encoders and motion modules use."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    total = sdpa = 0
    for module in model.modules():
        if isinstance(module, Attention):
            total += 1
            proc = module.processor
            sdpa += isinstance(getattr(proc, "inner", proc), AttnProcessor2_0)
    clip = getattr(model.image_encoder.config, "_attn_implementation", "unknown")
    return f"torch scaled_dot_product_attention in {sdpa}/{total} diffusers attention modules; CLIP: {clip}"


def run_one(
    model, unet, reference, motion, frames: int, settings, device, resolution: int
) -> tuple[float, float, float]:
    """(seconds, peak bytes, peak over start bytes) of one end-to-end animation with frames dropped."""
    from cosec.animate.run import animate

    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        animate(
            model, reference, motion, list(range(frames)), settings, [lambda i, f: None], resolution, unet,
            progress=False,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
    return seconds, float(mem.peak), float(mem.peak - mem.start)


def main(args: argparse.Namespace) -> int:
    import torch

    from cosec.animate.inputs import AnimateError
    from cosec.animate.run import sampler_settings
    from cosec.diffusion.windows import ContextWindows, num_windows

    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise AnimateError(f"--device {args.device}: CUDA is not available on this machine")
        try:
            student_steps = [int(s) for s in args.student_steps.split(",") if s.strip()]
        except ValueError:
            raise AnimateError(f"--student-steps {args.student_steps!r}: expected e.g. 1,2,4") from None
        if args.model not in ("tiny", "sd15"):
            raise AnimateError(f"--model {args.model!r}: choose tiny or sd15 (or give --weights DIR)")
        windows = ContextWindows(args.window, args.overlap)
        t0 = time.perf_counter()
        model = build_model(args.model, args.resolution, args.device, args.dtype, args.weights)
        student_unet = model.denoising_unet
        if args.student_weights:
            from cosec.animate.run import load_model

            student_unet = load_model(args.student_weights, args.device, args.dtype).model.denoising_unet
        build_s = time.perf_counter() - t0
    except (AnimateError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    res = args.resolution or model.config.resolution
    teacher_unet = model.denoising_unet
    if args.compile:
        teacher_unet = torch.compile(teacher_unet)
        student_unet = teacher_unet if student_unet is model.denoising_unet else torch.compile(student_unet)
    gen = torch.Generator().manual_seed(args.seed)
    reference = torch.rand(1, 3, res, res, generator=gen) * 2 - 1
    motion = SyntheticMotion(model.config.guidance_types, args.seed)
    weights = "random weights" if not args.weights else f"weights {args.weights}"
    print(
        f"cosec bench: {model.config.name} shapes ({weights}), {res}x{res}, {args.frames} frames, "
        f"{args.device} {args.dtype}, windows {windows.length}/{windows.overlap} "
        f"({num_windows((1, 4, args.frames, 1, 1), windows)} per step), torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads; model built in {build_s:.1f} s"
    )
    print(f"attention: {attention_summary(model)}")
    runs = []
    if args.only in ("all", "teacher"):
        teacher_settings = sampler_settings(
            "teacher", "ddim", args.teacher_steps, args.guidance_scale, args.seed, windows
        )
        runs.append(("teacher", args.teacher_steps, teacher_settings))
    if args.only in ("all", "student"):
        for s in student_steps:
            runs.append(("student", s, sampler_settings("student", "lcm", s, 1.0, args.seed, windows)))
    # warm-up (untimed): lazy CUDA init, cuDNN autotuning, torch.compile's first trace
    warm = sampler_settings("student", "lcm", 1, 1.0, args.seed, windows)
    for unet in {id(teacher_unet): teacher_unet, id(student_unet): student_unet}.values():
        run_one(model, unet, reference, motion, min(args.frames, windows.length), warm, args.device, res)
    n_win = num_windows((1, 4, args.frames, 1, 1), windows)
    results: list[BenchResult] = []
    for role, steps, settings in runs:
        unet = teacher_unet if role == "teacher" else student_unet
        seconds, peak, over = run_one(model, unet, reference, motion, args.frames, settings, args.device, res)
        cfg = settings.guidance_scale > 1
        name = f"{role}@{steps} {settings.sampler.upper()}" + (
            f"+CFG {settings.guidance_scale:g}" if cfg else ""
        )
        calls = steps * n_win * (2 if cfg else 1)
        results.append(BenchResult(name, calls, seconds, seconds / args.frames, peak / 2**20, over / 2**20))
    teacher = next((r for r in results if r.run.startswith("teacher")), None)
    for r in results:
        if teacher is not None and r is not teacher:
            r.speedup = teacher.seconds_per_frame / r.seconds_per_frame
    mem = "CUDA max alloc MB" if torch.device(args.device).type == "cuda" else "peak RSS MB"
    print(
        f"{'run':<26} {'UNet calls':>10} {'s total':>9} {'s/frame':>9} {mem:>18} {'(+run MB)':>10} {'speed-up':>9}"
    )
    for r in results:
        up = f"{r.speedup:.1f}x" if r.speedup else "1.0x" if r is teacher else "-"
        print(
            f"{r.run:<26} {r.unet_calls:>10} {r.seconds:>9.2f} {r.seconds_per_frame:>9.4f} "
            f"{r.peak_mb:>18.0f} {r.peak_over_start_mb:>10.0f} {up:>9}"
        )
    if teacher is not None:
        for r in results:
            if r is not teacher:
                print(f"speed-up {r.run.split()[0]} vs {teacher.run.split()[0]}: {r.speedup:.1f}x")
    if args.json:
        out = {
            "model": model.config.name, "weights": args.weights, "resolution": res, "frames": args.frames,
            "device": args.device, "dtype": args.dtype, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "window": windows.length, "overlap": windows.overlap,
            "compile": args.compile, "results": [asdict(r) for r in results],
        }  # fmt: skip
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0
