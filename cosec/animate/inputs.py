"""What `cosec animate` reads: a reference photo and a motion (guidance maps, or body parameters to render).

Every problem is an :class:`AnimateError` whose message is one line naming the file, so the command can
print it instead of a traceback.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

REFERENCE_FITS = ("pad", "crop", "stretch")
DEFAULT_FPS = 24.0  # when neither the motion's meta.json nor --fps says (Champ's clips are 24 fps)


class AnimateError(ValueError):
    """Bad input to `cosec animate`; the message is one line and names the file."""


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


# ---------------------------------------------------------------------------------------------- reference


def read_image_rgb(path: str | Path) -> Image.Image:
    """Any image file -> RGB; greyscale, palette and 16-bit images are converted, alpha is laid on white."""
    path = Path(path)
    if not path.exists():
        raise AnimateError(f"{path}: reference image not found")
    if not path.is_file():
        raise AnimateError(f"{path}: reference is not a file")
    if path.stat().st_size == 0:
        raise AnimateError(f"{path}: reference image is an empty file")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)  # phone photos store their rotation in EXIF
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                top = 65535.0 if arr.max() > 255 else 255.0
                img = Image.fromarray((arr / top * 255).round().clip(0, 255).astype(np.uint8))
            elif img.mode == "F":
                arr = np.asarray(img, dtype=np.float64)
                img = Image.fromarray((arr.clip(0, 1) * 255).round().astype(np.uint8))
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, rgba)
            return img.convert("RGB")
    except UnidentifiedImageError:
        raise AnimateError(f"{path}: not an image file (PIL cannot identify it)") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise AnimateError(f"{path}: unreadable image ({_one_line(err)})") from None


def fit_square(img: Image.Image, size: int, fit: str = "pad") -> Image.Image:
    """Fit an image of any aspect into size x size.

    "pad" (default) keeps the whole person: the long side is scaled to ``size`` and the short side padded
    with the median colour of the image border (so the background continues); "crop" scales the short side
    and centre-crops, as the frames stage prepares training frames; "stretch" resizes without keeping the
    aspect, as Champ's inference pipeline does with a reference of another shape.
    """
    if fit not in REFERENCE_FITS:
        raise ValueError(f"fit must be one of {REFERENCE_FITS}, got {fit!r}")
    w, h = img.size
    if fit == "stretch" or w == h:
        return img.resize((size, size), Image.BICUBIC)
    if fit == "crop":
        s = size / min(w, h)
        nw, nh = max(size, round(w * s)), max(size, round(h * s))
        img = img.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        return img.crop((left, top, left + size, top + size))
    s = size / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = img.resize((nw, nh), Image.BICUBIC)
    arr = np.asarray(img)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    colour = tuple(int(c) for c in np.median(border, axis=0))
    canvas = Image.new("RGB", (size, size), colour)
    canvas.paste(small, ((size - nw) // 2, (size - nh) // 2))
    return canvas


def load_reference(path: str | Path, size: int, fit: str = "pad") -> tuple[torch.Tensor, np.ndarray]:
    """The reference as the model takes it, (1,3,size,size) in [-1,1], and as uint8 (size,size,3)."""
    arr = np.asarray(fit_square(read_image_rgb(path), size, fit)).copy()
    pixels = torch.from_numpy(arr).permute(2, 0, 1).float()[None] / 127.5 - 1.0
    return pixels, arr


# ---------------------------------------------------------------------------------------------- motion


def _read_map(path: Path, size: int, nearest: bool) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()
            img = img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as err:
        raise AnimateError(f"{path}: unreadable guidance image ({_one_line(err)})") from None
    if img.size != (size, size):
        if img.size[0] != img.size[1]:  # the frames stage's framing: scale the short side, centre-crop
            img = fit_square(img, size, "crop") if not nearest else _crop_nearest(img, size)
        else:
            img = img.resize((size, size), Image.NEAREST if nearest else Image.BILINEAR)
    return np.asarray(img)


def _crop_nearest(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    img = img.resize((nw, nh), Image.NEAREST)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def _fps_of(*folders: Path) -> float | None:
    for folder in folders:
        meta = folder / "meta.json"
        if meta.is_file():
            try:
                fps = json.loads(meta.read_text()).get("fps")
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(fps, (int, float)) and fps > 0:
                return float(fps)
    return None


@dataclass
class GuidanceMaps:
    """A Champ-layout guidance folder: ``<folder>/<type>/NNNN.png`` for every type the model uses.

    Maps are read per window (only the frames asked for), resized to the model's resolution as the
    datasets do (nearest for semantic maps).
    """

    folder: Path
    types: tuple[str, ...]
    files: dict[str, list[Path]]
    fps: float | None
    rendered: bool = False  # maps rendered from body parameters into a temporary folder

    @property
    def num_frames(self) -> int:
        return len(next(iter(self.files.values())))

    def load(self, frames: Sequence[int], size: int) -> dict[str, torch.Tensor]:
        """{type: (1,3,n,size,size) float in [0,1]} for the given frame indices."""
        out = {}
        for t in self.types:
            arrs = [_read_map(self.files[t][i], size, nearest=t == "semantic_map") for i in frames]
            x = torch.from_numpy(np.stack(arrs)).permute(3, 0, 1, 2).float() / 255.0
            out[t] = x[None]
        return out

    def pose_image(self, frame: int, size: int) -> np.ndarray:
        """The picture shown as "pose" beside the result (the semantic map when there is one, as the report)."""
        kind = "semantic_map" if "semantic_map" in self.files else self.types[0]
        return _read_map(self.files[kind][frame], size, nearest=True)

    def close(self) -> None:
        if self.rendered:
            shutil.rmtree(self.folder, ignore_errors=True)


def _map_folder(folder: Path, types: tuple[str, ...]) -> GuidanceMaps:
    files, problems = {}, []
    for t in types:
        sub = folder / t
        pngs = sorted(p for p in sub.glob("*.png") if not p.name.startswith(".")) if sub.is_dir() else []
        if not sub.is_dir():
            problems.append(f"no {t}/ folder")
        elif not pngs:
            problems.append(f"{t}/ has no PNG frames")
        files[t] = pngs
    if problems:
        raise AnimateError(f"{folder}: not a usable guidance folder ({'; '.join(problems)})")
    counts = {t: len(v) for t, v in files.items()}
    if len(set(counts.values())) != 1:
        raise AnimateError(f"{folder}: guidance folders have different frame counts {counts}")
    names = {t: [p.name for p in v] for t, v in files.items()}
    first = types[0]
    for t in types[1:]:
        if names[t] != names[first]:
            raise AnimateError(f"{folder / t}: frame file names differ from {first}/")
    return GuidanceMaps(folder, types, files, _fps_of(folder, folder.parent))


def _videos_below(folder: Path, types: tuple[str, ...]) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / types[0]).is_dir()
    )


def open_motion(
    path: str | Path,
    types: tuple[str, ...],
    size: int,
    fps: float | None = None,
    shape_from: str | None = None,
    smpl_model_path: str | None = None,
    anny_cache: str | None = None,
    backend: str = "auto",
    progress: bool = True,
) -> GuidanceMaps:
    """A motion folder as guidance maps at ``size``:

    * a Champ-layout guidance folder (``depth/ normal/ semantic_map/ dwpose/``, those the model uses), e.g. a
      video of the prepared data ``data/prepared/<split>/<video>``;
    * a folder of body-parameter files (``NNNN.npz`` / SMPL fits), or a video folder holding ``params/`` or
      ``smpl_results/`` (the raw and frames stages' layout): rendered by the project's renderer into a
      temporary folder first, with the body shape of ``shape_from`` (a body-parameter file) when given.
    """
    from cosec.body.params import PARAM_SUFFIXES

    folder = Path(path)
    if not folder.exists():
        raise AnimateError(f"{folder}: motion folder not found")
    if not folder.is_dir():
        raise AnimateError(
            f"{folder}: the motion must be a folder (Champ-layout guidance maps or body-parameter files)"
        )
    if any((folder / t).is_dir() for t in types):
        maps = _map_folder(folder, types)
        if fps:
            maps.fps = fps
        return maps
    from cosec.data.frames import find_param_dir

    param_dir = find_param_dir(folder)
    if param_dir is None and any(p.suffix in PARAM_SUFFIXES for p in folder.iterdir()):
        param_dir = folder
    if param_dir is not None:
        return render_motion(
            param_dir, types, size, fps, shape_from, smpl_model_path, anny_cache, backend, progress
        )
    videos = _videos_below(folder, types)
    if videos:
        raise AnimateError(
            f"{folder}: a split folder of {len(videos)} videos; pass one video folder, e.g. {videos[0]}"
        )
    raise AnimateError(
        f"{folder}: no guidance maps ({'/ '.join(types)}/) and no body-parameter files (params/, smpl_results/ "
        "or NNNN.npz)"
    )


def render_motion(
    param_dir: Path,
    types: tuple[str, ...],
    size: int,
    fps: float | None = None,
    shape_from: str | None = None,
    smpl_model_path: str | None = None,
    anny_cache: str | None = None,
    backend: str = "auto",
    progress: bool = True,
    chunk: int = 24,
) -> GuidanceMaps:
    """Render body parameters into guidance PNGs in a temporary folder (posed ``chunk`` frames at a time, so
    memory does not grow with the motion's length); the returned maps delete the folder on ``close()``."""
    from tqdm.auto import tqdm

    from cosec.body import make_body
    from cosec.body.base import BodyParamError
    from cosec.body.params import load_frame_params, param_files, stack_frames
    from cosec.data.io import frame_name, write_png
    from cosec.render.maps import GuidanceRenderer, outward_sign

    try:
        files = param_files(param_dir)
        if not files:
            raise AnimateError(f"{param_dir}: no body-parameter files")
        params = stack_frames([load_frame_params(p) for p in files], str(param_dir))
        if shape_from:
            params = params.with_shape(load_frame_params(shape_from)["shape"])
        body = make_body(params.model, anny_cache, smpl_model_path)
    except BodyParamError as err:
        raise AnimateError(str(err).splitlines()[0]) from None
    renderer = GuidanceRenderer(size, size, backend=backend)
    tmp = Path(tempfile.mkdtemp(prefix="cosec-animate-guidance-"))
    try:
        sign = None
        bar = tqdm(total=params.num_frames, desc="render guidance", unit="frame", disable=not progress)
        for start in range(0, params.num_frames, chunk):
            index = np.arange(start, min(start + chunk, params.num_frames))
            sub = params.frames(index)
            try:
                seq = body.pose(sub, str(param_dir))
            except BodyParamError as err:
                raise AnimateError(str(err).splitlines()[0]) from None
            if sign is None:
                sign = outward_sign(seq.vertices[0].float(), seq.faces)
            for k, frame in enumerate(index):
                maps = renderer.render_frame(seq, sub, k, sign=sign)
                for t in types:
                    write_png(tmp / t / frame_name(int(frame)), getattr(maps, t))
                bar.update(1)
        bar.close()
        out = _map_folder(tmp, types)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    out.fps = fps or _fps_of(param_dir, param_dir.parent)
    out.rendered = True
    return out


def parse_frames(spec: str | None, total: int) -> list[int]:
    """``A:B`` (Python slice of the motion's frames, either side optional) -> frame indices; None = all."""
    if spec is None:
        return list(range(total))
    parts = spec.split(":")
    if len(parts) != 2:
        raise AnimateError(f"--frames {spec!r}: expected A:B (e.g. 0:48, :96, 24:)")
    try:
        a, b = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise AnimateError(f"--frames {spec!r}: A and B must be integers") from None
    frames = list(range(total))[slice(a, b)]
    if not frames:
        raise AnimateError(f"--frames {spec!r}: selects no frame of a motion of {total} frames")
    return frames
