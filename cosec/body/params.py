"""Per-frame body-parameter files: this project's .npz and 4D-Humans/Champ's pickled .npy.

Ours (`NNNN.npz`): model ("anny"|"smpl"), shape (S,), global_orient (3,), body_pose (K,3),
transl (3,), focal (), render_res (2,) = (W,H), pose_bones (K,) (anny only).
Champ's (`NNNN.npy`, a pickled dict as its 4D-Humans step writes): smpls = {global_orient (1,3,3),
body_pose (23,3,3), betas (10,)}, cam_t (3,), scaled_focal_length, render_res (W,H);
axis-angle (3,) / (23,3) is accepted too.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from cosec.atomic import write_bytes_atomic
from cosec.body.base import BodyParamError, BodyParams, check_finite, matrix_to_rotvec

PARAM_SUFFIXES = (".npz", ".npy")


def save_frame_params(path: str | os.PathLike, params: BodyParams, frame: int) -> None:
    """Write frame `frame` of `params` to `path` (.npz), atomically."""
    buf = io.BytesIO()
    np.savez(
        buf, model=np.array(params.model), shape=params.shape.astype(np.float32),
        global_orient=params.global_orient[frame].astype(np.float32),
        body_pose=params.body_pose[frame].astype(np.float32), transl=params.transl[frame].astype(np.float32),
        focal=np.float32(params.focal), render_res=np.asarray(params.render_res, np.int64),
        pose_bones=np.array(params.pose_bones, dtype=str),
    )  # fmt: skip
    write_bytes_atomic(path, buf.getvalue())


def _as_rotvec(x: np.ndarray, joints: int | None, name: str, source: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-2:] == (3, 3):
        x = matrix_to_rotvec(x)
    x = x.reshape(-1, 3) if x.size % 3 == 0 else x
    if x.ndim != 2 or x.shape[1] != 3 or (joints is not None and x.shape[0] != joints):
        want = f"({joints},3) axis-angle or ({joints},3,3) matrices" if joints else "(K,3)"
        raise BodyParamError(f"{source}: '{name}' has shape {np.shape(x)}, expected {want}")
    return x.astype(np.float32)


# What a pickled .npy of Champ's 4D-Humans step needs: numpy arrays, dtypes and scalars (dicts, lists,
# strings and numbers are pickle opcodes, not classes). Anything else could run code on load.
_NPY_PICKLE_ALLOWED = {
    (mod, name)
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype")}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts/lists of numpy arrays only; any other class or function is refused before it is called."""

    def __init__(self, fh, source: str):
        super().__init__(fh, encoding="latin1")  # latin1: Python-2 era numpy pickles, as numpy itself does
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in _NPY_PICKLE_ALLOWED:
            raise BodyParamError(
                f"{self.source}: refused to load: its pickle asks for '{module}.{name}', which a body-parameter "
                "file never needs (only numpy arrays); it may run code. Re-export the fits as .npz"
            )
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray"  # numpy 2 moved it; the old name only warns
        return super().find_class(module, name)


