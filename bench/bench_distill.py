"""Time one ReferenceLCM distillation step and its parts (phase 1 frames, phase 2 clips).

    PYTHONPATH=. python bench/bench_distill.py [--model tiny] [--groups 2] [--frames 8] [--repeats 5]

Parts are timed with forward hooks inside the real step: reference pass, guidance encoders,
teacher cond / uncond, target, student forward, student backward, optimizer + EMA.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch

from cosec.distill import DistillBatch, DistillConfig, ReferenceLCM
from cosec.models import ChampModel


class PartTimer:
    """Wall time of every forward of the given modules, keyed by a label (teacher split by bank / no bank)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: dict[str, float] = defaultdict(float)
        self._start: dict[int, float] = {}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def watch(self, module: torch.nn.Module, label: str, split_uncond: bool = False) -> None:
        def pre(mod, args, kwargs):
            self._sync()
            self._start[id(mod)] = time.perf_counter()

        def post(mod, args, kwargs, output):
            self._sync()
            name = label
            if split_uncond:
                bank = args[4] if len(args) > 4 else kwargs.get("bank")
                name = f"{label} uncond" if bank is None else f"{label} cond"
            self.times[name] += time.perf_counter() - self._start.pop(id(mod))

        module.register_forward_pre_hook(pre, with_kwargs=True)
        module.register_forward_hook(post, with_kwargs=True)


def make_batch(model: ChampModel, groups: int, frames: int | None, refs: int, num_ras: int) -> DistillBatch:
    c = model.config
    h = c.latent_size
    lat_shape = (groups, 4, h, h) if frames is None else (groups, 4, frames, h, h)
    img_shape = (
        (groups, 3, c.resolution, c.resolution)
        if frames is None
        else (groups, 3, frames, c.resolution, c.resolution)
    )
    videos = [g for g in range(groups) for _ in range(num_ras)] + [groups + i for i in range(refs - num_ras)]
    index = [
        [g * num_ras + i for i in range(num_ras)] + [groups * num_ras + i for i in range(refs - num_ras)]
        for g in range(groups)
    ]
    device = model.device
    return DistillBatch(
        latents=torch.randn(lat_shape, device=device),
        guidance={k: torch.rand(img_shape, device=device) for k in c.guidance_types},
        ref_latents=torch.randn(len(videos), 4, h, h, device=device),
        ref_clip=torch.randn(len(videos), 1, c.unet["cross_attention_dim"], device=device),
        ref_index=torch.tensor(index, device=device),
        ref_video=torch.tensor(videos, device=device),
        num_ras=num_ras,
    )


def bench_phase(
    model: ChampModel, phase: int, batch: DistillBatch, repeats: int, low_precision: bool
) -> None:
    lcd = ReferenceLCM(model, DistillConfig(lr=1e-6, low_precision=low_precision))
    optimizer = lcd.make_optimizer(phase)
    timer = PartTimer(model.device)
    timer.watch(model.reference_unet, "reference pass")
    timer.watch(model.guidance_encoders, "guidance encoders")
    timer.watch(lcd.teacher, "teacher", split_uncond=True)
    timer.watch(lcd.target, "target")
    timer.watch(lcd.student, "student forward")
    step = lcd.phase1_step if phase == 1 else lcd.phase2_step
    rows: dict[str, list[float]] = defaultdict(list)
    for i in range(repeats + 1):  # the first step warms up and is not counted
        timer.times.clear()
        timer._sync()
        start = time.perf_counter()
        losses = step(batch)
        timer._sync()
        forward_end = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        timer._sync()
        backward_end = time.perf_counter()
        optimizer.step()
        lcd.update_ema()
        timer._sync()
        end = time.perf_counter()
        if i == 0:
            continue
        for name, value in timer.times.items():
            rows[name].append(value)
        rows["student backward"].append(backward_end - forward_end)
        rows["optimizer + EMA"].append(end - backward_end)
        rows["whole step"].append(end - start)
    shape = tuple(batch.latents.shape)
    refs = tuple(batch.ref_index.shape)
    print(
        f"phase {phase}: latents {shape}, refs per group {refs[1]} (RAS {batch.num_ras}), "
        f"low_precision={low_precision}, median of {repeats} steps"
    )
    for name in ["reference pass", "guidance encoders", "teacher cond", "teacher uncond", "target",
                 "student forward", "student backward", "optimizer + EMA", "whole step"]:  # fmt: skip
        if rows.get(name):
            print(f"  {name:<18} {1000 * statistics.median(rows[name]):9.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--refs", type=int, default=3, help="references per group (RAS + ERS)")
    parser.add_argument("--ras", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--low-precision", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}")
    frames_model = ChampModel.build(args.model, device=args.device)
    bench_phase(frames_model, 1, make_batch(frames_model, args.groups, None, args.refs, args.ras),
                args.repeats, args.low_precision)  # fmt: skip
    clips_model = ChampModel.build(args.model, motion_modules=True, device=args.device)
    bench_phase(clips_model, 2, make_batch(clips_model, 1, args.frames, args.ras, args.ras),
                args.repeats, args.low_precision)  # fmt: skip


if __name__ == "__main__":
    main()
