"""The guidance stage: body parameters -> Champ-layout guidance maps, plus contact sheets.

Input:  <frames>/<split>/<video>/{images/, params/ | smpl_results/, meta.json}
        (or a Champ-layout folder from ingest, whose maps are validated and passed through)
Output: <out>/<split>/<video>/{images,depth,normal,semantic_map,dwpose,mask}/NNNN.png, meta.json
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from cosec.body import make_body
from cosec.body.base import BodyParamError
from cosec.body.params import load_frame_params, param_files, stack_frames
from cosec.data.config import GuidanceConfig
from cosec.data.frames import find_param_dir, video_folders
from cosec.data.io import (
    MAP_FOLDERS,
    DataError,
    Problems,
    frame_name,
    list_frames,
    read_png,
    remove_stale,
    replace_dir,
    temp_dir_beside,
    write_json,
    write_png,
)
from cosec.render.maps import GuidanceRenderer, outward_sign

GUIDANCE_FOLDERS = ("depth", "normal", "semantic_map", "dwpose", "mask")


def check_images(
    folder: Path, name: str = "images", size: tuple[int, int] | None = None
) -> tuple[list[Path], tuple[int, int]]:
    """Every PNG of folder/name decodes and has one resolution; returns files and (W,H)."""
    files = list_frames(folder / name)
    if not files:
        raise DataError(f"{folder / name}: no PNG frames (missing or empty folder)")
    errors = []
    for f in files:
        try:
            img = read_png(f, mode="RGB", size=size)
            size = size or (img.shape[1], img.shape[0])
        except DataError as err:
            errors.append(str(err))
    if errors:
        raise DataError("; ".join(errors))
    return files, size


def check_champ_video(folder: Path) -> tuple[int, tuple[int, int]]:
    """A Champ-layout video: all six folders, equal frame counts, same names, readable PNGs."""
    missing = [m for m in MAP_FOLDERS if not (folder / m).is_dir()]
    if missing:
        raise DataError(f"{folder}: missing guidance folder(s) {missing}")
    counts = {m: len(list_frames(folder / m)) for m in MAP_FOLDERS}
    if len(set(counts.values())) != 1:
        raise DataError(f"{folder}: folders have different frame counts {counts}")
    names = [f.name for f in list_frames(folder / "images")]
    for m in MAP_FOLDERS[1:]:
        if [f.name for f in list_frames(folder / m)] != names:
            raise DataError(f"{folder / m}: frame file names differ from images/")
    _, size = check_images(folder, "images")
    for m in MAP_FOLDERS[1:]:
        check_images(folder, m, size)
    return counts["images"], size


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


class _Bodies:
    """Body backends built on first use (anny's load is not free) and reused for every video."""

    def __init__(self, cfg: GuidanceConfig):
        self.cfg = cfg
        self.cache: dict[str, object] = {}

    def get(self, model: str):
        if model not in self.cache:
            self.cache[model] = make_body(
                model, self.cfg.anny_cache, self.cfg.smpl_model_path, self.cfg.smpl_gender
            )
        return self.cache[model]


def load_params_checked(path: Path) -> dict:
    """load_frame_params with every failure as a BodyParamError naming the file: a malformed file (wrong
    types, empty arrays, a pickle of something else) rejects its video only, never the whole stage."""
    try:
        return load_frame_params(path)
    except BodyParamError:
        raise
    except (ValueError, TypeError, IndexError, AttributeError, KeyError, OSError) as err:
        raise BodyParamError(f"{path}: malformed body-parameter file ({type(err).__name__}: {err})") from err


def render_video_maps(
    folder: Path, final: Path, cfg: GuidanceConfig, bodies: _Bodies
) -> dict[str, np.ndarray]:
    """Render one video's maps into `final` (atomically); returns a few frames for the sheet."""
    files, (w, h) = check_images(folder)
    pdir = find_param_dir(folder)
    pfiles = param_files(pdir)
    if len(pfiles) != len(files):
        raise DataError(
            f"{pdir}: {len(pfiles)} body-parameter files for {len(files)} frames in {folder / 'images'}"
        )
    frames, errors = [], []
    for p in pfiles:
        try:
            frames.append(load_params_checked(p))
        except BodyParamError as err:
            errors.append(str(err))
    if errors:
        raise DataError("; ".join(errors))
    try:
        params = stack_frames(frames, str(pdir))
    except BodyParamError as err:
        raise DataError(str(err)) from err
    if cfg.shape_from:
        try:
            params = params.with_shape(load_params_checked(Path(cfg.shape_from))["shape"])
        except BodyParamError as err:
            raise DataError(str(err)) from err
    try:
        body = bodies.get(params.model)
        seq = body.pose(params, str(pdir))
    except BodyParamError as err:
        raise DataError(str(err)) from err
    renderer = GuidanceRenderer(w, h, backend=cfg.backend)
    sign = outward_sign(seq.vertices[0].float(), seq.faces)
    sheet_idx = set(np.linspace(0, len(files) - 1, max(1, cfg.contact_frames)).round().astype(int).tolist())
    sheet: dict[str, list] = {m: [] for m in MAP_FOLDERS}
    tmp = temp_dir_beside(final)
    try:
        for k, f in enumerate(files):
            maps = renderer.render_frame(seq, params, k, sign=sign)
            name = frame_name(k)
            _link_or_copy(f, tmp / "images" / name)
            out = {"depth": maps.depth, "normal": maps.normal, "semantic_map": maps.semantic_map,
                   "dwpose": maps.dwpose, "mask": (maps.mask * 255).astype(np.uint8)}  # fmt: skip
            for m, arr in out.items():
                write_png(tmp / m / name, arr)
            if k in sheet_idx:
                sheet["images"].append(read_png(f))
                for m, arr in out.items():
                    sheet[m].append(arr)
        _write_meta(folder, tmp, len(files))
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sheet


def pass_through(folder: Path, final: Path) -> dict[str, list]:
    """A Champ-layout video without parameters: validate, then link its maps into place."""
    n, _ = check_champ_video(folder)
    tmp = temp_dir_beside(final)
    try:
        for m in MAP_FOLDERS:
            for k, f in enumerate(list_frames(folder / m)):
                _link_or_copy(f, tmp / m / frame_name(k))
        _write_meta(folder, tmp, n)
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    idx = np.linspace(0, n - 1, min(n, 6)).round().astype(int)
    return {m: [read_png(list_frames(final / m)[i]) for i in idx] for m in MAP_FOLDERS}


def _write_meta(folder: Path, tmp: Path, n: int) -> None:
    import json

    meta = json.loads((folder / "meta.json").read_text()) if (folder / "meta.json").is_file() else {}
    meta.update({"num_frames": n})
    meta.setdefault("source_video", folder.name)
    write_json(tmp / "meta.json", meta)


def contact_sheet(sheet: dict[str, list]) -> np.ndarray:
    """Rows = frames; columns = RGB, depth, normal, semantic, skeleton, RGB with the semantic
    map blended on top (misalignment between video and guidance shows at once)."""
    rows = []
    for k in range(len(sheet["images"])):
        rgb = sheet["images"][k].astype(np.float32)
        sem = np.asarray(sheet["semantic_map"][k]).astype(np.float32)
        if sem.ndim == 2:
            sem = np.repeat(sem[..., None], 3, 2)
        body = np.asarray(sheet["mask"][k])  # the mask: Champ's semantic background is not black
        body = (body if body.ndim == 2 else body[..., 0])[..., None] > 0
        blend = np.where(body, 0.5 * rgb + 0.5 * sem, rgb)
        cols = [sheet["images"][k]] + [
            _rgb(sheet[m][k]) for m in ("depth", "normal", "semantic_map", "dwpose")
        ]
        cols.append(blend.astype(np.uint8))
        rows.append(np.concatenate(cols, axis=1))
    return np.concatenate(rows, axis=0)


def _rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[..., None], 3, 2) if a.ndim == 2 else a


