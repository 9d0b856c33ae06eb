"""The evaluation runner: teacher at N DDIM steps (CFG as Champ, and without CFG) and students at N
LCM steps, on the same references, poses and initial noise, scored with the DisCo protocol.

Frames are scored at `score_size` (DisCo: 256): downscaled when generated larger, never upsampled (a smaller
generation is scored as generated, and the notes say so).

Clips longer than one context window are denoised window by window at every step, as ``cosec animate`` does
(cosec.diffusion.windows; Champ's 24 frames, overlap 4); a clip of at most one window is one plain call."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from cosec.data.datasets import EvalDataset
from cosec.diffusion.student import sample_student
from cosec.diffusion.teacher import sample_teacher
from cosec.diffusion.windows import ContextWindows, decode_frames
from cosec.eval.bootstrap import BootstrapSettings
from cosec.eval.config import EvalProtocol
from cosec.eval.evaluate import Backbones, SplitEvaluator
from cosec.eval.report import MetricsTable
from cosec.models import ChampModel


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """(3,F,H,W) in [-1,1] -> (F,H,W,3) uint8."""
    x = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


def downscale(frames: np.ndarray, size: int, masks: bool = False) -> np.ndarray:
    """(F,H,W,3) uint8 frames (or (F,H,W) bool masks) with the longer side larger than `size` -> that side
    `size`, aspect kept: PIL bicubic (antialiased when reducing) for frames, nearest for masks."""
    from PIL import Image

    h, w = frames.shape[1:3]
    if max(h, w) <= size:
        return frames
    target = (size, round(h * size / w)) if w >= h else (round(w * size / h), size)  # PIL: (width, height)
    if masks:
        return np.stack([np.asarray(Image.fromarray(m).resize(target, Image.NEAREST)) for m in frames])
    return np.stack([np.asarray(Image.fromarray(f).resize(target, Image.BICUBIC)) for f in frames])


@torch.no_grad()
def run_evaluation(
    teacher: ChampModel,
    students: dict[str, nn.Module],
    root,
    index: pd.DataFrame,
    cfg: EvalProtocol,
    progress: bool = True,
    clips: dict[str, dict[str, np.ndarray]] | None = None,
) -> tuple[MetricsTable, dict[str, list[dict]]]:
    """Returns the metrics table and, per split, sample-grid rows (reference, pose, gt, teacher, student).

    clips, when given, receives per split the first video as scored ("ground truth", "teacher" at the most
    steps, "student" at 2): the paper's Fig. 5 heat maps are drawn from it."""
    backbones = Backbones(None if cfg.weights_dir is None else _weights(cfg.weights_dir))
    boot = BootstrapSettings(cfg.ci_resamples, cfg.ci_frechet_resamples, cfg.ci_level, cfg.ci_seed)
    table = MetricsTable()
    grids: dict[str, list[dict]] = {}
    res = teacher.config.resolution
    size = min(res, cfg.score_size)  # square frames: the size every metric sees
    windows = ContextWindows(cfg.window, cfg.window_overlap, cfg.window_stride)
    max_len = teacher.config.motion.max_len
    if cfg.window > max_len and teacher.denoising_unet.has_motion_modules:
        raise ValueError(f"EvalProtocol: window {cfg.window} exceeds the motion modules' {max_len} frames")

    def decode(lat: torch.Tensor) -> np.ndarray:  # VAE in chunks of one window: frames (F,H,W,3) uint8
        return np.concatenate([to_uint8(p[0]) for p in decode_frames(teacher, lat, cfg.window)])

    for split in cfg.splits:
        data = EvalDataset(
            root,
            index,
            split,
            max_frames=cfg.max_frames,
            resolution=res,
            min_gap=cfg.min_gap,
            reference=cfg.reference,
        )
        n = len(data) if cfg.max_videos <= 0 else min(cfg.max_videos, len(data))
        evaluators: dict[tuple[str, int], SplitEvaluator] = {}

        def score(name: str, steps: int, pred: np.ndarray, scored: tuple, evaluators=evaluators) -> None:
            ev = evaluators.setdefault((name, steps), SplitEvaluator(backbones, bootstrap=boot))
            gt, masks, key = scored
            ev.add_video(downscale(pred, cfg.score_size), gt, masks, key=key)

        for v in tqdm(range(n), desc=f"evaluate {split}", disable=not progress):
            item = data[v]
            clip, ref = item["pixel_values"], item["ref_pixels"]
            guidance = {k: g[None] for k, g in item["guidance"].items()}
            gt, masks = to_uint8(clip), item["mask"][0].numpy() > 0.5
            scored_gt = downscale(gt, cfg.score_size)
            # what every model is scored on: ground truth, masks, the clip's key (its features are cached)
            here = (scored_gt, downscale(masks, cfg.score_size, masks=True), (split, v))
            frames = clip.shape[1]
            # once per clip, reused by every model, step and window (windows slice its guidance features)
            cond = teacher.condition(ref[None], guidance)
            lat = teacher.config.latent_size
            shape = (1, 4, frames, lat, lat)
            noise = torch.randn(shape, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + v))
            outputs: dict[str, np.ndarray] = {}
            score("reference", 0, np.repeat(to_uint8(ref[:, None]), frames, axis=0), here)
            for steps in cfg.teacher_steps:
                lat = sample_teacher(
                    teacher,
                    cond,
                    shape,
                    num_steps=steps,
                    guidance_scale=cfg.guidance_scale,
                    latents=noise.clone(),
                    windows=windows,
                )
                outputs[f"teacher@{steps}"] = decode(lat)
                score("teacher", steps, outputs[f"teacher@{steps}"], here)
            for steps in cfg.teacher_nocfg_steps:
                lat = sample_teacher(
                    teacher,
                    cond,
                    shape,
                    num_steps=steps,
                    guidance_scale=1.0,
                    latents=noise.clone(),
                    windows=windows,
                )
                score("teacher_nocfg", steps, decode(lat), here)
            for name, unet in students.items():
                for steps in cfg.student_steps:
                    # LCM re-noises between steps: a seeded generator gives every student the same draws
                    renoise = torch.Generator().manual_seed(cfg.seed * 100_003 + v + 50_000)
                    lat = sample_student(
                        teacher,
                        unet,
                        cond,
                        shape,
                        num_steps=steps,
                        latents=noise.clone(),
                        generator=renoise,
                        renoise=cfg.student_renoise,
                        windows=windows,
                    )
                    outputs[f"{name}@{steps}"] = decode(lat)
                    score(name, steps, outputs[f"{name}@{steps}"], here)
            if v == 0:
                grids[split] = _grid_rows(ref, item["guidance"], gt, outputs, cfg, students)
                if clips is not None:
                    clips[split] = {"ground truth": scored_gt}
                    for label, key in _grid_keys(cfg, students).items():
                        if key is not None:
                            clips[split][label] = downscale(outputs[key], cfg.score_size)
        for (name, steps), ev in sorted(evaluators.items()):
            values, reasons = ev.result()
            values["score_size"] = size
            if res < cfg.score_size:
                reasons["score_size"] = (
                    f"generated at {res} px, below the protocol's {cfg.score_size}: scored at {res} px, not upsampled"
                )
            table.add(split, name, steps, values, reasons)
    return table, grids


