"""Does the teacher animate the reference? Same pose and noise, the video's own reference vs another video's.

Usage (after the teacher stage): PYTHONPATH=. python bench/bench_reference.py --model models/teacher
    [--params params.yaml] [--steps 20] [--cfg 3.5] [--frames 4] [--grid reports/reference_swap.png]

For every test video A of every split, B is the next video of the split (cyclic). The clip of A (the
evaluation protocol's clip and reference choice, first --frames frames) is sampled from one noise with A's
pose and (a) A's reference, (b) B's reference, (c) A's reference with the CLIP token zeroed (bank only).
Printed per split (means over videos; pixels 0-255, CIELAB D65):
  swap diff      mean |out(a) - out(b)| over the frame and on A's person mask
  clip diff      mean |out(a) - out(c)|: what the CLIP token adds
  a*b* err own / swapped   mean (|da*| + |db*|) / 2 to A's ground truth on A's person mask, for (a) / (b)
  follows        share of videos where out(b)'s mean person (a*, b*) is nearer B's reference person than A's
  vae            the same a*b* error of the VAE round trip of the ground truth: the floor of (a)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from bench.bench_vae import srgb_to_lab, to_uint8
from cosec.data.datasets import EvalDataset
from cosec.diffusion.teacher import sample_teacher
from cosec.models import ChampModel, Conditioning
from cosec.pipeline.common import read_index
from cosec.pipeline.params import load_params


def _frames(x: torch.Tensor) -> np.ndarray:
    """(1,3,F,H,W) or (3,F,H,W) in [-1, 1] -> (F,H,W,3) uint8."""
    x = x[0] if x.ndim == 5 else x
    return to_uint8(x.transpose(0, 1))


def _ab_err(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    return float(np.abs(srgb_to_lab(pred)[..., 1:] - srgb_to_lab(gt)[..., 1:]).mean(-1)[mask].mean())


def _mean_ab(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return srgb_to_lab(img)[..., 1:][mask].mean(0)


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=3.5)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument(
        "--grid", help="PNG: per video, rows ground truth / own reference / swapped reference"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    proto = params.evaluate.protocol
    model = ChampModel.from_pretrained(args.model)
    index = read_index(params.common)
    res, lat = model.config.resolution, model.config.latent_size
    print(
        "| split | videos | swap diff frame / person | clip diff | a*b* err own / swapped | follows | vae |"
    )
    print("|---|---|---|---|---|---|---|")
    grid = []
    for split in proto.splits:
        ds = EvalDataset(params.common.data_root, index, split, max_frames=args.frames, resolution=res,
                         min_gap=proto.min_gap, reference=proto.reference)  # fmt: skip
        items = [ds[i] for i in range(len(ds))]
        rows = []
        for i, a in enumerate(items):
            b = items[(i + 1) % len(items)]
            f = a["pixel_values"].shape[1]
            guidance = {k: v[None] for k, v in a["guidance"].items()}
            noise = torch.randn((1, 4, f, lat, lat), generator=torch.Generator().manual_seed(proto.seed + i))

            def run(cond: Conditioning) -> np.ndarray:
                z = sample_teacher(model, cond, noise.shape, args.steps, args.cfg, latents=noise.clone())  # noqa: B023
                return _frames(model.decode_latents(z))

            cond_a = model.condition(a["ref_pixels"][None], guidance)
            cond_b = model.condition(b["ref_pixels"][None], guidance)
            out_a, out_b = run(cond_a), run(cond_b)
            out_c = run(
                Conditioning(torch.zeros_like(cond_a.clip_embeds), cond_a.bank, cond_a.guidance_features)
            )
            gt = _frames(a["pixel_values"])
            vae = _frames(model.decode_latents(model.encode_latents(a["pixel_values"][None])))
            mask = a["mask"][0].bool().numpy()
            ref_a, ref_b = _frames(a["ref_pixels"][:, None])[0], _frames(b["ref_pixels"][:, None])[0]
            ra, _ = ds.frames(i)  # the references' own person masks, from their rows
            rb, _ = ds.frames((i + 1) % len(items))
            m_a, m_b = (ds.reader.mask(r)[0].bool().numpy() for r in (ra, rb))
            ab_out_b = _mean_ab(out_b, mask)
            d = np.abs(out_a.astype(float) - out_b.astype(float))
            rows.append({
                "swap": d.mean(), "swap_person": d[mask].mean(),
                "clip": np.abs(out_a.astype(float) - out_c.astype(float)).mean(),
                "own": _ab_err(out_a, gt, mask), "swapped": _ab_err(out_b, gt, mask), "vae": _ab_err(vae, gt, mask),
                "follows": float(np.linalg.norm(ab_out_b - _mean_ab(ref_b, m_b))
                                 < np.linalg.norm(ab_out_b - _mean_ab(ref_a, m_a))),
            })  # fmt: skip
            if args.grid and len(grid) < 6:
                refs = np.concatenate([ref_a, np.zeros_like(ref_a), ref_b], 0)
                grid.append(np.concatenate([refs, np.concatenate([np.concatenate(list(x), 1)
                                                                  for x in (gt, out_a, out_b)], 0)], 1))  # fmt: skip
        m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(f"| {split} | {len(rows)} | {m['swap']:.1f} / {m['swap_person']:.1f} | {m['clip']:.1f} | "
              f"{m['own']:.1f} / {m['swapped']:.1f} | {m['follows']:.2f} | {m['vae']:.1f} |", flush=True)  # fmt: skip
    if args.grid:
        Image.fromarray(np.concatenate(grid, 0)).save(args.grid)
        print(
            f"grid -> {args.grid} (per video: column 1 references A, -, B; then rows ground truth, own, swapped)"
        )


if __name__ == "__main__":
    main()
