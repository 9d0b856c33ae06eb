"""Users' SMPL fits through smplx, with the user's own SMPL model file (never shipped)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from cosec.body.base import (
    KEYPOINT_NAMES,
    PART_INDEX,
    BodyParamError,
    BodyParams,
    BodySequence,
    rotvec_to_matrix,
)

# SMPL's 24 joints -> body part of the bone each joint's skinning weights move.
_SMPL_JOINT_PART = (
    "hips", "thigh_l", "thigh_r", "torso", "shin_l", "shin_r", "torso", "foot_l", "foot_r",
    "torso", "foot_l", "foot_r", "head", "torso", "torso", "head",
    "upperarm_l", "upperarm_r", "forearm_l", "forearm_r", "hand_l", "hand_r", "hand_l", "hand_r",
)  # fmt: skip
# OpenPose-18 from SMPL joints (smplx's output adds nose, r/l eye, r/l ear as joints 24..28).
_SMPL_KEYPOINT = {
    "nose": 24, "r_shoulder": 17, "r_elbow": 19, "r_wrist": 21, "l_shoulder": 16, "l_elbow": 18,
    "l_wrist": 20, "r_hip": 2, "r_knee": 5, "r_ankle": 8, "l_hip": 1, "l_knee": 4, "l_ankle": 7,
    "r_eye": 25, "l_eye": 26, "r_ear": 27, "l_ear": 28,
}  # fmt: skip


def find_smpl_model(model_path: str | os.PathLike, gender: str = "neutral") -> Path:
    """The SMPL model file: a .pkl/.npz file, or SMPL_<GENDER>.{pkl,npz} in a folder or its smpl/."""
    path = Path(model_path)
    if path.is_file():
        return path
    for folder in (path, path / "smpl"):
        for ext in ("pkl", "npz"):
            cand = folder / f"SMPL_{gender.upper()}.{ext}"
            if cand.is_file():
                return cand
    raise FileNotFoundError(
        f"{path}: no SMPL model file (expected a .pkl/.npz file, or SMPL_{gender.upper()}.pkl in it or in "
        "its smpl/ subfolder; download SMPL from https://smpl.is.tue.mpg.de, it is not shipped)"
    )


class SmplBody:
    """smplx.SMPL behind the common interface."""

    name = "smpl"

    def __init__(self, model_path: str | os.PathLike, gender: str = "neutral", num_betas: int = 10):
        import smplx

        self.model_file = find_smpl_model(model_path, gender)
        data_struct = None
        if self.model_file.suffix == ".npz":
            # smplx reads SMPL only from .pkl; an .npz with the same arrays goes in as a Struct.
            from smplx.utils import Struct

            with np.load(self.model_file, allow_pickle=False) as z:
                data_struct = Struct(**{k: z[k] for k in z.files})
        self.model = smplx.SMPL(
            model_path=str(self.model_file), data_struct=data_struct, gender=gender, num_betas=num_betas
        )
        self.model.requires_grad_(False)
        self.num_betas = num_betas
        joint_parts = torch.tensor([PART_INDEX[p] for p in _SMPL_JOINT_PART])
        # A vertex belongs to the joint that moves it most: SMPL's 24-part map, as Champ colours it.
        self.smpl_parts = self.model.lbs_weights.argmax(dim=1)
        self.vertex_parts = joint_parts[self.smpl_parts]
        self.faces = torch.as_tensor(self.model.faces.astype(np.int64))

    def check(self, params: BodyParams, source: str = "body parameters") -> None:
        if params.model != "smpl":
            raise BodyParamError(f"{source}: model is '{params.model}', the SMPL backend needs 'smpl'")
        if params.shape.ndim != 1 or params.shape.shape[0] > self.num_betas:
            raise BodyParamError(
                f"{source}: betas must be a vector of at most {self.num_betas}, got {params.shape.shape}"
            )
        if params.body_pose.shape[1:] != (23, 3):
            raise BodyParamError(
                f"{source}: SMPL body_pose must be (F,23,3) axis-angle, got {params.body_pose.shape}"
            )

    @torch.no_grad()
    def pose(self, params: BodyParams, source: str = "body parameters") -> BodySequence:
        self.check(params, source)
        n = params.num_frames
        betas = torch.zeros(1, self.num_betas)
        betas[0, : params.shape.shape[0]] = torch.as_tensor(params.shape)
        out = self.model(
            betas=betas.expand(n, -1),
            global_orient=torch.zeros(n, 3),
            body_pose=torch.as_tensor(params.body_pose, dtype=torch.float32).reshape(n, 69),
        )
        # Rotate about the pelvis like SMPL's own global_orient, then translate by cam_t.
        pelvis = out.joints[:, :1]
        rot = rotvec_to_matrix(torch.as_tensor(params.global_orient, dtype=torch.float32))
        t = torch.as_tensor(params.transl, dtype=torch.float32)[:, None]
        to_cam = lambda x: (x - pelvis) @ rot.transpose(1, 2) + pelvis + t  # noqa: E731
        joints = out.joints
        kp = {k: joints[:, i] for k, i in _SMPL_KEYPOINT.items()}
        kp["neck"] = 0.5 * (kp["r_shoulder"] + kp["l_shoulder"])
        keypoints = torch.stack([kp[k] for k in KEYPOINT_NAMES], dim=1)
        rest = self.model(betas=betas).vertices[0]
        return BodySequence(
            vertices=to_cam(out.vertices), faces=self.faces, keypoints=to_cam(keypoints),
            vertex_parts=self.vertex_parts, rest_vertices=rest, smpl_parts=self.smpl_parts,
        )  # fmt: skip
