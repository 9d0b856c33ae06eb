"""Body models behind one interface: anny (embedded default) and SMPL (users' fits, via smplx)."""

from __future__ import annotations

from cosec.body.base import (
    KEYPOINT_NAMES,
    PART_INDEX,
    PART_NAMES,
    BodyParamError,
    BodyParams,
    BodySequence,
)
from cosec.body.params import load_frame_params, load_params_folder, save_frame_params, stack_frames


def make_body(
    model: str, anny_cache: str | None = None, smpl_model_path: str | None = None, gender: str = "neutral"
):
    """The backend for `model` ("anny" or "smpl")."""
    if model == "anny":
        from cosec.body.anny_body import AnnyBody

        return AnnyBody(cache_dir=anny_cache)
    if model == "smpl":
        if not smpl_model_path:
            raise BodyParamError("SMPL fits need the SMPL model folder (set smpl_model_path)")
        from cosec.body.smpl_body import SmplBody

        return SmplBody(smpl_model_path, gender=gender)
    raise BodyParamError(f"unknown body model '{model}' (expected 'anny' or 'smpl')")


__all__ = [
    "KEYPOINT_NAMES", "PART_INDEX", "PART_NAMES", "BodyParamError", "BodyParams", "BodySequence",
    "load_frame_params", "load_params_folder", "save_frame_params", "stack_frames", "make_body",
]  # fmt: skip