def _read_npy_dict(path: Path):
    """A .npy file's content without numpy's unrestricted unpickling: a plain array, or the object a
    pickled .npy holds (Champ's per-frame dict) unpickled by `_ArrayOnlyUnpickler`."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in header:
            raise BodyParamError(f"{path}: .npy format version {version} is not supported (1.0 or 2.0)")
        _, _, dtype = header[version](fh)
        if not dtype.hasobject:
            fh.seek(0)
            return np.lib.format.read_array(fh, allow_pickle=False)
        obj = _ArrayOnlyUnpickler(fh, str(path)).load()
    return obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == () else obj


def load_frame_params(path: str | os.PathLike) -> dict:
    """One frame's parameters as a dict of arrays, validated; errors name the file."""
    path = Path(path)
    src = str(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        elif path.suffix == ".npy":
            raw = _read_npy_dict(path)
            if not isinstance(raw, dict):
                raise BodyParamError(f"{src}: expected a pickled dict as Champ's 4D-Humans step writes")
        else:
            raise BodyParamError(f"{src}: unknown body-parameter format (use .npz or Champ's .npy)")
    except BodyParamError:
        raise
    except Exception as err:  # corrupt zip, truncated pickle, ...
        raise BodyParamError(f"{src}: unreadable body-parameter file ({type(err).__name__}: {err})") from err

    if "smpls" in raw:  # Champ / 4D-Humans
        smpls = raw["smpls"]
        try:
            out = {
                "model": "smpl",
                "shape": np.asarray(smpls["betas"], np.float32).reshape(-1),
                "global_orient": _as_rotvec(smpls["global_orient"], 1, "global_orient", src)[0],
                "body_pose": _as_rotvec(smpls["body_pose"], 23, "body_pose", src),
                "transl": np.asarray(raw["cam_t"], np.float32).reshape(-1),
                "focal": float(np.asarray(raw["scaled_focal_length"]).reshape(-1)[0]),
                "render_res": tuple(int(v) for v in np.asarray(raw["render_res"]).reshape(-1)[:2]),
                "pose_bones": (),
            }
        except KeyError as err:
            raise BodyParamError(f"{src}: missing key {err} in Champ SMPL parameters") from err
    else:
        missing = [
            k
            for k in ("model", "shape", "global_orient", "body_pose", "transl", "focal", "render_res")
            if k not in raw
        ]
        if missing:
            raise BodyParamError(f"{src}: missing keys {missing}")
        model = str(raw["model"])
        bones = tuple(str(b) for b in raw.get("pose_bones", np.array([], dtype=str)).reshape(-1))
        out = {
            "model": model,
            "shape": np.asarray(raw["shape"], np.float32).reshape(-1),
            "global_orient": _as_rotvec(raw["global_orient"], 1, "global_orient", src)[0],
            "body_pose": _as_rotvec(
                raw["body_pose"], 23 if model == "smpl" else len(bones), "body_pose", src
            ),
            "transl": np.asarray(raw["transl"], np.float32).reshape(-1),
            "focal": float(np.asarray(raw["focal"]).reshape(-1)[0]),
            "render_res": tuple(int(v) for v in np.asarray(raw["render_res"]).reshape(-1)[:2]),
            "pose_bones": bones,
        }
        if model not in ("anny", "smpl"):
            raise BodyParamError(f"{src}: model must be 'anny' or 'smpl', got '{model}'")
    if out["transl"].shape != (3,):
        raise BodyParamError(f"{src}: 'transl'/'cam_t' has shape {out['transl'].shape}, expected (3,)")
    if len(out["render_res"]) != 2 or min(out["render_res"]) <= 0:
        raise BodyParamError(f"{src}: 'render_res' must be (W,H) positive, got {out['render_res']}")
    for key in ("shape", "global_orient", "body_pose", "transl"):
        check_finite(key, out[key], src)
    if not np.isfinite(out["focal"]) or out["focal"] <= 0:
        raise BodyParamError(f"{src}: focal length must be positive and finite, got {out['focal']}")
    return out


def param_files(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix in PARAM_SUFFIXES and not p.name.startswith("."))


def stack_frames(frames: list[dict], source: str) -> BodyParams:
    """Stack per-frame dicts into a sequence; frames must agree on model, bones and camera."""
    if not frames:
        raise BodyParamError(f"{source}: no body-parameter files")
    first = frames[0]
    for i, fr in enumerate(frames):
        if fr["shape"].shape != first["shape"].shape:
            raise BodyParamError(
                f"{source}: frame {i} has shape size {fr['shape'].shape}, frame 0 {first['shape'].shape}"
            )
        for key in ("model", "pose_bones", "render_res"):
            if fr[key] != first[key]:
                raise BodyParamError(f"{source}: frame {i} has {key}={fr[key]!r}, frame 0 has {first[key]!r}")
    return BodyParams(
        # One body shape per video: per-frame fits jitter, their mean is the steadiest estimate.
        model=first["model"], shape=np.mean([f["shape"] for f in frames], axis=0).astype(np.float32),
        global_orient=np.stack([f["global_orient"] for f in frames]),
        body_pose=np.stack([f["body_pose"] for f in frames]),
        transl=np.stack([f["transl"] for f in frames]),
        focal=first["focal"], render_res=first["render_res"], pose_bones=first["pose_bones"],
    )  # fmt: skip


def load_params_folder(folder: str | os.PathLike) -> BodyParams:
    """All frames of a video's parameter folder, in file-name order."""
    files = param_files(folder)
    return stack_frames([load_frame_params(p) for p in files], str(folder))
