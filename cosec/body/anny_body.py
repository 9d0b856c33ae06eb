"""The embedded default body: anny (MakeHuman-based, Apache-2.0 code, CC0 data).

Shape comes from anny's phenotype parameters, pose from its rig ("local-ref" rotations, which
are about the body-frame axes X = subject's left, Y = back, Z = up), body parts from the
argmax of its skinning weights.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from cosec.body.base import (
    KEYPOINT_NAMES,
    PART_INDEX,
    SMPL_JOINT_INDEX,
    BodyParamError,
    BodyParams,
    BodySequence,
    rotvec_to_matrix,
)

PHENOTYPES: tuple[str, ...] = ("gender", "age", "muscle", "weight", "height", "proportions")

# Bones the procedural motions drive (the rest keep their rest pose).
POSE_BONES: tuple[str, ...] = (
    "root", "spine04", "spine02", "neck01", "head",
    "upperarm01.L", "lowerarm01.L", "wrist.L", "upperarm01.R", "lowerarm01.R", "wrist.R",
    "upperleg01.L", "lowerleg01.L", "foot.L", "upperleg01.R", "lowerleg01.R", "foot.R",
)  # fmt: skip


def _bone_part(label: str) -> str:
    side = "l" if label.endswith(".L") else "r"
    if label.startswith(("neck", "head", "eye", "jaw", "tongue")):
        return "head"
    if label.startswith(("upperarm",)):
        return f"upperarm_{side}"
    if label.startswith("lowerarm"):
        return f"forearm_{side}"
    if label.startswith(("wrist", "finger", "metacarpal")):
        return f"hand_{side}"
    if label.startswith("upperleg"):
        return f"thigh_{side}"
    if label.startswith("lowerleg"):
        return f"shin_{side}"
    if label.startswith(("foot", "toe")):
        return f"foot_{side}"
    if label in ("root", "spine05") or label.startswith("pelvis"):
        return "hips"
    return "torso"  # spine04..spine01, clavicles, shoulders


def _bone_smpl_joint(label: str) -> int:
    """The SMPL joint (0..23) whose part covers what anny's bone `label` moves (one palette for both)."""
    side = "l" if label.endswith(".L") else "r"
    base = label.split(".")[0]
    spine = {"root": "pelvis", "spine05": "pelvis", "spine04": "spine1", "spine03": "spine2",
             "spine02": "spine3", "spine01": "spine3"}  # fmt: skip
    if base in spine:
        return SMPL_JOINT_INDEX[spine[base]]
    prefixes = (
        ("pelvis", "pelvis"), ("neck", "neck"), ("head", "head"), ("eye", "head"), ("jaw", "head"),
        ("tongue", "head"), ("clavicle", f"{side}_collar"), ("shoulder", f"{side}_collar"),
        ("upperarm", f"{side}_shoulder"), ("lowerarm", f"{side}_elbow"), ("wrist", f"{side}_wrist"),
        ("metacarpal", f"{side}_wrist"), ("finger", f"{side}_hand"), ("upperleg", f"{side}_hip"),
        ("lowerleg", f"{side}_knee"), ("foot", f"{side}_ankle"), ("toe", f"{side}_foot"),
    )  # fmt: skip
    for prefix, joint in prefixes:
        if base.startswith(prefix):
            return SMPL_JOINT_INDEX[joint]
    raise ValueError(f"anny bone '{label}' has no SMPL part (extend _bone_smpl_joint)")


