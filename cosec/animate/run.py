"""Animate a reference with a motion: model loading, the sampler that follows the model, streamed output."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cosec.animate.inputs import AnimateError, GuidanceMaps
from cosec.diffusion.student import sample_student
from cosec.diffusion.teacher import sample_teacher
from cosec.diffusion.windows import (
    ContextWindows,
    WindowGuidance,
    decode_frames,
    num_windows,
    reference_conditioning,
)
from cosec.models import ChampModel

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SAMPLERS = ("lcm", "ddim")
# the defaults that follow the model: a distilled student as the paper's inference, a teacher as Champ's
STUDENT_DEFAULTS = {"sampler": "lcm", "steps": 2, "guidance_scale": 1.0}
TEACHER_DEFAULTS = {"sampler": "ddim", "steps": 20, "guidance_scale": 3.5}


@dataclass
class LoadedModel:
    model: ChampModel
    role: str  # "student" or "teacher" (assumed "teacher" when the folder records none)
    kind: str  # "cosec checkpoint" or "Champ release"
    note: str = ""  # set when the role was assumed: what to pass for a student


def load_model(path: str | os.PathLike, device: str = "cpu", dtype: str = "fp32") -> LoadedModel:
    """A project checkpoint folder (config.json + model.safetensors; its ``role`` field says student or
    teacher, absent = teacher), a LoRA student's adapter folder (merged into the base it records) or a
    folder of Champ's released files (a teacher)."""
    from cosec.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, ChampCheckpointError

    folder = Path(path)
    if not folder.is_dir():
        raise AnimateError(f"{folder}: model folder not found")
    torch_dtype = DTYPES[dtype]
    try:
        if (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file():
            model = ChampModel.from_pretrained(folder, device=device, dtype=torch_dtype)
            if model.role is None:
                return LoadedModel(
                    model,
                    "teacher",
                    "cosec checkpoint",
                    f"{folder / CONFIG_NAME} records no role (saved before roles were recorded): "
                    "using the teacher's sampler; pass --sampler lcm --steps 2 for a distilled student",
                )
            return LoadedModel(model, model.role, "cosec checkpoint")
        from cosec.distill import lora

        if lora.is_adapter_folder(folder):  # a LoRA student shipped as its adapter alone: merged on load
            return LoadedModel(
                lora.load_student(folder, device=device, dtype=torch_dtype), "student", "LoRA adapter"
            )
        if (folder / "denoising_unet.pth").is_file():
            from cosec.models.champ_release import load_champ

            model = load_champ(folder, "sd15", dtype=torch_dtype, motion_modules=None, device=device)
            return LoadedModel(model.eval(), "teacher", "Champ release")
    except ChampCheckpointError as err:
        raise AnimateError(str(err).splitlines()[0]) from None
    raise AnimateError(
        f"{folder}: not a model folder (a cosec checkpoint has {CONFIG_NAME} + {WEIGHTS_NAME}, "
        "a LoRA adapter adapter_config.json + adapter_model.safetensors, "
        "a Champ release denoising_unet.pth and the other released files)"
    )


@dataclass
class SamplerSettings:
    sampler: str
    steps: int
    guidance_scale: float
    seed: int = 0
    renoise: str = "independent"  # LCM's re-noising between steps (see sample_student)
    windows: ContextWindows = field(default_factory=ContextWindows)

    def describe(self) -> str:
        cfg = f"CFG {self.guidance_scale:g}" if self.guidance_scale > 1 else "CFG off"
        return f"{self.sampler.upper()} {self.steps} step{'s' if self.steps != 1 else ''}, {cfg}"


def sampler_settings(
    role: str,
    sampler: str | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    seed: int = 0,
    windows: ContextWindows | None = None,
    renoise: str = "independent",
) -> SamplerSettings:
    """The model's defaults (student: LCM 2 steps, CFG off; teacher: DDIM 20 steps, CFG 3.5), overridden
    by whatever the user gave. The LCM sampler runs without CFG (as the paper's inference)."""
    base = STUDENT_DEFAULTS if role == "student" else TEACHER_DEFAULTS
    sampler = sampler or base["sampler"]
    if sampler not in SAMPLERS:
        raise AnimateError(f"--sampler {sampler!r}: choose one of {SAMPLERS}")
    if sampler != base["sampler"]:  # switching sampler switches its defaults too
        base = STUDENT_DEFAULTS if sampler == "lcm" else TEACHER_DEFAULTS
    steps = base["steps"] if steps is None else steps
    if steps < 1:
        raise AnimateError(f"--steps {steps}: must be at least 1")
    scale = base["guidance_scale"] if guidance_scale is None else guidance_scale
    if sampler == "lcm" and scale > 1:
        raise AnimateError(
            f"--guidance-scale {scale:g}: the LCM sampler runs without CFG (give 1 or use ddim)"
        )
    return SamplerSettings(sampler, steps, float(scale), seed, renoise, windows or ContextWindows())


class FrameSink:
    """Streams uint8 frames into an mp4 (imageio-ffmpeg, H.264 yuv420p: plays everywhere) and optionally
    PNGs; the mp4 appears atomically when closed after the last frame."""

    def __init__(self, path: str | os.PathLike, fps: float, png_dir: str | os.PathLike | None = None):
        import imageio.v2 as iio

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}.mp4")
        self.writer = iio.get_writer(
            self.tmp, fps=fps, codec="libx264", pixelformat="yuv420p", quality=None,
            output_params=["-crf", "12"], macro_block_size=2, ffmpeg_log_level="error",
        )  # fmt: skip
        self.png_dir = None if png_dir is None else Path(png_dir)
        if self.png_dir is not None:
            self.png_dir.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def add(self, frame: np.ndarray) -> None:
        self.writer.append_data(frame)
        if self.png_dir is not None:
            from cosec.data.io import frame_name, write_png

            write_png(self.png_dir / frame_name(self.count), frame)
        self.count += 1

    def close(self, keep: bool = True) -> None:
        self.writer.close()
        if keep:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


