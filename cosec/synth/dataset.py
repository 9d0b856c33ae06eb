"""Writes the embedded synthetic benchmark like a real dataset with fits.

<out>/<split>/<video>/video.mp4        RGB video (anny subject, clothing patterns, background)
<out>/<split>/<video>/params/NNNN.npz  per-frame body parameters (cosec.body.params format)
<out>/<split>/<video>/meta.json        subject, motion family, fps, split

Splits have disjoint subjects: `train`; `dance` (TikTok-like dances and arm moves); `fashion`
(UBC-like: slow turns, fine high-contrast patterns); `wild` (unseen subjects doing motion
families never seen in training).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from cosec.body.anny_body import _R0, POSE_BONES, AnnyBody
from cosec.body.base import BodyParams
from cosec.body.params import save_frame_params
from cosec.data.config import SynthConfig
from cosec.data.io import replace_dir, temp_dir_beside, write_json, write_video
from cosec.render.maps import GuidanceRenderer
from cosec.synth.motions import FAMILIES, TRAIN_FAMILIES, UNSEEN_FAMILIES, make_motion
from cosec.synth.subjects import Subject, sample_subject

SPLIT_FAMILIES = {
    "train": TRAIN_FAMILIES,
    "dance": ("dance", "dance", "arms"),
    "fashion": ("turn",),
    "wild": UNSEEN_FAMILIES,
}
SPLIT_SPEED = {"train": 1.0, "dance": 1.0, "fashion": 0.6, "wild": 1.0}


@dataclass
class VideoSpec:
    split: str
    video: str
    subject: Subject
    family: str
    seed: int


def plan(cfg: SynthConfig) -> list[VideoSpec]:
    """Every video of the benchmark, deterministic under cfg.seed."""
    unknown = set(cfg.test_videos) - set(SPLIT_FAMILIES)
    if unknown:
        raise ValueError(f"synth.test_videos: unknown splits {sorted(unknown)}; known: dance, fashion, wild")
    rng = np.random.default_rng(cfg.seed)
    specs: list[VideoSpec] = []
    n_sub = max(1, min(cfg.train_subjects, cfg.train_videos))
    train_subjects = [sample_subject(f"train_s{i:03d}", rng) for i in range(n_sub)]
    for i in range(cfg.train_videos):
        fam = TRAIN_FAMILIES[i % len(TRAIN_FAMILIES)]
        specs.append(
            VideoSpec(
                "train", f"train_{i:03d}_{fam}", train_subjects[i % n_sub], fam, int(rng.integers(2**31))
            )
        )
    for split, count in cfg.test_videos.items():
        fams = SPLIT_FAMILIES[split]
        for i in range(count):
            subj = sample_subject(f"{split}_s{i:03d}", rng, detailed=(split == "fashion"))
            fam = fams[i % len(fams)]
            specs.append(VideoSpec(split, f"{split}_{i:03d}_{fam}", subj, fam, int(rng.integers(2**31))))
    return specs


def video_params(spec: VideoSpec, cfg: SynthConfig) -> BodyParams:
    """Motion + camera of one video as anny body parameters (camera frame, OpenCV)."""
    rng = np.random.default_rng(spec.seed)
    n = cfg.frames_per_video
    motion = make_motion(spec.family, n, cfg.fps, rng, speed=SPLIT_SPEED[spec.split])
    res = cfg.resolution
    dist = rng.uniform(3.3, 3.9)
    fill = rng.uniform(0.72, 0.86)  # fraction of the frame height the body spans
    focal = fill * res * dist / 1.85
    rot = Rotation.from_matrix(_R0) * Rotation.from_rotvec(
        np.stack([np.zeros(n), np.zeros(n), motion.yaw], 1)
    )
    base = np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.0), dist])
    transl = base[None] + rot.apply(motion.offset)
    if (
        cfg.travel > 0
    ):  # a sideways drift across the frame (its own RNG: travel 0 leaves the videos as they were)
        drift = np.random.default_rng([spec.seed, 1]).uniform(-cfg.travel, cfg.travel)
        transl[:, 0] += drift * np.linspace(-1.0, 1.0, n)
    return BodyParams(
        model="anny", shape=np.asarray(spec.subject.phenotype, np.float32),
        global_orient=rot.as_rotvec().astype(np.float32), body_pose=motion.body_pose,
        transl=transl.astype(np.float32), focal=float(focal), render_res=(res, res), pose_bones=POSE_BONES,
    )  # fmt: skip


def background(res: int, rng: np.random.Generator) -> np.ndarray:
    """A soft two-colour vertical gradient with a floor band (static over the video)."""
    h = rng.random()
    top = np.array(colorsys.hsv_to_rgb(h, rng.uniform(0.1, 0.4), rng.uniform(0.55, 0.9)))
    floor = np.array(colorsys.hsv_to_rgb((h + 0.5) % 1, rng.uniform(0.1, 0.3), rng.uniform(0.3, 0.6)))
    y = np.linspace(0, 1, res)[:, None]
    horizon = rng.uniform(0.7, 0.8)
    wall = top[None] * (1 - 0.3 * y)
    col = np.where(
        y[..., None] < horizon, wall[:, None, :], floor[None, None, :] * (0.8 + 0.2 * y[..., None])
    )
    col = np.broadcast_to(col, (res, res, 3))
    return np.clip(col * 255, 0, 255).astype(np.uint8)


def render_video(
    spec: VideoSpec, cfg: SynthConfig, body: AnnyBody, backend: str = "auto"
) -> tuple[np.ndarray, BodyParams]:
    """(F,H,W,3) uint8 frames and the body parameters they were rendered from."""
    params = video_params(spec, cfg)
    seq = body.pose(params)
    s = max(1, cfg.supersample)
    hi = cfg.resolution * s
    renderer = GuidanceRenderer(hi, backend=backend)
    albedo = spec.subject.albedo_fn(seq.rest_vertices)
    bg = background(hi, np.random.default_rng(spec.seed + 1))
    from cosec.render.maps import outward_sign

    sign = outward_sign(seq.vertices[0].float(), seq.faces)
    frames = []
    for f in range(params.num_frames):
        rgb = renderer.render_frame(seq, params, f, albedo=albedo, background=bg, sign=sign).rgb
        # Area downsampling: each output pixel averages an s x s block (anti-aliased edges).
        small = torch.from_numpy(rgb).float().reshape(cfg.resolution, s, cfg.resolution, s, 3).mean((1, 3))
        frames.append(small.round().clamp(0, 255).byte().numpy())
    return np.stack(frames), params


def write_synthetic_data(cfg: SynthConfig, backend: str = "auto", log=print) -> list[VideoSpec]:
    """Render and write every video; each video folder appears atomically."""
    out = Path(cfg.out)
    body = AnnyBody(cache_dir=cfg.anny_cache)
    specs = plan(cfg)
    for k, spec in enumerate(specs):
        final = out / spec.split / spec.video
        tmp = temp_dir_beside(final)
        frames, params = render_video(spec, cfg, body, backend)
        write_video(tmp / "video.mp4", frames, cfg.fps)
        (tmp / "params").mkdir()
        for f in range(params.num_frames):
            save_frame_params(tmp / "params" / f"{f:04d}.npz", params, f)
        write_json(tmp / "meta.json", {
            "split": spec.split, "video": spec.video, "family": spec.family, "fps": cfg.fps,
            "subject": spec.subject.to_dict(), "seed": spec.seed, "source": "cosec-synth",
        })  # fmt: skip
        replace_dir(tmp, final)
        log(f"[synth] {k + 1}/{len(specs)} {spec.split}/{spec.video}")
    return specs


__all__ = [
    "FAMILIES",
    "SPLIT_FAMILIES",
    "VideoSpec",
    "plan",
    "render_video",
    "video_params",
    "write_synthetic_data",
]
