"""Common body-model interface: posed vertices, faces, keypoints and per-vertex body parts.

Every backend returns vertices in the camera frame of OpenCV (x right, y down, z forward), so
the renderer needs nothing but a focal length and the image size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

# Body parts painted in the semantic map; label 0 is the background.
PART_NAMES: tuple[str, ...] = (
    "head", "torso", "hips",
    "upperarm_l", "upperarm_r", "forearm_l", "forearm_r", "hand_l", "hand_r",
    "thigh_l", "thigh_r", "shin_l", "shin_r", "foot_l", "foot_r",
)  # fmt: skip
PART_INDEX = {name: i + 1 for i, name in enumerate(PART_NAMES)}

# SMPL's 24 joints: the parts (and colours) of Champ's semantic map; "l"/"r" are the subject's sides.
SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3",
    "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder", "l_elbow",
    "r_elbow", "l_wrist", "r_wrist", "l_hand", "r_hand",
)  # fmt: skip
SMPL_JOINT_INDEX = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}

# OpenPose/DWPose body-18 keypoint order ("l"/"r" are the subject's sides).
KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)  # fmt: skip


class BodyParamError(ValueError):
    """Body parameters that are missing, non-finite or wrongly shaped (message names the file)."""


@dataclass
class BodyParams:
    """Body parameters of a sequence of F frames (one subject, one camera).

    model: "anny" or "smpl". shape: (S,) anny phenotype in [0,1] or SMPL betas.
    global_orient: (F,3) axis-angle taking the body frame to the camera frame.
    body_pose: (F,K,3) axis-angle per posed joint (anny: the bones named in pose_bones;
    smpl: the 23 body joints). transl: (F,3) camera-frame translation (4D-Humans' cam_t).
    focal: focal length in pixels at render_res (W,H); the principal point is the image centre.
    """

    model: str
    shape: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray
    focal: float
    render_res: tuple[int, int]
    pose_bones: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.global_orient.shape[0])

    def frames(self, index) -> BodyParams:
        idx = np.asarray(index).reshape(-1)
        return BodyParams(
            self.model,
            self.shape,
            self.global_orient[idx],
            self.body_pose[idx],
            self.transl[idx],
            self.focal,
            self.render_res,
            self.pose_bones,
            dict(self.extra),
        )

    def with_shape(self, shape: np.ndarray) -> BodyParams:
        """Shape transfer: the same motion on another body shape (e.g. the reference's betas)."""
        out = self.frames(np.arange(self.num_frames))
        out.shape = np.asarray(shape, dtype=np.float32).reshape(-1)
        return out


@dataclass
class BodySequence:
    """Posed meshes of a sequence, camera frame (OpenCV), metres.

    vertices (F,V,3) float32; faces (T,3) int64; keypoints (F,18,3) in KEYPOINT_NAMES order;
    vertex_parts (V,) int64 labels in 1..len(PART_NAMES) (clothing regions); rest_vertices (V,3)
    float32, the unposed body (used to pin clothing patterns to the body surface); smpl_parts (V,)
    int64 SMPL joint index 0..23 of each vertex (the parts of Champ's semantic map).
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    keypoints: torch.Tensor
    vertex_parts: torch.Tensor
    rest_vertices: torch.Tensor
    smpl_parts: torch.Tensor


def rotvec_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula for (...,3) axis-angle -> (...,3,3), stable near zero angle."""
    theta = rotvec.norm(dim=-1, keepdim=True)
    axis = rotvec / theta.clamp_min(1e-12)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*rotvec.shape[:-1], 3, 3)
    s = torch.sin(theta)[..., None]
    c = torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(k)
    return eye + s * k + (1 - c) * (k @ k)


def matrix_to_rotvec(mat: np.ndarray) -> np.ndarray:
    """(...,3,3) rotation matrices -> (...,3) axis-angle (numpy; for files that store matrices)."""
    from scipy.spatial.transform import Rotation

    flat = np.asarray(mat, dtype=np.float64).reshape(-1, 3, 3)
    return Rotation.from_matrix(flat).as_rotvec().reshape(*np.shape(mat)[:-2], 3).astype(np.float32)


def check_finite(name: str, array: np.ndarray, source: str) -> None:
    if not np.all(np.isfinite(array)):
        raise BodyParamError(f"{source}: '{name}' contains NaN or infinite values")