@dataclass
class AnimateResult:
    frames: int
    windows: int
    seconds_condition: float
    seconds_denoise: float
    seconds_decode: float

    @property
    def seconds(self) -> float:
        return self.seconds_condition + self.seconds_denoise + self.seconds_decode

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / self.frames


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _uint8(pixels: torch.Tensor) -> np.ndarray:
    """(1,3,n,H,W) in [-1,1] -> (n,H,W,3) uint8."""
    x = ((pixels[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


@torch.no_grad()
def animate(
    model: ChampModel,
    reference: torch.Tensor,
    motion: GuidanceMaps,
    frames: list[int],
    settings: SamplerSettings,
    sinks: list,
    resolution: int | None = None,
    unet=None,
    progress: bool = True,
    decode_chunk: int | None = None,
) -> AnimateResult:
    """Animate ``reference`` (1,3,R,R) in [-1,1] with the motion's ``frames``; each sink gets every frame as
    ``sink(index, frame uint8 (R,R,3))`` in order.

    The reference bank and CLIP embedding are computed once; guidance maps are read and encoded per context
    window at every step; the VAE decodes ``decode_chunk`` frames at a time (default: the window length), each
    chunk going to the sinks at once. Peak memory therefore does not grow with the number of frames (only the
    latents, 4 x F x R/8 x R/8 floats, do).
    """
    res = resolution or model.config.resolution
    device = model.device
    unet = model.denoising_unet if unet is None else unet
    t0 = time.perf_counter()
    cond = reference_conditioning(model, reference.to(device))  # once per video
    _sync(device)
    t1 = time.perf_counter()
    guidance = WindowGuidance(model, lambda idx: motion.load([frames[i] for i in idx], res))
    lat = res // model.config.vae_factor
    shape = (1, 4, len(frames), lat, lat)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(settings.seed))
    n_win = num_windows(shape, settings.windows)
    bar = tqdm(
        total=settings.steps * n_win,
        desc=f"{settings.sampler} {settings.steps} steps x {n_win} windows",
        unit="window",
        disable=not progress,
    )
    common = {"latents": noise, "windows": settings.windows, "guidance": guidance, "progress": bar}
    if settings.sampler == "ddim":
        latents = sample_teacher(
            model, cond, shape, settings.steps, settings.guidance_scale, unet=unet, **common
        )
    else:
        renoise_gen = torch.Generator().manual_seed(settings.seed + 50_000)
        latents = sample_student(
            model, unet, cond, shape, settings.steps, renoise_gen, renoise=settings.renoise, **common
        )
    bar.close()
    _sync(device)
    t2 = time.perf_counter()
    index = 0
    chunk = decode_chunk or settings.windows.length
    for pixels in decode_frames(model, latents, chunk):
        for frame in _uint8(pixels):
            for sink in sinks:
                sink(index, frame)
            index += 1
    _sync(device)
    t3 = time.perf_counter()
    return AnimateResult(len(frames), n_win, t1 - t0, t2 - t1, t3 - t2)
