"""Forward times of the tiny model's components and parameter counts of the sd15 model (built on meta).

Usage: PYTHONPATH=. python bench/bench_models.py [--config tiny] [--frames 8] [--repeats 5] [--threads N]
Prints one line per measurement (median of --repeats runs after one warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cosec.diffusion.teacher import sample_teacher
from cosec.models import ChampModel


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    sd15 = ChampModel.build("sd15", motion_modules=True, device="meta")
    print("sd15 parameter counts (meta device):")
    for name in ("reference_unet", "denoising_unet", "guidance_encoders", "image_encoder", "vae"):
        print(f"  {name:18s} {_count(getattr(sd15, name)):>15,}")
    print(f"  {'motion modules':18s} {sum(p.numel() for p in sd15.denoising_unet.motion_parameters()):>15,}")
    print(f"  {'total':18s} {_count(sd15):>15,}")

    torch.manual_seed(0)
    model = ChampModel.build(args.config, motion_modules=True, device=args.device)
    b, f, s, px = args.batch, args.frames, model.config.latent_size, model.config.resolution
    dev = model.device
    ref = torch.rand(b, 3, px, px, device=dev) * 2 - 1
    guid_img = {t: torch.rand(b, 3, px, px, device=dev) for t in model.config.guidance_types}
    guid_vid = {t: torch.rand(b, 3, f, px, px, device=dev) for t in model.config.guidance_types}
    cond = model.condition(ref, guid_img)
    cond_v = model.condition(ref, guid_vid)
    x, xv = torch.randn(b, 4, s, s, device=dev), torch.randn(b, 4, f, s, s, device=dev)
    t = torch.full((b,), 500, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def timed(fn):
        return _time(lambda: (fn(), sync()), args.repeats)

    rows = [
        ("clip_embeds", lambda: model.clip_embeds(ref)),
        ("encode_latents", lambda: model.encode_latents(ref)),
        ("reference_unet (bank)", lambda: model.reference_unet(x, cond.clip_embeds)),
        ("guidance_encoders (image)", lambda: model.guidance_encoders(guid_img)),
        ("denoising_unet image step", lambda: model.predict(model.denoising_unet, x, t, cond)),
        (f"denoising_unet video step F={f}", lambda: model.predict(model.denoising_unet, xv, t, cond_v)),
        ("decode_latents (image)", lambda: model.decode_latents(x)),
        (
            f"teacher sample image, {args.steps} steps CFG",
            lambda: sample_teacher(model, cond, tuple(x.shape), num_steps=args.steps),
        ),
    ]
    print(
        f"{args.config} forward times (batch {b}, {px}px, device {dev}, threads {torch.get_num_threads()}):"
    )
    for name, fn in rows:
        print(f"  {name:40s} {timed(fn) * 1000:9.1f} ms")


if __name__ == "__main__":
    main()
