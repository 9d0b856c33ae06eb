"""Gradient averaging across 2 CPU workers: the training loop's own (one all-reduce per parameter tensor after
backward) vs DDP (bucketed all-reduce overlapped with backward, what Ray Train's ``prepare_model`` wraps in).

    PYTHONPATH=. python bench/bench_ddp.py [--steps 10] [--resolution 64] [--phase 1] [--bucket-mb 25]

It re-runs itself in a private network namespace with loopback only (``unshare -n``). Two processes (gloo
on 127.0.0.1 over ``lo``, one thread each) run the real loop (``cosec.train.train``) on
ReferenceLCM distillation steps of the tiny model (random weights, one fixed random batch per rank). In the
DDP mode the student D-UNet is wrapped in ``DistributedDataParallel`` and the loop's own averaging is
switched off (it would re-average equal gradients); the stages do the same through
``cosec.train.distributed.data_parallel`` (``common.run.data_parallel: ddp``, the default). Seconds per
step: median over ``--steps`` steps after two warm-up steps, rank 0's wall clock; both modes must end with
the same weights on both ranks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def worker(rank: int, args, port: int, mode: str, out: str) -> None:
    from bench_distill_sd15 import make_batch
    from torch.nn.parallel import DistributedDataParallel

    import cosec.train.loop as loop
    from cosec.distill import DistillConfig, Phase1Config, Phase2Config, ReferenceLCM
    from cosec.models import ChampModel, model_config
    from cosec.train import TrainConfig, train

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    phase = args.phase
    model = ChampModel.build(
        dataclasses.replace(model_config("tiny"), resolution=args.resolution), motion_modules=phase == 2
    )
    lcd = ReferenceLCM(model, DistillConfig(lr=1e-4, phase1=Phase1Config(), phase2=Phase2Config()))
    params = lcd.trainable_parameters(phase)
    if mode == "ddp":
        lcd.student = DistributedDataParallel(lcd.student, bucket_cap_mb=args.bucket_mb)
        loop.Trainer._average_gradients = lambda self: None  # DDP averaged them during backward
    batch = make_batch(model, phase, args.resolution, args.frames)
    batch.latents += 0.1 * rank  # each rank its own data
    step = lcd.phase1_step if phase == 1 else lcd.phase2_step
    times: list[float] = []
    last = [time.perf_counter()]

    def timed(_step, _logs):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now
        lcd.update_ema()

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(max_steps=args.steps + 2, out_dir=tmp, lr=1e-4, checkpoint_every=10**6,
                             mixed_precision="no", progress=False, seed=0)  # fmt: skip
        last[0] = time.perf_counter()
        train(
            lambda b: step(b)["loss"], lambda s: iter(lambda: batch, None), params, config, callbacks=[timed]
        )
    flat = torch.cat([p.detach().flatten() for p in params])
    other = flat.clone()
    dist.broadcast(other, src=1)
    if rank == 0:
        result = {"mode": mode, "s_per_step": statistics.median(times[2:]), "steps": times[2:],
                  "tensors": len(params), "numel": flat.numel(), "in_sync": bool(torch.equal(flat, other))}  # fmt: skip
        Path(out).write_text(json.dumps(result))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--phase", type=int, default=1, choices=[1, 2])
    parser.add_argument("--frames", type=int, default=4, help="phase-2 clip length")
    parser.add_argument("--bucket-mb", type=float, default=25.0, help="DDP bucket size (torch default 25)")
    parser.add_argument("--modes", nargs="+", default=["loop", "ddp", "loop", "ddp"], choices=["loop", "ddp"])
    args = parser.parse_args()
    if os.environ.get("COSEC_BENCH_NETNS") != "1":  # gloo's servers may only ever see loopback
        cmd = f'ip link set lo up && exec "{sys.executable}" {" ".join(map(repr, sys.argv))}'
        os.environ.update(COSEC_BENCH_NETNS="1", GLOO_SOCKET_IFNAME="lo")
        os.execvp("unshare", ["unshare", "-n", "sh", "-c", cmd])
    print(f"tiny model, phase {args.phase}, {args.resolution} px, 2 CPU workers (gloo, 1 thread each)")
    rows = []
    for i, mode in enumerate(args.modes):  # alternated, so drift in machine load hits both modes
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            mp.spawn(worker, args=(args, 29600 + i, mode, out.name), nprocs=2, join=True)
            r = json.loads(Path(out.name).read_text())
        rows.append(r)
        steps = ", ".join(f"{t:.3f}" for t in r["steps"])
        print(
            f"{mode:<4}: {r['s_per_step']:.4f} s/step (steps {steps}); {r['tensors']} tensors, "
            f"{r['numel'] / 1e6:.2f} M values; ranks in sync: {r['in_sync']}",
            flush=True,
        )
    for mode in ("loop", "ddp"):
        best = [r["s_per_step"] for r in rows if r["mode"] == mode]
        if best:
            print(f"{mode}: median of runs {statistics.median(best):.4f} s/step")
    print("JSON " + json.dumps(rows))


if __name__ == "__main__":
    main()
