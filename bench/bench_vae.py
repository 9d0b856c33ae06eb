"""VAE reconstruction table per split: encode + decode of ground-truth frames, scored in RGB and CIELAB.

Usage (after the data stages, e.g. `dvc repro index`):
  PYTHONPATH=. python bench/bench_vae.py --model models/teacher            # the shipped/trained teacher's VAE
  PYTHONPATH=. python bench/bench_vae.py --train [--steps N] [--flip yes|no] [--permute 0.5] [--hue 0.5]
      [--vae-channels 8,16,32] [--latent-channels 8] [--mse 4 --l1 0.5 --grad 0.5] [--lr 1e-3] [--batch 16]
      # trains a fresh VAE with the params' teacher.vae settings (flags override) through the stage's own
      # VAETrainer and training loop, then scores it
Options: --params FILE (default params.yaml), --frames N per split (0 = all), --grid PNG (ground truth over
reconstruction, a few frames per split), --save DIR (the trained VAE, diffusers layout).

Columns: PSNR (dB) on the padded ground-truth person box (cosec.eval.metrics, as the evaluation) and on the
whole frame; a*b* error = mean over pixels of (|da*| + |db*|) / 2 in CIELAB (D65) on the person mask / the
background; chroma = mean sqrt(a*^2 + b*^2) of the reconstruction (ground truth in brackets).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cosec.data.datasets import _FrameReader
from cosec.eval.metrics import person_box, psnr
from cosec.pipeline.common import read_index
from cosec.pipeline.params import load_params

SPLITS = ("train", "dance", "fashion", "wild")


def srgb_to_lab(img: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) -> CIELAB (..., 3), D65 white."""
    c = img.astype(np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])  # fmt: skip
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) in [-1, 1] -> (B,H,W,3) uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def score(pred: np.ndarray, gt: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """pred, gt (N,H,W,3) uint8; masks (N,H,W) bool."""
    box_psnr = [psnr(*(a[b[0] : b[1], b[2] : b[3]] for a in (p, g))) for p, g, m in zip(pred, gt, masks, strict=True)
                for b in [person_box(m)] if b is not None]  # fmt: skip
    lp, lg = srgb_to_lab(pred), srgb_to_lab(gt)
    ab_err = np.abs(lp[..., 1:] - lg[..., 1:]).mean(-1)
    chroma_p, chroma_g = np.hypot(lp[..., 1], lp[..., 2]), np.hypot(lg[..., 1], lg[..., 2])
    bg = ~masks
    return {
        "psnr_person": float(np.mean(box_psnr)) if box_psnr else float("nan"),
        "psnr_frame": float(np.mean([psnr(p, g) for p, g in zip(pred, gt, strict=True)])),
        "ab_person": float(ab_err[masks].mean()),
        "ab_bg": float(ab_err[bg].mean()),
        "chroma_person": float(chroma_p[masks].mean()),
        "chroma_person_gt": float(chroma_g[masks].mean()),
        "chroma_bg": float(chroma_p[bg].mean()),
        "chroma_bg_gt": float(chroma_g[bg].mean()),
    }


def split_frames(params, split: str, n: int) -> tuple[torch.Tensor, np.ndarray]:
    """Up to n frames of a split (evenly spaced over its rows), (N,3,H,W) in [-1,1], and their masks."""
    index = read_index(params.common)
    res = params.common.model.resolution
    rows = index.index[index["split"] == split].to_numpy()
    if n > 0 and rows.size > n:
        rows = rows[np.linspace(0, rows.size - 1, n).round().astype(int)]
    reader = _FrameReader(params.common.data_root, index, res)
    pix = torch.stack([reader.image(int(r)) for r in rows])
    masks = torch.stack([reader.mask(int(r))[0] for r in rows]).bool().numpy()
    return pix, masks


@torch.no_grad()
def reconstruct(vae, pix: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """Posterior mean -> decode, what the teacher's encode_latents / decode_latents round trip does."""
    out = [
        vae.decode(vae.encode(pix[i : i + batch]).latent_dist.mean).sample for i in range(0, len(pix), batch)
    ]
    return torch.cat(out)


class _Frames(torch.utils.data.Dataset):
    def __init__(self, pix: torch.Tensor):
        self.pix = pix

    def __len__(self):
        return len(self.pix)

    def __getitem__(self, i):
        return {"pixel_values": self.pix[i]}


def train_vae(params, args):
    """A fresh VAE trained like the teacher stage's first part (VAETrainer + the shared loop)."""
    from diffusers import AutoencoderKL

    from cosec.teacher.vae import VAETrainer
    from cosec.train.batches import batch_stream
    from cosec.train.loop import TrainConfig, train

    cfg = params.teacher.vae
    over = {
        "steps": args.steps,
        "lr": args.lr,
        "batch_size": args.batch,
        "flip": args.flip,
        "permute_prob": args.permute,
        "hue_prob": args.hue,
        "mse_weight": args.mse,
        "l1_weight": args.l1,
        "grad_weight": args.grad,
    }
    over = {k: v for k, v in over.items() if v is not None}  # fmt: skip
    cfg = replace(cfg, **over)
    size = params.common.model
    if args.vae_channels:
        size = replace(size, vae_channels=[int(c) for c in args.vae_channels.split(",")])
    if args.vae_layers:
        size = replace(size, vae_layers_per_block=args.vae_layers)
    vae_cfg = size.build_config().vae
    if args.latent_channels:  # the VAE alone: the diffusion models of this repository take 4 latent channels
        vae_cfg["latent_channels"] = args.latent_channels
    torch.manual_seed(params.teacher.seed)
    vae = AutoencoderKL(**vae_cfg)
    trainer = VAETrainer(vae, cfg.kl_weight, cfg.grad_weight, seed=params.teacher.seed, l1_weight=cfg.l1_weight,
                         mse_weight=cfg.mse_weight, sample_posterior=cfg.sample_posterior, flip=cfg.flip,
                         permute_prob=cfg.permute_prob, hue_prob=cfg.hue_prob)  # fmt: skip
    pix, _ = split_frames(params, "train", 0)
    shape = f"{vae_cfg['block_out_channels']} x{vae_cfg['layers_per_block']}, {vae_cfg['latent_channels']} latent ch"
    print(f"training: {cfg} on {len(pix)} train frames, vae {shape}", flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(max_steps=cfg.steps, out_dir=tmp, lr=cfg.lr, seed=params.teacher.seed, desc="vae",
                             checkpoint_every=10**9, keep_last=1, log_every=10**9, progress=False)  # fmt: skip

        def report(step: int, metrics: dict[str, float]) -> None:
            if step % 100 == 0:
                print(f"  step {step}: {metrics} ({time.perf_counter() - t0:.0f} s)", flush=True)

        train(trainer, batch_stream(_Frames(pix), cfg.batch_size, params.teacher.seed), trainer.trainable(), config,
              state={"module": trainer}, callbacks=[report], generators={"step": trainer.generator})  # fmt: skip
    print(f"trained {cfg.steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
    return vae.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a ChampModel folder (models/teacher): score its VAE")
    src.add_argument("--train", action="store_true", help="train a fresh VAE, then score it")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--flip", type=lambda v: v.lower() in ("yes", "true", "1"), help="yes | no")
    parser.add_argument("--permute", type=float, help="share of images with permuted colour channels")
    parser.add_argument("--hue", type=float, help="share of images with a random hue rotation")
    parser.add_argument("--mse", type=float)
    parser.add_argument("--l1", type=float)
    parser.add_argument("--grad", type=float)
    parser.add_argument("--vae-channels", help="comma list, e.g. 8,16,32 (3 blocks = 4x down)")
    parser.add_argument("--vae-layers", type=int, help="VAE layers per block")
    parser.add_argument("--latent-channels", type=int)
    parser.add_argument("--frames", type=int, default=96, help="frames per split, evenly spaced (0 = all)")
    parser.add_argument("--grid", help="write ground truth over reconstruction here (PNG)")
    parser.add_argument("--grid-frames", type=int, default=6)
    parser.add_argument("--save", help="write the trained VAE here")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    if args.model:
        from cosec.models import ChampModel

        vae = ChampModel.from_pretrained(args.model).vae.eval()
    else:
        vae = train_vae(params, args)
        if args.save:
            vae.save_pretrained(args.save)
    print("| split | frames | PSNR person | PSNR frame | a*b* err person | a*b* err bg | chroma person (gt) "
          "| chroma bg (gt) |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    rows = []
    for split in SPLITS:
        pix, masks = split_frames(params, split, args.frames)
        rec = reconstruct(vae, pix)
        gt, pred = to_uint8(pix), to_uint8(rec)
        s = score(pred, gt, masks)
        print(f"| {split} | {len(pix)} | {s['psnr_person']:.1f} | {s['psnr_frame']:.1f} | {s['ab_person']:.1f} | "
              f"{s['ab_bg']:.1f} | {s['chroma_person']:.1f} ({s['chroma_person_gt']:.1f}) | "
              f"{s['chroma_bg']:.1f} ({s['chroma_bg_gt']:.1f}) |", flush=True)  # fmt: skip
        k = np.linspace(0, len(pix) - 1, args.grid_frames).round().astype(int)
        rows.append(np.concatenate([np.concatenate(list(gt[k]), 1), np.concatenate(list(pred[k]), 1)], 0))
    if args.grid:
        Path(args.grid).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(rows, 0)).save(args.grid)
        print(f"grid (rows: per split ground truth, then reconstruction; {', '.join(SPLITS)}) -> {args.grid}")


if __name__ == "__main__":
    main()
