"""Torch datasets over a Champ-layout root and its index.

Conventions (docs/data.md): images (3,H,W) float in [-1,1]; guidance maps (3,H,W) in [0,1]
under keys depth, normal, semantic_map, dwpose; mask (1,H,W) in {0,1}. Clips put channels
before frames, as the model API: (3,F,H,W) and (1,F,H,W).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from cosec.data.index import Phase1Sampler, Phase2Sampler
from cosec.data.io import read_png
from cosec.render.maps import GUIDANCE_TYPES


class _FrameReader:
    def __init__(self, root: str | Path, index: pd.DataFrame, resolution: int | None = None):
        self.root = Path(root)
        self.index = index
        self.resolution = resolution

    def _load(self, row: int, col: str, mode: str) -> np.ndarray:
        arr = read_png(self.root / self.index.at[row, col], mode=mode)
        if self.resolution and arr.shape[:2] != (self.resolution, self.resolution):
            resample = Image.NEAREST if col in ("mask", "semantic_map") else Image.BILINEAR
            arr = np.asarray(Image.fromarray(arr).resize((self.resolution, self.resolution), resample))
        return arr

    def image(self, row: int) -> torch.Tensor:
        x = torch.from_numpy(self._load(row, "images", "RGB").copy()).permute(2, 0, 1).float()
        return x / 127.5 - 1.0

    def guidance(self, row: int) -> dict[str, torch.Tensor]:
        return {g: torch.from_numpy(self._load(row, g, "RGB").copy()).permute(2, 0, 1).float() / 255.0
                for g in GUIDANCE_TYPES}  # fmt: skip

    def mask(self, row: int) -> torch.Tensor:
        return (torch.from_numpy(self._load(row, "mask", "L").copy()) > 127).float()[None]

    def images(self, rows) -> torch.Tensor:
        return torch.stack([self.image(r) for r in rows])

    def clip(self, rows) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """(3,F,H,W) pixels, guidance dict of (3,F,H,W), (1,F,H,W) mask."""
        pix = torch.stack([self.image(r) for r in rows], dim=1)
        gs = [self.guidance(r) for r in rows]
        guid = {g: torch.stack([x[g] for x in gs], dim=1) for g in GUIDANCE_TYPES}
        mask = torch.stack([self.mask(r) for r in rows], dim=1)
        return pix, guid, mask


def _split(index: pd.DataFrame, split: str | None) -> pd.DataFrame:
    return index if split is None else index[index["split"] == split]


class TeacherDataset(Dataset):
    """Single frames for teacher (stage-1) training: target frame, a reference frame drawn from the
    same source video (Champ's recipe), the target's guidance and mask."""

    def __init__(
        self,
        root,
        index: pd.DataFrame,
        split: str | None = "train",
        seed: int = 0,
        resolution: int | None = None,
    ):
        self.reader = _FrameReader(root, index, resolution)
        self.rows = _split(index, split).index.to_numpy()
        if self.rows.size == 0:
            raise ValueError(f"no frames in split '{split}'")
        self.by_source = {s: g.index.to_numpy() for s, g in _split(index, split).groupby("source_video")}
        self.index, self.seed = index, seed

    def __len__(self) -> int:
        return int(self.rows.size)

    def __getitem__(self, i: int) -> dict:
        row = int(self.rows[i])
        same = self.by_source[self.index.at[row, "source_video"]]
        rng = np.random.default_rng([self.seed, i])
        others = same[same != row]
        ref = int(rng.choice(others)) if others.size else row
        r = self.reader
        return {
            "pixel_values": r.image(row), "ref_pixels": r.image(ref), "guidance": r.guidance(row),
            "mask": r.mask(row), "row": row, "ref_row": ref,
        }  # fmt: skip


class Phase1Dataset(Dataset):
    """Phase-1 groups: target, its guidance, k RAS and m ERS reference images."""

    def __init__(self, root, index: pd.DataFrame, length: int, k_ras: int = 2, m_ers: int = 2, window: int = 8,
                 split: str | None = "train", seed: int = 0, resolution: int | None = None):  # fmt: skip
        self.reader = _FrameReader(root, index, resolution)
        self.sampler = Phase1Sampler(index, k_ras, m_ers, window, split, seed)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        g = self.sampler.group(i)
        r = self.reader
        return {
            "pixel_values": r.image(g.target), "guidance": r.guidance(g.target), "mask": r.mask(g.target),
            "ras_refs": r.images(g.ras), "ers_refs": r.images(g.ers),
            "row": g.target, "ras_rows": torch.tensor(g.ras), "ers_rows": torch.tensor(g.ers),
        }  # fmt: skip


class Phase2Dataset(Dataset):
    """Phase-2 clips: f frames at a stride with their guidance, plus pairs of RAS references."""

    def __init__(self, root, index: pd.DataFrame, length: int, num_frames: int = 8, stride: int = 1, pairs: int = 1,
                 split: str | None = "train", seed: int = 0, resolution: int | None = None):  # fmt: skip
        self.reader = _FrameReader(root, index, resolution)
        self.sampler = Phase2Sampler(index, num_frames, stride, pairs, split, seed)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        c = self.sampler.clip(i)
        pix, guid, mask = self.reader.clip(c.frames)
        flat = [x for pair in c.ras_pairs for x in pair]
        refs = self.reader.images(flat).view(len(c.ras_pairs), 2, *pix.shape[:1], *pix.shape[2:])
        return {"pixel_values": pix, "guidance": guid, "mask": mask, "ras_refs": refs,
                "rows": torch.tensor(c.frames), "ras_rows": torch.tensor(c.ras_pairs)}  # fmt: skip


REFERENCE_CHOICES = ("first", "least_overlap")


class EvalDataset(Dataset):
    """One item per test video: a reference frame, then a clip of frames with their guidance and
    masks (the masks restrict person metrics).

    ``reference="first"`` takes frame ``ref_frame`` as the reference and the clip from the frames at
    least ``min_gap`` frames away from it. ``reference="least_overlap"`` keeps that clip and then
    picks, among all the video's frames outside the clip, the one whose person mask overlaps the
    clip's masks least (lowest mean IoU): the pose and place of the person really differ between
    reference and targets, so copying the reference cannot score well (motions that return to
    their starting pose would otherwise hand the first frame most of the answer)."""

    def __init__(self, root, index: pd.DataFrame, split: str, ref_frame: int = 0, max_frames: int = 0,
                 resolution: int | None = None, min_gap: int = 1, reference: str = "first"):  # fmt: skip
        if reference not in REFERENCE_CHOICES:
            raise ValueError(f"reference must be one of {REFERENCE_CHOICES}, got {reference!r}")
        self.reader = _FrameReader(root, index, resolution)
        df = _split(index, split)
        if df.empty:
            raise ValueError(f"no frames in split '{split}'")
        self.videos = [
            (v, g.sort_values("frame").index.to_numpy()) for v, g in df.groupby("video", sort=True)
        ]
        self.ref_frame, self.max_frames, self.index = ref_frame, max_frames, index
        self.min_gap = max(1, min_gap)
        self.reference = reference

    def __len__(self) -> int:
        return len(self.videos)

    def frames(self, i: int) -> tuple[int, list[int]]:
        """(reference row, clip rows) of video i, as index rows."""
        clip = self._clip_rows(i)
        return self._reference_row(i, clip), clip

    def _clip_rows(self, i: int) -> list[int]:
        video, rows = self.videos[i]
        pos = min(self.ref_frame, len(rows) - 1)
        clip = [int(r) for k, r in enumerate(rows) if abs(k - pos) >= self.min_gap]
        if not clip:
            raise ValueError(
                f"{video}: no frame is {self.min_gap} or more frames from the reference "
                f"(the video has {len(rows)} frames)"
            )
        return clip[: self.max_frames] if self.max_frames else clip

    def _reference_row(self, i: int, clip: list[int], clip_masks: torch.Tensor | None = None) -> int:
        """The reference row; least_overlap uses the clip's (F,H,W) masks, read here unless given."""
        rows = self.videos[i][1]
        if self.reference != "least_overlap":
            return int(rows[min(self.ref_frame, len(rows) - 1)])
        if clip_masks is None:
            clip_masks = torch.cat([self.reader.mask(r) for r in clip])
        return self._least_overlap([int(r) for r in rows if int(r) not in clip], clip_masks)

    def _least_overlap(self, candidates: list[int], clip_masks: torch.Tensor) -> int:
        """The candidate whose mask has the lowest mean IoU with the clip's masks (candidates: never empty)."""
        clip_masks = clip_masks.bool()[None]  # (1,F,H,W)
        cand_masks = torch.cat([self.reader.mask(r) for r in candidates]).bool()[:, None]  # (C,1,H,W)
        inter = (clip_masks & cand_masks).flatten(2).sum(2).float()
        union = (clip_masks | cand_masks).flatten(2).sum(2).float().clamp(min=1)
        return candidates[int((inter / union).mean(1).argmin())]

    def __getitem__(self, i: int) -> dict:
        video = self.videos[i][0]
        clip = self._clip_rows(i)
        pix, guid, mask = self.reader.clip(clip)
        ref = self._reference_row(i, clip, mask[0])  # the clip's masks, read once
        names = [Path(self.index.at[r, "images"]).name for r in clip]
        return {"ref_pixels": self.reader.image(ref), "pixel_values": pix, "guidance": guid, "mask": mask,
                "video": video, "frame_names": names, "ref_name": Path(self.index.at[ref, "images"]).name}  # fmt: skip
