"""Throughput of the DisCo frame metrics (SSIM, PSNR, L1, person crops, hf_ratio, jitter) at 256 px.

Usage: PYTHONPATH=. python bench/bench_eval.py [--frames 48] [--weights DIR]
With --weights, LPIPS and the FID Inception features are timed too (when their files are present).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from cosec.eval import metrics as M
from cosec.eval.backbones import BackboneWeights
from cosec.eval.evaluate import Backbones, SplitEvaluator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--weights", type=Path, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shape = (args.frames, args.size, args.size, 3)
    gt = np.clip(ndimage.gaussian_filter(rng.normal(128, 60, shape), sigma=(0, 2, 2, 0)), 0, 255).astype(
        np.uint8
    )
    pred = np.clip(gt + rng.normal(0, 8, shape), 0, 255).astype(np.uint8)
    masks = np.zeros(shape[:3], bool)
    masks[:, args.size // 8 : -args.size // 8, args.size // 4 : -args.size // 4] = True

    for name, fn in (("ssim", M.ssim), ("psnr", M.psnr), ("l1", M.l1)):
        start = time.perf_counter()
        for i in range(args.frames):
            fn(pred[i], gt[i])
        print(f"{name:>12}: {args.frames / (time.perf_counter() - start):8.1f} frames/s")
    start = time.perf_counter()
    M.video_metrics(pred, gt, masks)
    print(
        f"{'all frame':>12}: {args.frames / (time.perf_counter() - start):8.1f} frames/s "
        "(ssim, psnr, l1, person crops, hf_ratio, jitter)"
    )
    if args.weights is not None:
        backbones = Backbones(BackboneWeights(args.weights))
        for metric, reason in backbones.reasons.items():
            print(f"{metric:>12}: skipped ({reason})")
        if backbones.lpips is not None or backbones.inception is not None:
            evaluator = SplitEvaluator(backbones)
            start = time.perf_counter()
            evaluator.add_video(pred, gt, masks)
            print(
                f"{'with nets':>12}: {args.frames / (time.perf_counter() - start):8.1f} frames/s "
                "(frame metrics + LPIPS and/or Inception features)"
            )


if __name__ == "__main__":
    main()
