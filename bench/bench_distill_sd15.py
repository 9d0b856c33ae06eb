"""Phase-1 and phase-2 distillation steps at SD1.5 / Champ shapes, full student vs LoRA student.

    PYTHONPATH=. python bench/bench_distill_sd15.py [--resolution 64] [--frames 4] [--steps 2]
        [--students full lora] [--phases 1 2] [--champ FOLDER] [--low-precision] [--checkpointing]

Each (phase, student) runs in a fresh subprocess, so its peak RSS (``ru_maxrss``) is its own: the whole
ChampModel (random ``sd15`` weights, or an imported Champ folder with ``--champ``; VAE and CLIP stay
resident as in a real run), the ReferenceLCM copies, gradients and AdamW state, and the step's activations.
Seconds per step is the median of ``--steps`` whole train steps (forward, backward, optimiser, EMA) after
one warm-up step. A configuration whose weights, gradients and optimiser state alone would not fit in the
machine's available memory is skipped with the estimate (``--force`` runs it anyway).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cosec.distill import DistillBatch, DistillConfig, Phase1Config, Phase2Config, ReferenceLCM  # noqa: E402
from cosec.models import ChampModel, model_config  # noqa: E402

GIB = 2**30


def rss_now() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / GIB
    return float("nan")


def peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # Linux: KiB


def available_memory() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / GIB
    return float("inf")


def build_model(args, phase: int, device: str = "cpu") -> ChampModel:
    motion = phase == 2
    if args.champ:
        if device == "meta":  # sizes only: the folder's config on meta (no weights read)
            from cosec.models.checkpoint import read_model_folder

            meta, cfg, _ = read_model_folder(args.champ)
            model = ChampModel.build(cfg, motion_modules=meta["motion_modules"], device="meta")
        else:
            model = ChampModel.from_pretrained(args.champ)
        if motion and not model.denoising_unet.has_motion_modules:
            model.denoising_unet.add_motion_modules()  # zero-initialised: the folder has no motion modules
        return model
    cfg = dataclasses.replace(model_config("sd15"), resolution=args.resolution)
    return ChampModel.build(cfg, motion_modules=motion, device=device)


def distill_config(args, student: str) -> DistillConfig:
    return DistillConfig(
        lr=1e-6,
        student=student,
        low_precision=args.low_precision,
        gradient_checkpointing=args.checkpointing,
        phase1=Phase1Config(),  # paper: w 2.5 (teacher uncond pass on), ETA and CoNS on
        phase2=Phase2Config(),  # paper: w 1.5, temporal ETA on
    )


def make_batch(model: ChampModel, phase: int, resolution: int, frames: int) -> DistillBatch:
    """Phase 1: one group, 2 RAS + 1 ERS references; phase 2: one clip of ``frames`` frames, 2 RAS references."""
    g = torch.Generator().manual_seed(0)
    h = resolution // model.config.vae_factor
    refs, ras = (3, 2) if phase == 1 else (2, 2)
    lat = (1, 4, h, h) if phase == 1 else (1, 4, frames, h, h)
    img = (1, 3, resolution, resolution) if phase == 1 else (1, 3, frames, resolution, resolution)
    return DistillBatch(
        latents=torch.randn(lat, generator=g),
        guidance={k: torch.rand(img, generator=g) for k in model.config.guidance_types},
        ref_latents=torch.randn(refs, 4, h, h, generator=g),
        ref_clip=torch.randn(refs, 1, model.config.unet["cross_attention_dim"], generator=g),
        ref_index=torch.arange(refs)[None],
        ref_video=torch.tensor([0] * ras + [1] * (refs - ras)),
        num_ras=ras,
    )


def estimate_gib(args, phase: int, student: str) -> dict:
    """Weights + gradients + AdamW state + EMA copies in GiB, from the parameter counts (meta build)."""
    model = build_model(args, phase, device="meta")
    total = sum(p.numel() for p in model.parameters())
    dunet = sum(p.numel() for p in model.denoising_unet.parameters())
    if student == "full":
        trainable = dunet
        # model (teacher included) + student + target copies; grads + 2 Adam moments of the student
        numbers = total + 2 * dunet + 3 * trainable
        teacher_saving = dunet * 2 if args.low_precision else 0  # bf16 teacher: 2 of 4 bytes saved
    else:
        config = distill_config(args, "lora")
        rank = config.lora.resolved_rank(int(model.config.unet["block_out_channels"][0]))
        from cosec.distill import lora

        lora.add_lora(
            model.denoising_unet, rank, config.lora.resolved_alpha(rank), config.lora.target_modules
        )
        trainable = sum(p.numel() for n, p in model.denoising_unet.named_parameters() if ".lora_" in n)
        numbers = total + trainable + 3 * trainable  # model incl. adapters; target; grads + Adam moments
        teacher_saving = dunet * 2 if args.low_precision else 0
    return {
        "params_total": total,
        "params_dunet": dunet,
        "params_trainable": trainable,
        "static_gib": (4 * numbers - teacher_saving) / GIB,
    }


def child(args) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = build_model(args, args.phase)
    build_s = time.perf_counter() - t0
    rss_model = rss_now()
    lcd = ReferenceLCM(model, distill_config(args, args.student))
    optimizer = lcd.make_optimizer(args.phase)
    n_trainable = sum(p.numel() for group in optimizer.param_groups for p in group["params"])
    rss_ready = rss_now()
    batch = make_batch(model, args.phase, args.resolution, args.frames)
    times = []
    for i in range(args.steps + 1):
        start = time.perf_counter()
        losses = lcd.train_step(batch, optimizer, args.phase)
        if i:  # the first step allocates the optimiser state and warms up
            times.append(time.perf_counter() - start)
    result = {
        "phase": args.phase,
        "student": args.student,
        "s_per_step": statistics.median(times),
        "steps": times,
        "peak_rss_gib": peak_rss(),
        "rss_model_gib": rss_model,
        "rss_ready_gib": rss_ready,
        "build_s": build_s,
        "trainable_params": n_trainable,
        "loss": float(losses["loss"]),
        "lora_rank": getattr(lcd, "lora_rank", None),
    }
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64, help="pixels (latents are resolution / 8)")
    parser.add_argument("--frames", type=int, default=4, help="phase-2 clip length")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--students", nargs="+", default=["full", "lora"], choices=["full", "lora"])
    parser.add_argument("--phases", nargs="+", type=int, default=[1, 2], choices=[1, 2])
    parser.add_argument(
        "--champ", help="an imported Champ folder (cosec models import-champ) instead of random"
    )
    parser.add_argument(
        "--low-precision", action="store_true", help="bf16 teacher / target (LoRA: bf16 base)"
    )
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing of the student")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--force", action="store_true", help="run configurations that look too big")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--phase", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--student", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    source = args.champ or "random sd15 weights"
    print(
        f"SD1.5 / Champ shapes ({source}), {args.resolution} px (latents {args.resolution // 8}), batch 1, "
        f"phase-2 frames {args.frames}, low_precision={args.low_precision}, "
        f"gradient_checkpointing={args.checkpointing}, threads {args.threads}, CPU"
    )
    rows = []
    for phase in args.phases:
        for student in args.students:
            est = estimate_gib(args, phase, student)
            avail = available_memory()
            label = f"phase {phase} {student:<4}"
            if est["static_gib"] > 0.9 * avail and not args.force:
                print(
                    f"{label}: skipped: weights + grads + AdamW + EMA need {est['static_gib']:.1f} GiB, "
                    f"{avail:.1f} GiB available ({est['params_trainable'] / 1e6:.0f} M trainable of "
                    f"{est['params_total'] / 1e6:.0f} M)",
                    flush=True,
                )
                rows.append(
                    {"phase": phase, "student": student, "skipped": True, **est, "available_gib": avail}
                )
                continue
            flags = [f"--{k.replace('_', '-')}={v}" for k, v in
                     (("resolution", args.resolution), ("frames", args.frames), ("steps", args.steps),
                      ("threads", args.threads), ("phase", phase), ("student", student))]  # fmt: skip
            flags += ["--low-precision"] * args.low_precision + ["--checkpointing"] * args.checkpointing
            flags += [f"--champ={args.champ}"] if args.champ else []
            proc = subprocess.run(
                [sys.executable, __file__, "--child", *flags], capture_output=True, text=True, cwd=REPO
            )
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                print(f"{label}: failed (exit {proc.returncode}): {' | '.join(tail)}", flush=True)
                rows.append({"phase": phase, "student": student, "failed": proc.returncode, **est})
                continue
            r = json.loads(lines[-1].removeprefix("RESULT "))
            rows.append({**r, **est})
            print(
                f"{label}: {r['s_per_step']:7.2f} s/step  peak RSS {r['peak_rss_gib']:5.2f} GiB  "
                f"(model {r['rss_model_gib']:.2f}, + copies/adapters {r['rss_ready_gib']:.2f})  "
                f"trainable {r['trainable_params'] / 1e6:7.1f} M"
                + (f"  rank {r['lora_rank']}" if r["lora_rank"] else ""),
                flush=True,
            )
    print("JSON " + json.dumps(rows))


if __name__ == "__main__":
    main()
