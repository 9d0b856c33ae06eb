"""File IO for the data stages: atomic writes, checked reads, and problem reports."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cosec.atomic import write_bytes_atomic

MAP_FOLDERS: tuple[str, ...] = ("images", "depth", "normal", "semantic_map", "dwpose", "mask")


class DataError(RuntimeError):
    """A stage found bad input; the message lists every problem with its file."""


@dataclass
class Problems:
    """Collects every problem a stage finds (not just the first), then fails or writes rejects."""

    stage: str
    items: list[dict] = field(default_factory=list)

    def add(self, path: str | os.PathLike, problem: str, item: str | None = None) -> None:
        self.items.append({"item": item or str(path), "path": str(path), "problem": problem})

    def __bool__(self) -> bool:
        return bool(self.items)

    def bad_items(self) -> set[str]:
        return {p["item"] for p in self.items}

    def message(self) -> str:
        lines = [f"{self.stage}: {len(self.items)} problem(s):"]
        lines += [
            f"  {p['problem']}" if p["problem"].startswith(p["path"]) else f"  {p['path']}: {p['problem']}"
            for p in self.items
        ]
        return "\n".join(lines)

    def finish(self, on_error: str, rejects_path: str | os.PathLike | None) -> None:
        """on_error="fail": raise DataError listing everything; "skip": write the rejects file."""
        if on_error not in ("fail", "skip"):
            raise ValueError(f"on_error must be 'fail' or 'skip', got '{on_error}'")
        if rejects_path is not None:
            write_json(rejects_path, {"stage": self.stage, "rejects": self.items})
        if self.items and on_error == "fail":
            raise DataError(self.message())


def write_json(path: str | os.PathLike, obj) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    write_bytes_atomic(path, png_bytes(array))


def frame_name(i: int) -> str:
    return f"{i:04d}.png"


def read_png(path: str | os.PathLike, mode: str = "RGB", size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a PNG fully (a truncated file fails here, not later), check its size (W,H)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if size is not None and img.size != tuple(size):
                raise DataError(
                    f"{path}: resolution {img.size[0]}x{img.size[1]}, expected {size[0]}x{size[1]}"
                )
            return np.asarray(img.convert(mode))
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"{path}: unreadable PNG ({type(err).__name__}: {err})") from err


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a fully written temporary folder into place (the old one, if any, is removed first)."""
    if final.exists():
        old = final.with_name(f".{final.name}.old{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)


def remove_stale(final: Path) -> bool:
    """Remove a rejected item's output left by an earlier run, so no later stage picks it up
    (renamed aside first, so a crash never leaves a half-deleted folder under the real name)."""
    final = Path(final)
    if not final.exists() and not final.is_symlink():
        return False
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.stale{os.getpid()}")
        os.replace(final, old)
        shutil.rmtree(old)
    else:
        final.unlink()
    return True


def temp_dir_beside(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))


def list_frames(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.png") if not p.name.startswith("."))


def read_video(path: str | os.PathLike, resolution: int | None = None, stride: int = 1, max_frames: int = 0):
    """Decode a video with decord -> (F,H,W,3) uint8 and the source frame indices.

    Every selected frame is decoded, so a truncated file fails here with its name.
    """
    import decord

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    try:
        probe = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        n = len(probe)
        if n == 0:
            raise DataError(f"{path}: video has no frames")
        h0, w0 = probe[0].shape[:2]
        del probe
        idx = list(range(0, n, max(1, stride)))
        if max_frames:
            idx = idx[:max_frames]
        if resolution:
            # Scale the short side to `resolution` (decord resizes while decoding), then centre-crop.
            s = resolution / min(h0, w0)
            h1, w1 = max(resolution, round(h0 * s)), max(resolution, round(w0 * s))
            vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1, width=w1, height=h1)
        else:
            vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        frames = vr.get_batch(idx).asnumpy()
        if resolution:
            top, left = (frames.shape[1] - resolution) // 2, (frames.shape[2] - resolution) // 2
            frames = np.ascontiguousarray(frames[:, top : top + resolution, left : left + resolution])
    except DataError:
        raise
    except Exception as err:
        first = str(err).splitlines()[0][:200] if str(err) else ""
        raise DataError(f"{path}: unreadable or truncated video ({type(err).__name__}: {first})") from err
    return frames, idx


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float) -> None:
    """(F,H,W,3) uint8 -> H.264 mp4 (yuv444p, near-lossless), written atomically."""
    import imageio.v2 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.mp4")
    writer = iio.get_writer(
        tmp, fps=fps, codec="libx264", pixelformat="yuv444p", quality=None,
        output_params=["-crf", "8"], macro_block_size=1, ffmpeg_log_level="error",
    )  # fmt: skip
    try:
        for f in frames:
            writer.append_data(f)
    finally:
        writer.close()
    os.replace(tmp, path)