def anny_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where anny's built model data lives (~800 MB, ~90 s to build once).

    Order: the argument, $COSEC_ANNY_CACHE, $ANNY_CACHE_DIR, ~/.cache/anny.
    """
    chosen = cache_dir or os.environ.get("COSEC_ANNY_CACHE") or os.environ.get("ANNY_CACHE_DIR")
    return Path(chosen).expanduser() if chosen else Path.home() / ".cache" / "anny"


@functools.lru_cache(maxsize=2)
def _load_anny(cache_dir: str):
    import anny
    from anny.paths import set_anny_cache_path

    set_anny_cache_path(cache_dir)
    # Dense torch LBS: deterministic and needs no Warp kernel compilation.
    model = anny.Anny(skinning_method="lbs")
    model.requires_grad_(False)
    return model


class AnnyBody:
    """anny behind the common interface: `pose(params) -> BodySequence`."""

    name = "anny"

    def __init__(self, cache_dir: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32):
        self.cache_dir = anny_cache_dir(cache_dir)
        self.model = _load_anny(str(self.cache_dir))
        self.dtype = dtype
        labels = list(self.model.bone_labels)
        self.bone_index = {b: i for i, b in enumerate(labels)}
        weights = torch.zeros(self.model.template_vertices.shape[0], len(labels), dtype=torch.float64)
        weights.scatter_add_(
            1, self.model.vertex_bone_indices.long(), self.model.vertex_bone_weights.double()
        )
        bone_to_part = torch.tensor([PART_INDEX[_bone_part(b)] for b in labels])
        owner = weights.argmax(dim=1)
        self.vertex_parts = bone_to_part[owner]
        self.smpl_parts = torch.tensor([_bone_smpl_joint(b) for b in labels])[owner]
        self.faces = self.model.get_triangular_faces().long()
        rest = self.model(phenotype_kwargs=None)
        self._face_vertex_ids = self._pick_face_keypoint_vertices(rest["vertices"][0].float())

    def _pick_face_keypoint_vertices(self, rest: torch.Tensor) -> dict[str, int]:
        """Vertex ids for the nose and ears (anny's rig has eyes but no nose/ear bones)."""
        head = (self.vertex_parts == PART_INDEX["head"]).nonzero().squeeze(1)
        eye_z = 0.5 * (self._rest_head("eye.L")[2] + self._rest_head("eye.R")[2])
        band = head[(rest[head, 2] - eye_z).abs() < 0.035]
        nose = band[rest[band, 1].argmin()]  # most forward (-Y) point at eye height
        ears_band = band[rest[band, 1] > rest[nose, 1] + 0.05]
        return {
            "nose": int(nose),
            "l_ear": int(ears_band[rest[ears_band, 0].argmax()]),
            "r_ear": int(ears_band[rest[ears_band, 0].argmin()]),
        }

    def _rest_head(self, bone: str) -> torch.Tensor:
        out = self.model(phenotype_kwargs=None)
        return out["bone_poses"][0, self.bone_index[bone], :3, 3].float()

    def check(self, params: BodyParams, source: str = "body parameters") -> None:
        if params.model != "anny":
            raise BodyParamError(f"{source}: model is '{params.model}', the anny backend needs 'anny'")
        if params.shape.shape != (len(PHENOTYPES),):
            raise BodyParamError(
                f"{source}: anny shape must have {len(PHENOTYPES)} phenotype values, got {params.shape.shape}"
            )
        unknown = [b for b in params.pose_bones if b not in self.bone_index]
        if unknown:
            raise BodyParamError(f"{source}: unknown anny bones {unknown}")
        if params.body_pose.shape[1:] != (len(params.pose_bones), 3):
            raise BodyParamError(
                f"{source}: body_pose shape {params.body_pose.shape} does not match {len(params.pose_bones)} pose bones"
            )

    @torch.no_grad()
    def pose(self, params: BodyParams, source: str = "body parameters") -> BodySequence:
        self.check(params, source)
        m = self.model
        mdtype = m.template_vertices.dtype
        n = params.num_frames
        pose = torch.as_tensor(params.body_pose, dtype=mdtype)
        mats = torch.eye(4, dtype=mdtype).repeat(n, 1, 1, 1).repeat(1, len(m.bone_labels), 1, 1)
        for k, bone in enumerate(params.pose_bones):
            mats[:, self.bone_index[bone], :3, :3] = rotvec_to_matrix(pose[:, k])
        phen = torch.as_tensor(params.shape, dtype=mdtype)[None]
        out = m(pose_parameters=mats, phenotype_kwargs=phen)
        verts = out["vertices"].to(self.dtype)
        heads = out["bone_poses"][:, :, :3, 3].to(self.dtype)
        kp = self._keypoints(verts, heads)
        rot = rotvec_to_matrix(torch.as_tensor(params.global_orient, dtype=self.dtype))
        t = torch.as_tensor(params.transl, dtype=self.dtype)[:, None]
        to_cam = lambda x: x @ rot.transpose(1, 2) + t  # noqa: E731
        return BodySequence(
            vertices=to_cam(verts), faces=self.faces, keypoints=to_cam(kp),
            vertex_parts=self.vertex_parts, rest_vertices=out["rest_vertices"][0].to(self.dtype),
            smpl_parts=self.smpl_parts,
        )  # fmt: skip

    def _keypoints(self, verts: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        b = self.bone_index
        fv = self._face_vertex_ids
        joint = {
            "r_shoulder": heads[:, b["upperarm01.R"]], "l_shoulder": heads[:, b["upperarm01.L"]],
            "r_elbow": heads[:, b["lowerarm01.R"]], "l_elbow": heads[:, b["lowerarm01.L"]],
            "r_wrist": heads[:, b["wrist.R"]], "l_wrist": heads[:, b["wrist.L"]],
            "r_hip": heads[:, b["upperleg01.R"]], "l_hip": heads[:, b["upperleg01.L"]],
            "r_knee": heads[:, b["lowerleg01.R"]], "l_knee": heads[:, b["lowerleg01.L"]],
            "r_ankle": heads[:, b["foot.R"]], "l_ankle": heads[:, b["foot.L"]],
            "r_eye": heads[:, b["eye.R"]], "l_eye": heads[:, b["eye.L"]],
            "nose": verts[:, fv["nose"]], "r_ear": verts[:, fv["r_ear"]], "l_ear": verts[:, fv["l_ear"]],
        }  # fmt: skip
        joint["neck"] = 0.5 * (joint["r_shoulder"] + joint["l_shoulder"])
        return torch.stack([joint[k] for k in KEYPOINT_NAMES], dim=1)


def anny_rest_params(
    num_frames: int = 1, distance: float = 4.0, focal: float = 600.0, res: int = 512
) -> BodyParams:
    """A front-facing rest pose seen from `distance` metres (useful for checks and tests)."""
    go = np.tile(BODY_TO_CAMERA_ROTVEC, (num_frames, 1)).astype(np.float32)
    return BodyParams(
        model="anny", shape=np.full(len(PHENOTYPES), 0.5, np.float32), global_orient=go,
        body_pose=np.zeros((num_frames, len(POSE_BONES), 3), np.float32),
        transl=np.tile(np.array([0.0, 0.0, distance], np.float32), (num_frames, 1)),
        focal=focal, render_res=(res, res), pose_bones=POSE_BONES,
    )  # fmt: skip


# anny's body frame (X left, Y back, Z up) to OpenCV camera (x right, y down, z forward): the
# subject faces the camera, their left hand on the image's right. Rows: x=X, y=-Z, z=Y.
_R0 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
BODY_TO_CAMERA_ROTVEC = np.array([np.pi / 2, 0.0, 0.0])  # rotation of +90 deg about x equals _R0
assert np.allclose(rotvec_to_matrix(torch.tensor(BODY_TO_CAMERA_ROTVEC)).numpy(), _R0, atol=1e-12)
