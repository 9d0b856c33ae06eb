"""The ingest stage (real/dvc.yaml): real data in, validated and copied into one folder the frames stage reads.

A video may come in one of three forms (`layout: auto` tells them apart):
- video + SMPL fits: <video>/{<file>.mp4, smpl_results/NNNN.npy | params/NNNN.npz}, or <name>.mp4 beside a
  folder <name>/ holding the fits;
- frames + SMPL fits: <video>/{images/NNNN.png, smpl_results/ | params/} (Champ's layout before rendering, the
  TikTok dataset's frame folders);
- Champ layout: <video>/{images,depth,normal,semantic_map,dwpose,mask}/NNNN.png (maps already rendered).
A benchmark (cosec/data/splits/<name>.json) takes the videos of its published list and names their split
(tiktok, ubc, wild_tiktok); without one, the source's split folders (or `split`) name them.
Output: <out>/<split>/<video>/ in the same form (video.<ext> | images/, fits or maps, meta.json), plus
<out>/ingest.json (what was taken, what the list named but the source lacks).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cosec.body.base import BodyParamError
from cosec.body.params import param_files
from cosec.data.config import IngestConfig
from cosec.data.frames import PARAM_DIRS, VIDEO_SUFFIXES, find_param_dir, find_video
from cosec.data.guidance import GUIDANCE_FOLDERS, check_champ_video, check_images, load_params_checked
from cosec.data.io import (
    MAP_FOLDERS,
    DataError,
    Problems,
    list_frames,
    read_video,
    remove_stale,
    replace_dir,
    temp_dir_beside,
    write_json,
)

SPLITS_DIR = Path(__file__).with_name("splits")
BENCHMARKS = ("tiktok", "ubc", "wild_tiktok")
FORMS = ("video", "frames", "champ")


def load_benchmark(name: str) -> dict:
    """A benchmark's split definition (its published lists and where they come from)."""
    path = SPLITS_DIR / f"{name}.json"
    if name not in BENCHMARKS or not path.is_file():
        raise DataError(
            f"ingest.benchmark: unknown benchmark '{name}'; use none or one of {list(BENCHMARKS)}"
        )
    return json.loads(path.read_text())


def read_video_list(path: Path) -> list[str]:
    """One video name per line; blank lines and '#' comments are ignored."""
    if not path.is_file():
        raise DataError(f"{path}: video list not found (ingest.videos: a file with one video name per line)")
    names = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    names = [n for n in names if n]
    if not names:
        raise DataError(f"{path}: the video list is empty (ingest.videos)")
    if len(set(names)) != len(names):
        raise DataError(f"{path}: the video list names a video twice")
    return names


def selection(cfg: IngestConfig) -> tuple[str | None, list[str] | None, dict]:
    """(split, wanted names or None for all, what to record): None split = the source's own split folders."""
    if cfg.benchmark == "none":
        if cfg.videos in (None, "all"):
            return None, None, {}
        return None, read_video_list(Path(cfg.videos)), {"videos": cfg.videos}
    spec = load_benchmark(cfg.benchmark)
    if cfg.part not in spec["parts"]:
        raise DataError(
            f"ingest.part: '{cfg.part}' is not a part of benchmark {cfg.benchmark} (parts: {list(spec['parts'])})"
        )
    part = spec["parts"][cfg.part]
    record = {
        "benchmark": cfg.benchmark,
        "part": cfg.part,
        "split_file": f"cosec/data/splits/{cfg.benchmark}.json",
    }
    if cfg.videos == "all":
        names = None
    elif cfg.videos:
        names, record["videos"] = read_video_list(Path(cfg.videos)), cfg.videos
    elif part["videos"] is None:
        unpublished = spec["videos_unpublished"]
        raise DataError(
            f"ingest.videos: benchmark {cfg.benchmark} has no published video list. {unpublished}"
        )
    else:
        names = None if part["videos"] == "all" else list(part["videos"])
    record["reference"] = spec.get("reference")
    return part["split"], names, record


def _sibling_video(d: Path) -> Path | None:
    for suffix in VIDEO_SUFFIXES:
        for cand in (d.with_name(d.name + suffix), d.with_name(d.name + suffix.upper())):
            if cand.is_file():
                return cand
    return None


def _video_of(item: Path) -> Path | None:
    if item.is_file():
        return item
    return find_video(item) or _sibling_video(item)


