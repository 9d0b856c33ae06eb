"""The index stage: one parquet row per frame of a Champ-layout root, and the RAS/ERS samplers.

Columns: split, video, frame (position in the video, 0-based), num_frames, t (temporal position
in [0,1]), source_video (the RAS/ERS identity: frames of one source video are intra-source),
subject, width, height, and one path column per folder (images, depth, normal, semantic_map,
dwpose, mask), relative to the root.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cosec.data.config import IndexConfig
from cosec.data.frames import video_folders
from cosec.data.guidance import check_champ_video
from cosec.data.io import MAP_FOLDERS, DataError, Problems, list_frames, write_bytes_atomic

PATH_COLUMNS = MAP_FOLDERS


def build_index(cfg: IndexConfig, log=print) -> tuple[pd.DataFrame, Problems]:
    root = Path(cfg.root)
    problems = Problems("index")
    rows = []
    folders = video_folders(root)
    if not folders:
        problems.add(root, "no <split>/<video>/ folders")
    for split, folder in folders:
        try:
            n, (w, h) = check_champ_video(folder)
        except DataError as err:
            problems.add(folder, str(err), item=f"{split}/{folder.name}")
            continue
        meta = {}
        if (folder / "meta.json").is_file():
            meta = json.loads((folder / "meta.json").read_text())
        subject = meta.get("subject")
        subject_id = subject.get("subject_id") if isinstance(subject, dict) else subject
        names = {m: [f.name for f in list_frames(folder / m)] for m in MAP_FOLDERS}
        for k in range(n):
            row = {
                "split": split, "video": folder.name, "frame": k, "num_frames": n,
                "t": k / max(1, n - 1), "source_video": str(meta.get("source_video", folder.name)),
                "subject": str(subject_id or ""), "width": w, "height": h,
            }  # fmt: skip
            for m in MAP_FOLDERS:
                row[m] = f"{split}/{folder.name}/{m}/{names[m][k]}"
            rows.append(row)
        log(f"[index] {split}/{folder.name}: {n} frames")
    df = pd.DataFrame(rows, columns=["split", "video", "frame", "num_frames", "t", "source_video", "subject",
                                     "width", "height", *PATH_COLUMNS])  # fmt: skip
    if not df.empty and df["width"].nunique() * df["height"].nunique() > 1:
        sizes = df.groupby(["width", "height"])["video"].unique().to_dict()
        problems.add(
            root,
            f"videos have different resolutions: { {f'{k[0]}x{k[1]}': list(v)[:5] for k, v in sizes.items()} }",
        )
    problems.finish(cfg.on_error, Path(cfg.out).with_suffix(".rejects.json"))
    if problems.bad_items():
        bad = problems.bad_items()
        df = df[~(df["split"] + "/" + df["video"]).isin(bad)].reset_index(drop=True)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    write_bytes_atomic(cfg.out, buf.getvalue())
    return df, problems


def load_index(path: str | Path) -> pd.DataFrame:
    """The frame table the index stage wrote; a missing or unreadable file is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: index not found; run `dvc repro index` first")
    try:
        return pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - any reader failure means the file is not an index
        raise DataError(
            f"{path}: not a readable index ({type(err).__name__}: {err}); rerun the index stage"
        ) from err


@dataclass
class Phase1Group:
    """Row numbers (into the index) of a phase-1 group: the target frame (its pose is the
    guidance), k RAS references from the same source video within the temporal window, and
    m ERS references from other source videos."""

    target: int
    ras: list[int]
    ers: list[int]


@dataclass
class Phase2Clip:
    """Row numbers of a clip (f frames at a stride) and pairs of RAS references (same source)."""

    frames: list[int]
    ras_pairs: list[tuple[int, int]]


class _Base:
    def __init__(self, index: pd.DataFrame, split: str | None = "train", seed: int = 0):
        df = index if split is None else index[index["split"] == split]
        if df.empty:
            raise DataError(f"index has no frames in split '{split}'")
        self.index = index
        self.rows = df.index.to_numpy()
        self.seed = seed
        self.by_source = {s: g.index.to_numpy() for s, g in df.groupby("source_video", sort=True)}
        self.by_video = {
            v: g.sort_values("frame").index.to_numpy() for v, g in df.groupby("video", sort=True)
        }

    def rng(self, i: int) -> np.random.Generator:
        # One generator per (seed, draw number): draw i is the same whatever was drawn before.
        return np.random.default_rng([self.seed, i])


class Phase1Sampler(_Base):
    """Draws phase-1 groups (Eq. for R_spt: ETA over RAS references, CoNS over ERS ones)."""

    def __init__(self, index: pd.DataFrame, k_ras: int = 2, m_ers: int = 2, window: int = 8,
                 split: str | None = "train", seed: int = 0):  # fmt: skip
        super().__init__(index, split, seed)
        if len(self.by_source) < 2 and m_ers > 0:
            raise DataError("ERS references need at least two source videos in the split")
        self.k_ras, self.m_ers, self.window = k_ras, m_ers, window

    def group(self, i: int) -> Phase1Group:
        rng = self.rng(i)
        target = int(rng.choice(self.rows))
        row = self.index.loc[target]
        same = self.by_source[row["source_video"]]
        frames = self.index.loc[same, "frame"].to_numpy()
        videos = self.index.loc[same, "video"].to_numpy()
        # The window is measured within the target's own video (a source may hold several clips).
        near = same[
            (videos == row["video"]) & (np.abs(frames - row["frame"]) <= self.window) & (same != target)
        ]
        if near.size == 0:
            near = same[same != target]
        if near.size == 0:
            near = np.array([target])  # a one-frame video: the target is its own reference
        ras = rng.choice(near, size=self.k_ras, replace=near.size < self.k_ras).tolist()
        others = [s for s in self.by_source if s != row["source_video"]]
        ers = []
        for _ in range(self.m_ers):
            src = others[int(rng.integers(len(others)))]
            ers.append(int(rng.choice(self.by_source[src])))
        return Phase1Group(target, [int(r) for r in ras], ers)

    def groups(self, n: int, start: int = 0) -> list[Phase1Group]:
        return [self.group(i) for i in range(start, start + n)]


class Phase2Sampler(_Base):
    """Draws phase-2 clips: f frames at `stride` from one video, plus pairs of RAS references."""

    def __init__(self, index: pd.DataFrame, num_frames: int = 8, stride: int = 1, pairs: int = 1,
                 split: str | None = "train", seed: int = 0):  # fmt: skip
        super().__init__(index, split, seed)
        self.num_frames, self.stride, self.pairs = num_frames, stride, pairs
        span = (num_frames - 1) * stride + 1
        self.videos = [v for v, r in self.by_video.items() if len(r) >= span]
        if not self.videos:
            raise DataError(f"no video has the {span} frames a clip of {num_frames} at stride {stride} needs")

    def clip(self, i: int) -> Phase2Clip:
        rng = self.rng(i)
        video = self.videos[int(rng.integers(len(self.videos)))]
        rows = self.by_video[video]
        span = (self.num_frames - 1) * self.stride + 1
        start = int(rng.integers(len(rows) - span + 1))
        frames = rows[start : start + span : self.stride].tolist()
        same = self.by_source[self.index.loc[rows[0], "source_video"]]
        pairs = []
        for _ in range(self.pairs):
            a, b = rng.choice(same, size=2, replace=same.size < 2)
            pairs.append((int(a), int(b)))
        return Phase2Clip([int(f) for f in frames], pairs)

    def clips(self, n: int, start: int = 0) -> list[Phase2Clip]:
        return [self.clip(i) for i in range(start, start + n)]
