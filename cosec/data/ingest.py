"""The ingest stage: bring real data into the pipeline.

Two accepted inputs (layout "auto" detects which):
- a Champ-layout folder, <source>/[<split>/]<video>/{images,depth,normal,semantic_map,dwpose,mask}/NNNN.png,
  validated and copied to `champ_out` (then: guidance passes it through, index);
- raw videos with SMPL fits, <source>/[<split>/]<video>/{<video file>, smpl_results/NNNN.npy | params/NNNN.npz},
  or <source>/[<split>/]<name>.mp4 with a sibling folder <name>/ holding the fits; copied to `raw_out`
  (then: frames, guidance, index).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cosec.body.base import BodyParamError
from cosec.body.params import param_files
from cosec.data.config import IngestConfig
from cosec.data.frames import PARAM_DIRS, VIDEO_SUFFIXES, find_param_dir, find_video
from cosec.data.guidance import check_champ_video, load_params_checked
from cosec.data.io import (
    MAP_FOLDERS,
    DataError,
    Problems,
    read_video,
    remove_stale,
    replace_dir,
    temp_dir_beside,
)


def _is_champ_video(d: Path) -> bool:
    return (d / "images").is_dir() and any((d / m).is_dir() for m in MAP_FOLDERS[1:])


def _is_raw_video(d: Path) -> bool:
    return d.is_dir() and (find_video(d) is not None or any((d / p).is_dir() for p in PARAM_DIRS))


def discover(source: Path, default_split: str) -> list[tuple[str, Path]]:
    """(split, item) pairs; item is a video folder, or a bare video file (fits in a sibling folder)."""
    if not source.is_dir():
        raise DataError(f"{source}: source folder not found")

    def items_in(folder: Path):
        dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        vids = sorted(
            p
            for p in folder.iterdir()
            if p.suffix.lower() in VIDEO_SUFFIXES and not (folder / p.stem).is_dir()
        )
        return [d for d in dirs if _is_champ_video(d) or _is_raw_video(d)] + vids

    top = items_in(source)
    if top:
        return [(default_split, it) for it in top]
    out = []
    for split_dir in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
        out += [(split_dir.name, it) for it in items_in(split_dir)]
    return out


def check_raw_video(item: Path) -> tuple[Path, Path]:
    """A video with one valid body-parameter file per frame; returns (video, param folder)."""
    if item.is_file():
        raise DataError(
            f"{item}: video has no SMPL fits. Needed: a folder {item.parent / item.stem}/ holding the video and "
            "smpl_results/NNNN.npy (one 4D-Humans/Champ fit per frame) or params/NNNN.npz; or give a "
            "Champ-layout folder with rendered guidance maps"
        )
    video = find_video(item)
    if video is None:
        raise DataError(f"{item}: no video file ({', '.join(VIDEO_SUFFIXES)})")
    pdir = find_param_dir(item)
    if pdir is None or not param_files(pdir):
        raise DataError(
            f"{item}: video {video.name} has no SMPL fits. Needed: {item}/smpl_results/NNNN.npy (one "
            "4D-Humans/Champ fit per frame, e.g. from Champ's generate_smpls step) or params/NNNN.npz"
        )
    frames, _ = read_video(video, resolution=None, stride=1)
    files = param_files(pdir)
    errors = []
    if len(files) != len(frames):
        errors.append(f"{pdir}: {len(files)} fit files for {len(frames)} video frames in {video.name}")
    for f in files:
        try:
            load_params_checked(f)
        except BodyParamError as err:
            errors.append(str(err))
    if errors:
        raise DataError("; ".join(errors))
    return video, pdir


def run_ingest(cfg: IngestConfig, log=print) -> Problems:
    source = Path(cfg.source)
    problems = Problems("ingest")
    items = discover(source, cfg.split) if source.is_dir() else []
    if not source.is_dir():
        problems.add(source, "source folder not found")
    elif not items:
        problems.add(source, "no videos found (expected Champ-layout video folders or videos with SMPL fits)")
    for split, item in items:
        champ = _is_champ_video(item) if item.is_dir() else False
        layout = cfg.layout if cfg.layout != "auto" else ("champ" if champ else "raw")
        try:
            if layout == "champ":
                check_champ_video(item)
                dest = Path(cfg.champ_out) / split / item.name
                tmp = temp_dir_beside(dest)
                shutil.rmtree(tmp)
                shutil.copytree(item, tmp)
            elif layout == "raw":
                video, pdir = check_raw_video(item)
                dest = Path(cfg.raw_out) / split / item.name
                tmp = temp_dir_beside(dest)
                shutil.copyfile(video, tmp / f"video{video.suffix.lower()}")
                shutil.copytree(pdir, tmp / pdir.name)
                if (item / "meta.json").is_file():
                    shutil.copyfile(item / "meta.json", tmp / "meta.json")
            else:
                raise ValueError(f"ingest.layout must be auto, champ or raw, got '{cfg.layout}'")
            replace_dir(tmp, dest)
            log(f"[ingest] {split}/{item.name} ({layout})")
        except DataError as err:
            problems.add(item, str(err), item=f"{split}/{item.name}")
            if cfg.on_error == "skip" and layout in ("champ", "raw"):
                # an earlier ingest of this video must not flow on to the next stages
                stale = Path(cfg.champ_out if layout == "champ" else cfg.raw_out) / split / item.name
                if remove_stale(stale):
                    log(f"[ingest] {split}/{item.name}: rejected; removed its earlier ingested copy")
    rejects_dir = Path(cfg.raw_out if cfg.layout != "champ" else cfg.champ_out)
    problems.finish(cfg.on_error, rejects_dir / "rejects_ingest.json")
    return problems