def run_guidance(cfg: GuidanceConfig, log=print) -> Problems:
    """Render (or pass through) every video's maps. One bad video is one problem: under on_error "skip"
    the others go on, and the rejected video's maps and contact sheet from an earlier run are removed."""
    src, out = Path(cfg.frames), Path(cfg.out)
    problems = Problems("guidance")
    bodies = _Bodies(cfg)
    folders = video_folders(src)
    if not folders:
        problems.add(src, "no <split>/<video>/ folders")
    for split, folder in folders:
        final = out / split / folder.name
        try:
            if find_param_dir(folder) is not None:
                sheet = render_video_maps(folder, final, cfg, bodies)
            elif all((folder / m).is_dir() for m in GUIDANCE_FOLDERS):
                sheet = pass_through(folder, final)
            else:
                raise DataError(
                    f"{folder}: no body parameters (params/ or smpl_results/ with one file per frame) and no "
                    f"guidance maps {list(GUIDANCE_FOLDERS)}: give this video SMPL fits (4D-Humans / Champ "
                    "smpl_results) and run ingest, or provide a Champ-layout folder"
                )
            if cfg.contact_sheets:
                write_png(Path(cfg.contact_sheets) / f"{split}__{folder.name}.png", contact_sheet(sheet))
            log(f"[guidance] {split}/{folder.name}")
        except (DataError, BodyParamError, FileNotFoundError) as err:
            problems.add(folder, str(err), item=f"{split}/{folder.name}")
            if cfg.on_error == "skip":
                stale = remove_stale(final)
                if cfg.contact_sheets:
                    stale |= remove_stale(Path(cfg.contact_sheets) / f"{split}__{folder.name}.png")
                if stale:
                    log(f"[guidance] {split}/{folder.name}: rejected; removed its output of an earlier run")
    problems.finish(cfg.on_error, out / "rejects_guidance.json")
    return problems
