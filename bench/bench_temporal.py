"""Why the temporal term (phase 2, eq. 7) moves nothing: its size, its gradient and what it compares.

Usage (after the teacher stage, optionally phase 1): PYTHONPATH=. python bench/bench_temporal.py
    --teacher models/teacher [--init models/phase1] [--params params.yaml] [--batches 8]

On --batches phase-2 batches (the stage's own data, groups and settings from params.yaml: distill, phase2)
the student (initialised from --init's denoising UNet, as phase 2 is) takes the ReferenceLCM phase-2 step;
printed, as mean (min-max) over batches:
  loss_cd, loss_tmp (weighted by phase2.loss.tmp_weight) and their ratio
  |grad loss_cd|, |grad loss_tmp| over the trainable parameters, the share of the temporal one in the
  summed gradient's norm before clipping, and the cosine between the two gradients
  T matrices (eq. 6, f x f cosine similarities of the consistency outputs' frames): mean off-diagonal
  entry, mean and max |T_ref1 - T_ref2| (what eq. 7 penalises), the same for the ground-truth latents'
  T against the student's (what frame-to-frame jitter against the ground truth's motion would need)
  the temporal term's per-entry Huber value at that difference, against huber_c
and, for each form of the term (phase2.loss tmp_target x tmp_center, at the same tmp_weight, on the same
student outputs): loss_tmp / loss_cd, its gradient's share of the summed gradient's norm (before
clipping) and the cosine of its gradient with loss_cd's. --variants picks the forms (target:center, e.g.
references:false,ground_truth:true).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from cosec.data.datasets import Phase2Dataset
from cosec.distill.batch import prepare_batch
from cosec.distill.recipe import phase2_group
from cosec.distill.referencelcm import ReferenceLCM
from cosec.distill.regularizers import temporal_regularizer, temporal_self_dependency
from cosec.models import ChampModel
from cosec.pipeline.common import read_index
from cosec.pipeline.distill import loss_config
from cosec.pipeline.params import load_params


def _flat(grads, params) -> torch.Tensor:
    return torch.cat(
        [(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params, strict=True)]
    )


VARIANTS = ("references:false", "references:true", "ground_truth:false", "ground_truth:true")


def _name(target: str, center: bool) -> str:
    return f"{'refs' if target == 'references' else 'gt'}{'+center' if center else ''}"


class _Recorder:
    def __init__(self, fn):
        self.fn, self.first = fn, None

    def __call__(self, *args):
        out = self.fn(*args)
        if self.first is None:
            self.first = out
        return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--init", help="phase 1's output (its denoising UNet starts the student)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--tmp-weight", type=float, help="override phase2.loss.tmp_weight")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="target:center forms to compare")
    args = parser.parse_args(argv)
    variants = [(t, c == "true") for t, c in (v.split(":") for v in args.variants.split(","))]
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    stage = params.phase2
    loss = loss_config(2, stage, f"{args.params}:phase2.loss")
    if args.tmp_weight is not None:
        loss = dataclasses.replace(loss, tmp_weight=args.tmp_weight)
    if loss.tmp_weight <= 0:
        raise SystemExit(f"{args.params}: phase2.loss.tmp_weight is {loss.tmp_weight}; give --tmp-weight > 0")
    cfg = dataclasses.replace(params.distill, phase2=loss)
    teacher = ChampModel.from_pretrained(args.teacher)
    init = None
    if args.init:
        init = ChampModel.from_pretrained(args.init).denoising_unet.state_dict()
    lcd = ReferenceLCM(teacher, cfg, student_init=init)
    params_t = lcd.trainable_parameters(2)
    index = read_index(params.common)
    data = Phase2Dataset(params.common.data_root, index, length=10**6, num_frames=stage.data.num_frames,
                         split="train", seed=cfg.seed, resolution=teacher.config.resolution)  # fmt: skip
    sources = index["source_video"]
    gen = torch.Generator().manual_seed(cfg.seed)
    rows, form_rows = [], []
    for b in range(args.batches):
        items = [data[b * stage.data.batch_size + i] for i in range(stage.data.batch_size)]
        batch = prepare_batch(teacher, [phase2_group(it, sources) for it in items])
        # the student's consistency outputs (the step's first consistency call), recorded on the way
        recorder = _Recorder(lcd.consistency)
        lcd.consistency = recorder
        try:
            losses = lcd.phase2_step(batch, generator=gen)
        finally:
            lcd.consistency = recorder.fn
        g, k = batch.groups, batch.num_ras
        f_live = recorder.first.unflatten(0, (g, -1))[:, :k]  # (G, k, C, F, h, w), graph attached
        g_cd = torch.autograd.grad(losses["loss_cd"], params_t, retain_graph=True, allow_unused=True)
        v_cd = _flat(g_cd, params_t)
        forms = {}
        for target, center in variants:  # every form on the same outputs: differences are the form's
            term = loss.tmp_weight * temporal_regularizer(
                f_live, batch.latents.float(), target, center, cfg.distance, cfg.huber_c
            )
            v = _flat(torch.autograd.grad(term, params_t, retain_graph=True, allow_unused=True), params_t)
            forms[_name(target, center)] = {
                "ratio": float(term.detach() / losses["loss_cd"].detach()),
                "share": float(v.norm() / (v_cd + v).norm()),
                "cos": float(torch.nn.functional.cosine_similarity(v_cd, v, dim=0)),
            }
        form_rows.append(forms)
        g_tmp = torch.autograd.grad(losses["loss_tmp"], params_t, allow_unused=True)
        v_tmp = _flat(g_tmp, params_t)
        f = recorder.first.detach().unflatten(0, (g, -1))[:, :k]  # (G, k, C, F, h, w)
        t_mat = temporal_self_dependency(f.flatten(0, 1)).unflatten(0, (g, k))
        t_gt = temporal_self_dependency(batch.latents.float())
        n = t_mat.shape[-1]
        off = ~torch.eye(n, dtype=torch.bool)
        d_ref = (t_mat[:, 0] - t_mat[:, 1]).abs()[:, off]
        d_gt = (t_mat[:, 0] - t_gt).abs()[:, off]
        t_cen = temporal_self_dependency(f.flatten(0, 1), center=True).unflatten(0, (g, k))
        t_gt_cen = temporal_self_dependency(batch.latents.float(), center=True)
        d_ref_cen = (t_cen[:, 0] - t_cen[:, 1]).abs()[:, off]
        d_gt_cen = (t_cen[:, 0] - t_gt_cen).abs()[:, off]
        c = cfg.huber_c
        rows.append({
            "loss_cd": float(losses["loss_cd"].detach()), "loss_tmp": float(losses["loss_tmp"].detach()),
            "grad_cd": float(v_cd.norm()), "grad_tmp": float(v_tmp.norm()),
            "share": float(v_tmp.norm() / (v_cd + v_tmp).norm()),
            "cos": float(torch.nn.functional.cosine_similarity(v_cd, v_tmp, dim=0)),
            "t_off": float(t_mat[:, :, off].mean()), "t_gt_off": float(t_gt[:, off].mean()),
            "d_ref_mean": float(d_ref.mean()), "d_ref_max": float(d_ref.max()),
            "d_gt_mean": float(d_gt.mean()), "d_gt_max": float(d_gt.max()),
            "huber_at_d": float((d_ref.mean() ** 2 + c**2).sqrt() - c),
            "t_cen_off": float(t_cen[:, :, off].mean()), "t_gt_cen_off": float(t_gt_cen[:, off].mean()),
            "d_ref_cen": float(d_ref_cen.mean()), "d_gt_cen": float(d_gt_cen.mean()),
        })  # fmt: skip
        print(f"batch {b}: " + ", ".join(f"{k}={v:.3g}" for k, v in rows[-1].items()), flush=True)
    print(
        f"\nphase-2 settings: tmp_weight {loss.tmp_weight}, distance {cfg.distance} (c = {cfg.huber_c}), "
        f"{stage.data.batch_size} clip(s) of {stage.data.num_frames} frames a batch, {len(rows)} batches"
    )
    for key in rows[0]:
        v = np.array([r[key] for r in rows])
        print(f"{key:>12}: {v.mean():.4g} ({v.min():.4g} - {v.max():.4g})")
    ratio = np.array([r["loss_tmp"] / r["loss_cd"] for r in rows])
    print(f"{'tmp / cd':>12}: {ratio.mean():.4g} ({ratio.min():.4g} - {ratio.max():.4g})")
    print(
        f"\nforms of the term at tmp_weight {loss.tmp_weight} (same outputs), mean (min - max) over batches:"
    )
    print(
        f"{'form':>14} | {'loss_tmp / loss_cd':>26} | {'gradient share':>26} | {'cos with grad loss_cd':>26}"
    )
    for form in form_rows[0]:
        cells = []
        for key in ("ratio", "share", "cos"):
            v = np.array([r[form][key] for r in form_rows])
            cells.append(f"{v.mean():>9.4g} ({v.min():.3g} - {v.max():.3g})".rjust(26))
        print(f"{form:>14} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