def _is_item(d: Path) -> bool:
    """A video folder; a folder of several videos (or of videos beside their fits' folders) is a split."""
    if any((d / m).is_dir() for m in ("images", *PARAM_DIRS, *GUIDANCE_FOLDERS)):
        return True
    entries = [p for p in d.iterdir() if not p.name.startswith(".")]
    videos = [p for p in entries if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
    return len(videos) == 1 and not any(p.is_dir() for p in entries)


def item_name(item: Path) -> str:
    return item.stem if item.is_file() else item.name


def discover(source: Path, default_split: str) -> list[tuple[str, Path]]:
    """(split, item) pairs; an item is a video folder, or a bare video file (no folder of the same name)."""
    if not source.is_dir():
        raise DataError(f"{source}: source folder not found (ingest.source)")

    def items_in(folder: Path):
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        dirs = [p for p in entries if p.is_dir() and _is_item(p)]
        vids = [p for p in entries if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()]
        vids = [p for p in vids if not (folder / p.stem).is_dir()]  # a folder of the same name holds its fits
        return dirs + vids

    top = items_in(source)
    if top:
        return [(default_split, it) for it in top]
    out = []
    for split_dir in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
        out += [(split_dir.name, it) for it in items_in(split_dir)]
    return out


def form_of(item: Path, layout: str) -> str:
    """Which of the three forms an item is in (see the module docstring)."""
    champ = item.is_dir() and all((item / m).is_dir() for m in MAP_FOLDERS)
    if layout == "champ" or (layout == "auto" and champ):
        return "champ"
    if _video_of(item) is not None:
        return "video"
    if (item / "images").is_dir():
        return "frames"
    if layout == "auto" and any((item / m).is_dir() for m in GUIDANCE_FOLDERS):
        return "champ"  # some maps but not all: check_champ_video names the missing ones
    raise DataError(
        f"{item}: no video file ({', '.join(VIDEO_SUFFIXES)}), no images/ folder and no guidance maps. Give a "
        "video with smpl_results/NNNN.npy, frames images/NNNN.png with smpl_results/, or a Champ-layout folder"
    )


def _fits_needed(item: Path, what: str) -> str:
    return (
        f"{item}: {what} has no SMPL fits. Needed: {item}/smpl_results/NNNN.npy (one 4D-Humans/Champ fit per "
        "frame, e.g. from Champ's generate_smpls step) or params/NNNN.npz; or give a Champ-layout folder"
    )


def _check_fits(pdir: Path, count: int, what: str) -> list[str]:
    files = param_files(pdir)
    errors = [] if len(files) == count else [f"{pdir}: {len(files)} fit files for {count} {what}"]
    for f in files:
        try:
            load_params_checked(f)
        except BodyParamError as err:
            errors.append(str(err))
    return errors


def check_raw_video(item: Path) -> tuple[Path, Path]:
    """A video with one valid body-parameter file per frame; returns (video, param folder)."""
    if item.is_file():
        raise DataError(
            f"{item}: video has no SMPL fits. Needed: a folder {item.parent / item.stem}/ holding the video and "
            "smpl_results/NNNN.npy (one 4D-Humans/Champ fit per frame) or params/NNNN.npz; or give a "
            "Champ-layout folder with rendered guidance maps"
        )
    video = _video_of(item)
    if video is None:
        raise DataError(f"{item}: no video file ({', '.join(VIDEO_SUFFIXES)})")
    pdir = find_param_dir(item)
    if pdir is None or not param_files(pdir):
        raise DataError(_fits_needed(item, f"video {video.name}"))
    frames, _ = read_video(video, resolution=None, stride=1)
    errors = _check_fits(pdir, len(frames), f"video frames in {video.name}")
    if errors:
        raise DataError("; ".join(errors))
    return video, pdir


def check_frames_video(item: Path) -> tuple[list[Path], Path]:
    """Frames images/NNNN.png (readable, one size) with one valid fit per frame."""
    pdir = find_param_dir(item)
    if pdir is None or not param_files(pdir):
        raise DataError(_fits_needed(item, "the frame folder images/"))
    files, _ = check_images(item)
    errors = _check_fits(pdir, len(files), f"frames in {item / 'images'}")
    if errors:
        raise DataError("; ".join(errors))
    return files, pdir


def _copy_pngs(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in list_frames(src):
        shutil.copyfile(f, dst / f.name)


def ingest_item(item: Path, form: str, dest: Path, record: dict) -> None:
    """Validate one video and write its copy at `dest` (atomically: a hidden folder moved into place)."""
    if form == "champ":
        check_champ_video(item)
    elif form == "video":
        video, pdir = check_raw_video(item)
    else:
        _, pdir = check_frames_video(item)
    tmp = temp_dir_beside(dest)
    try:
        if form == "champ":
            for m in MAP_FOLDERS:  # fits beside rendered maps are left out: the maps are what was given
                _copy_pngs(item / m, tmp / m)
        elif form == "video":
            shutil.copyfile(video, tmp / f"video{video.suffix.lower()}")
            shutil.copytree(pdir, tmp / pdir.name)
        else:
            _copy_pngs(item / "images", tmp / "images")
            shutil.copytree(pdir, tmp / pdir.name)
        meta = {}
        own = item / "meta.json" if item.is_dir() else None
        if own is not None and own.is_file():
            try:
                meta = json.loads(own.read_text())
            except json.JSONDecodeError as err:
                raise DataError(f"{own}: invalid JSON ({err})") from err
        meta["ingest"] = {**record, "form": form, "source": str(item)}
        write_json(tmp / "meta.json", meta)
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_untaken(out: Path, taken: set[str], log) -> None:
    """Videos an earlier ingest wrote that this one did not take (only folders ingest wrote are touched)."""
    if not out.is_dir():
        return
    for split_dir in (p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for vid in (p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            meta = vid / "meta.json"
            if f"{split_dir.name}/{vid.name}" in taken or not meta.is_file():
                continue
            try:
                ours = "ingest" in json.loads(meta.read_text())
            except (json.JSONDecodeError, TypeError):
                ours = False
            if ours and remove_stale(vid):
                log(f"[ingest] {split_dir.name}/{vid.name}: no longer taken; removed its earlier copy")
        if not any(split_dir.iterdir()):
            split_dir.rmdir()  # an empty split folder would read as a split without videos


def run_ingest(cfg: IngestConfig, log=print) -> Problems:
    source, out = Path(cfg.source), Path(cfg.out)
    problems = Problems("ingest")
    split, wanted, record = selection(cfg)
    items = discover(source, cfg.split)
    if split is not None:  # a benchmark: one split, whatever folders the source uses
        items = [(split, it) for _, it in items]
    found: dict[tuple[str, str], Path] = {}
    for s, it in items:
        key = (s, item_name(it))
        if key in found:
            problems.add(
                it, f"two videos named '{key[1]}' in split {s} ({found[key]} and {it})", item=f"{s}/{key[1]}"
            )
        found.setdefault(key, it)
    names_found = {name for _, name in found}
    missing = [n for n in wanted if n not in names_found] if wanted is not None else []
    if wanted is not None:
        keep = set(wanted)
        ignored = sorted(name for _, name in found if name not in keep)
        found = {k: v for k, v in found.items() if k[1] in keep}
        if ignored:
            log(
                f"[ingest] {len(ignored)} video(s) in {source} are not in the list; not taken (e.g. {ignored[0]})"
            )
    if missing:
        what = f"{cfg.benchmark} {cfg.part}" if cfg.benchmark != "none" else "ingest.videos"
        problems.add(
            source,
            f"{len(missing)} of the {len(wanted)} videos of {what} are not in the source (first: "
            f"{', '.join(missing[:5])}); add them, or give ingest.videos a list of the ones you have",
            item="missing",
        )
    if not found and not problems:
        problems.add(
            source, "no videos found (expected Champ-layout folders, or videos / frames with SMPL fits)"
        )
    taken: list[str] = []
    for (s, name), item in sorted(found.items()):
        dest = out / s / name
        try:
            form = form_of(item, cfg.layout)
            ingest_item(item, form, dest, record)
            taken.append(f"{s}/{name}")
            log(f"[ingest] {s}/{name} ({form})")
        except DataError as err:
            problems.add(item, str(err), item=f"{s}/{name}")
            if cfg.on_error == "skip" and remove_stale(dest):
                log(f"[ingest] {s}/{name}: rejected; removed its earlier ingested copy")
    _remove_untaken(out, set(taken), log)
    manifest = {**record, "source": str(source), "taken": taken, "missing": missing}
    write_json(out / "ingest.json", manifest)
    problems.finish(cfg.on_error, out / "rejects_ingest.json")
    return problems
