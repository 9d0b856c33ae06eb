"""Data benchmark: guidance rendering (all maps) frames/s at several resolutions, both raster
backends, and video decoding speed. Usage: PYTHONPATH=. python bench/bench_data.py [--frames 48]"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cosec.body.anny_body import POSE_BONES, AnnyBody, anny_rest_params
from cosec.data.io import read_video, write_video
from cosec.render import GuidanceRenderer, gl_available
from cosec.render.maps import outward_sign


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--resolutions", default="128,256,512")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    body = AnnyBody()
    n = args.frames
    params = anny_rest_params(n, distance=3.2, focal=800, res=512)
    t = np.linspace(0, 2 * np.pi, n)
    params.body_pose[:, POSE_BONES.index("upperarm01.L"), 1] = -1.2 * (0.5 + 0.5 * np.sin(t))
    params.body_pose[:, POSE_BONES.index("root"), 2] = 0.8 * np.sin(t)
    t0 = time.perf_counter()
    seq = body.pose(params)
    print(f"anny posing: {n / (time.perf_counter() - t0):.0f} frames/s ({seq.vertices.shape[1]} vertices)")
    sign = outward_sign(seq.vertices[0].float(), seq.faces)
    ok, why = gl_available()
    backends = ["gl", "torch"] if ok else ["torch"]
    if not ok:
        print(f"GL unavailable ({why}); torch fallback only")
    for backend in backends:
        for res in map(int, args.resolutions.split(",")):
            r = GuidanceRenderer(res, backend=backend)
            r.render_frame(seq, params, 0, sign=sign)  # warm-up (GL context, buffers)
            t0 = time.perf_counter()
            for f in range(n):
                r.render_frame(seq, params, f, sign=sign)
            fps = n / (time.perf_counter() - t0)
            print(
                f"guidance {backend:5s} {res:4d} px: {fps:6.1f} frames/s (depth, normal, semantic, dwpose, mask)"
            )
    with tempfile.TemporaryDirectory() as tmp:
        for res in (256, 512):
            frames = (np.random.default_rng(0).random((n, res, res, 3)) * 255).astype(np.uint8)
            path = Path(tmp) / f"v{res}.mp4"
            write_video(path, frames, 24)
            t0 = time.perf_counter()
            out, _ = read_video(path)
            dt = time.perf_counter() - t0
            t0 = time.perf_counter()
            read_video(path, resolution=res // 2)
            dt2 = time.perf_counter() - t0
            print(
                f"decode {res} px (decord): {len(out) / dt:6.1f} frames/s; "
                f"with resize to {res // 2}: {len(out) / dt2:6.1f}"
            )


if __name__ == "__main__":
    main()