def _grid_keys(cfg: EvalProtocol, students) -> dict[str, str | None]:
    """The outputs shown beside the ground truth: the teacher at its most steps, the student at 2."""
    student_name = "student" if "student" in students else next(iter(students), None)
    return {
        "teacher": f"teacher@{max(cfg.teacher_steps)}" if cfg.teacher_steps else None,
        "student": f"{student_name}@2" if student_name and 2 in cfg.student_steps else None,
    }


def _grid_rows(ref, guidance, gt, outputs, cfg: EvalProtocol, students) -> list[dict]:
    pick = np.linspace(0, len(gt) - 1, num=min(cfg.grid_frames, len(gt))).round().astype(int)
    keys = _grid_keys(cfg, students)
    teacher_key, student_key = keys["teacher"], keys["student"]
    ref_img = to_uint8(ref[:, None])[0]
    rows = []
    for f in pick:
        pose = (guidance["semantic_map"][:, f].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        row = {"reference": ref_img, "pose": pose, "ground truth": gt[f]}
        if teacher_key:
            row["teacher"] = outputs[teacher_key][f]
        if student_key:
            row["student"] = outputs[student_key][f]
        rows.append(row)
    return rows


def _weights(folder: str):
    from cosec.eval.backbones import BackboneWeights

    return BackboneWeights(folder)
