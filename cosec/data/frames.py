"""The frames stage: raw videos (+ per-frame body parameters) -> numbered PNG frames.

Input:  <raw>/<split>/<video>/{video.mp4 | *.mp4|*.avi|*.mov|*.mkv|*.webm, params/ or smpl_results/, meta.json}
        or, from ingest, frames instead of a video: <video>/{images/NNNN.png, fits or Champ's rendered maps}
Output: <out>/<split>/<video>/{images/NNNN.png, params/NNNN.(npz|npy), meta.json} (+ the maps, same crop)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from cosec.body.params import param_files
from cosec.data.config import FramesConfig
from cosec.data.io import (
    MAP_FOLDERS,
    DataError,
    Problems,
    frame_name,
    list_frames,
    read_png,
    read_video,
    remove_stale,
    replace_dir,
    temp_dir_beside,
    write_json,
    write_png,
)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
PARAM_DIRS = ("params", "smpl_results")


def find_video(folder: Path) -> Path | None:
    if (folder / "video.mp4").is_file():
        return folder / "video.mp4"
    vids = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
    )
    return vids[0] if vids else None


def find_param_dir(folder: Path) -> Path | None:
    for name in PARAM_DIRS:
        if (folder / name).is_dir():
            return folder / name
    return None


def video_folders(root: Path) -> list[tuple[str, Path]]:
    """(split, folder) for every <root>/<split>/<video>/ folder (hidden ones are temporaries)."""
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    out = []
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for vid in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            out.append((split_dir.name, vid))
    return out


def _cover_crop(img: np.ndarray, resolution: int, nearest: bool) -> np.ndarray:
    """As read_video: scale the short side to `resolution`, then centre-crop (nearest for label maps)."""
    from PIL import Image

    h0, w0 = img.shape[:2]
    s = resolution / min(h0, w0)
    h1, w1 = max(resolution, round(h0 * s)), max(resolution, round(w0 * s))
    if (h1, w1) != (h0, w0):
        img = np.asarray(Image.fromarray(img).resize((w1, h1), Image.NEAREST if nearest else Image.BICUBIC))
    top, left = (h1 - resolution) // 2, (w1 - resolution) // 2
    return np.ascontiguousarray(img[top : top + resolution, left : left + resolution])


def read_frame_folder(folder: Path, cfg: FramesConfig) -> tuple[dict[str, list[np.ndarray]], list[int]]:
    """A video given as frames (images/NNNN.png, maybe with Champ's maps): the selected frames of every
    folder, cropped like a decoded video."""
    maps = [m for m in MAP_FOLDERS if (folder / m).is_dir()]
    files = {m: list_frames(folder / m) for m in maps}
    n = len(files["images"])
    if n == 0:
        raise DataError(f"{folder / 'images'}: no PNG frames")
    uneven = {m: len(f) for m, f in files.items() if len(f) != n}
    if uneven:
        raise DataError(f"{folder}: {n} frames in images/ but {uneven}")
    idx = list(range(0, n, cfg.stride))[: cfg.max_frames or None]
    nearest = {"semantic_map", "mask"}  # labels: no blended colours at part borders
    out = {
        m: [_cover_crop(_read_as_stored(files[m][i]), cfg.resolution, m in nearest) for i in idx]
        for m in maps
    }
    return out, idx


def _read_as_stored(path: Path) -> np.ndarray:
    """Grey maps (mask, depth) stay grey, so a passed-through Champ folder keeps its files' format."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            mode = img.mode if img.mode in ("L", "RGB") else "RGB"
    except Exception as err:
        raise DataError(f"{path}: unreadable PNG ({type(err).__name__}: {err})") from err
    return read_png(path, mode=mode)


def extract_video(folder: Path, split: str, cfg: FramesConfig, out_root: Path) -> int:
    """Decode one raw video folder (or copy its frames) into its frames folder; returns the frame count."""
    video = find_video(folder)
    if video is None and (folder / "images").is_dir():
        maps, src_idx = read_frame_folder(folder, cfg)
        frames = maps.pop("images")
    elif video is None:
        raise DataError(f"{folder}: no video file ({', '.join(VIDEO_SUFFIXES)}) and no images/ folder")
    else:
        maps = {}
        frames, src_idx = read_video(video, cfg.resolution, cfg.stride, cfg.max_frames)
    pdir = find_param_dir(folder)
    pfiles = param_files(pdir) if pdir else []
    if pdir is not None and pfiles and len(pfiles) < max(src_idx) + 1:
        raise DataError(
            f"{pdir}: {len(pfiles)} body-parameter files but the video has at least {max(src_idx) + 1} frames"
        )
    meta = {}
    if (folder / "meta.json").is_file():
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{folder / 'meta.json'}: invalid JSON ({err})") from err
    source_file = video.name if video is not None else "images/"
    final = out_root / split / folder.name
    tmp = temp_dir_beside(final)
    try:
        for k, img in enumerate(frames):
            write_png(tmp / "images" / frame_name(k), img)
        for m, imgs in maps.items():
            for k, img in enumerate(imgs):
                write_png(tmp / m / frame_name(k), img)
        if pfiles:
            (tmp / "params").mkdir()
            for k, i in enumerate(src_idx):
                shutil.copyfile(pfiles[i], tmp / "params" / f"{k:04d}{pfiles[i].suffix}")
        meta.update({"split": split, "video": folder.name, "source_frames": list(map(int, src_idx)),
                     "source_video_file": source_file, "resolution": cfg.resolution})  # fmt: skip
        meta.setdefault("source_video", folder.name)
        write_json(tmp / "meta.json", meta)
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(frames)


def check_frame_selection(cfg: FramesConfig) -> None:
    """frames.stride >= 1 and frames.max_frames >= 0 (0 = all): anything else would drop or repeat
    frames silently."""
    for key, value, low, meaning in (("stride", cfg.stride, 1, "keep every stride-th frame"),
                                     ("max_frames", cfg.max_frames, 0, "0 = all frames")):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DataError(f"frames.{key}: must be an integer >= {low} ({meaning}), got {value!r}")


def run_frames(cfg: FramesConfig, log=print) -> Problems:
    """Decode every raw video. Under on_error "skip" a rejected video's output from an earlier run is
    removed, so the guidance stage never picks up stale frames."""
    check_frame_selection(cfg)
    raw, out = Path(cfg.raw), Path(cfg.out)
    problems = Problems("frames")
    folders = video_folders(raw)
    if not folders:
        problems.add(raw, "no <split>/<video>/ folders with videos")
    for split, folder in folders:
        try:
            n = extract_video(folder, split, cfg, out)
            log(f"[frames] {split}/{folder.name}: {n} frames")
        except DataError as err:
            problems.add(folder, str(err), item=f"{split}/{folder.name}")
            if cfg.on_error == "skip" and remove_stale(out / split / folder.name):
                log(f"[frames] {split}/{folder.name}: rejected; removed its output of an earlier run")
    problems.finish(cfg.on_error, out / "rejects_frames.json")
    return problems
