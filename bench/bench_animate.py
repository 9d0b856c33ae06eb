"""Peak memory of `cosec animate` against the number of frames (constant-memory check for context windows).

Each length runs the real command (`cosec animate`: reference once, context windows at every step, maps read
per window, VAE in chunks, frames streamed into the mp4) in a fresh process, which reports its peak resident
set (ru_maxrss) and its RSS just before animating (model loaded), so the growth with length is visible.

Usage: PYTHONPATH=. python bench/bench_animate.py [--frames 24,96,480] [--size tiny|sd15] [--resolution 64]
       [--steps 2] [--sampler lcm] [--model DIR] [--threads 1]
Without --model a random-weight model of --size is saved to a temporary folder (as a student).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CHILD = r"""
import json, resource, sys, time
import cosec.animate.run as run
from cosec.cli import main
marks = {}
_animate = run.animate
def animate(*a, **k):  # RSS with the model loaded and the inputs opened, just before the video is made
    with open("/proc/self/statm") as f:
        import os
        marks["rss_before_mb"] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    t = time.perf_counter()
    out = _animate(*a, **k)
    marks["seconds"] = time.perf_counter() - t
    return out
run.animate = animate
import cosec.animate
rc = main(sys.argv[1:])
marks["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
marks["rc"] = rc
print("BENCH " + json.dumps(marks))
"""


def write_motion(folder: Path, frames: int, size: int) -> None:
    """A Champ-layout guidance folder: a disc moving left and right in every map."""
    yy, xx = np.mgrid[0:size, 0:size]
    colours = {"depth": (128, 128, 128), "normal": (128, 128, 255), "semantic_map": (255, 0, 0),
               "dwpose": (0, 255, 0)}  # fmt: skip
    for name, colour in colours.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for k in range(frames):
            cx = size * (0.5 + 0.3 * np.sin(k / 6))
            img = np.zeros((size, size, 3), np.uint8)
            img[(xx - cx) ** 2 + (yy - size / 2) ** 2 < (size / 5) ** 2] = colour
            Image.fromarray(img).save(folder / name / f"{k:04d}.png", compress_level=1)
    (folder / "meta.json").write_text(json.dumps({"fps": 24}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", default="24,96,480")
    parser.add_argument("--size", default="tiny", choices=("tiny", "sd15"))
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--model", default=None, help="checkpoint folder (default: random weights of --size)")
    parser.add_argument("--sampler", default="lcm", choices=("lcm", "ddim"))
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    lengths = [int(f) for f in args.frames.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-animate-") as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            from cosec.bench import build_model

            model = str(tmp / "model")
            build_model(args.size, args.resolution, "cpu", "fp32").save_pretrained(model, role="student")
        write_motion(tmp / "motion", max(lengths), args.resolution)
        Image.fromarray(np.full((args.resolution, args.resolution, 3), 180, np.uint8)).save(tmp / "ref.png")
        rows = []
        for n in lengths:
            cmd = [sys.executable, "-c", CHILD, "animate", "--model", model, "--reference", str(tmp / "ref.png"),
                   "--motion", str(tmp / "motion"), "--out", str(tmp / f"out{n}.mp4"), "--frames", f":{n}",
                   "--sampler", args.sampler, "--steps", str(args.steps), "--resolution", str(args.resolution),
                   "--threads", str(args.threads), "--quiet"]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH ")), None)
            if proc.returncode or line is None:
                sys.exit(f"{n} frames failed:\n{proc.stdout}\n{proc.stderr}")
            marks = json.loads(line[6:])
            marks["frames"] = n
            marks["growth_mb"] = marks["peak_rss_mb"] - marks["rss_before_mb"]
            rows.append(marks)
            print(
                f"{n:>5} frames: peak RSS {marks['peak_rss_mb']:7.0f} MB (before animating "
                f"{marks['rss_before_mb']:6.0f} MB, +{marks['growth_mb']:5.0f} MB), "
                f"{marks['seconds']:7.1f} s, {marks['seconds'] / n:.3f} s/frame",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
