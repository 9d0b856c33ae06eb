"""Both body backends: anny (embedded) and SMPL through smplx with a random model file."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from cosec.body import PART_NAMES, BodyParamError, load_frame_params, load_params_folder, save_frame_params
from cosec.body.anny_body import POSE_BONES, anny_rest_params
from cosec.body.base import KEYPOINT_NAMES, BodyParams
from cosec.body.smpl_body import SmplBody, find_smpl_model
from tests.data.smpl_fake import write_fake_smpl


def test_anny_sequence_shapes_parts_and_keypoints(anny_body):
    params = anny_rest_params(2, distance=3.0)
    seq = anny_body.pose(params)
    assert seq.vertices.shape[0] == 2 and seq.vertices.shape[2] == 3
    assert seq.keypoints.shape == (2, len(KEYPOINT_NAMES), 3)
    assert set(seq.vertex_parts.unique().tolist()) == set(range(1, len(PART_NAMES) + 1))
    assert seq.faces.max() < seq.vertices.shape[1]
    # Facing the camera: the subject's left shoulder is on the image right (+x), head above (-y).
    kp = dict(zip(KEYPOINT_NAMES, seq.keypoints[0], strict=False))
    assert kp["l_shoulder"][0] > kp["r_shoulder"][0]
    assert kp["nose"][1] < kp["neck"][1] < kp["l_hip"][1] < kp["l_ankle"][1]
    assert kp["nose"][2] < kp["neck"][2]  # the face is towards the camera
    assert 2.7 < float(seq.vertices[0, :, 2].mean()) < 3.3


def test_anny_pose_and_phenotype_act(anny_body):
    params = anny_rest_params(2, distance=3.0)
    # Frame 1: left arm raised sideways (about -Y): the left wrist goes up (smaller camera y).
    params.body_pose[1, POSE_BONES.index("upperarm01.L")] = [0.0, -1.2, 0.0]
    seq = anny_body.pose(params)
    lw = KEYPOINT_NAMES.index("l_wrist")
    assert float(seq.keypoints[1, lw, 1]) < float(seq.keypoints[0, lw, 1]) - 0.3
    tall, short = params.frames([0]), params.frames([0])
    tall.shape = tall.shape.copy()
    tall.shape[4] = 1.0
    short.shape = short.shape.copy()
    short.shape[4] = 0.0
    h = [
        float(anny_body.pose(p).vertices[0, :, 1].max() - anny_body.pose(p).vertices[0, :, 1].min())
        for p in (tall, short)
    ]
    assert h[0] > h[1] + 0.1


def test_anny_rejects_bad_params(anny_body):
    params = anny_rest_params(1)
    params.shape = np.zeros(3, np.float32)
    with pytest.raises(BodyParamError, match="phenotype"):
        anny_body.pose(params, "x.npz")


@pytest.mark.parametrize("fmt", ["pkl", "npz"])
def test_smpl_backend_with_random_model(tmp_path, fmt):
    model = write_fake_smpl(tmp_path / "models" / "smpl" / f"SMPL_NEUTRAL.{fmt}", fmt=fmt)
    assert find_smpl_model(tmp_path / "models") == model
    body = SmplBody(tmp_path / "models")
    n = 2
    params = BodyParams(
        "smpl", np.zeros(10, np.float32), np.zeros((n, 3), np.float32), np.zeros((n, 23, 3), np.float32),
        np.array([[0, 0, 3.0], [0.5, 0, 3.0]], np.float32), 500.0, (512, 512),
    )  # fmt: skip
    seq = body.pose(params)
    assert seq.vertices.shape == (n, 6890, 3) and seq.keypoints.shape == (n, 18, 3)
    # transl moves everything rigidly; the nose keypoint is SMPL vertex 332 (smplx's selector)
    assert torch.allclose(
        seq.vertices[1] - seq.vertices[0], torch.tensor([0.5, 0.0, 0.0]).expand(6890, 3), atol=1e-5
    )
    assert torch.allclose(seq.keypoints[0, 0], seq.vertices[0, 332], atol=1e-6)
    # a global rotation of pi about y mirrors the body around the pelvis
    params.global_orient[1] = [0, np.pi, 0]
    params.transl[1] = params.transl[0]
    seq = body.pose(params)
    pelvis = body.model(betas=torch.zeros(1, 10)).joints[0, 0] + torch.tensor([0, 0, 3.0])
    d0, d1 = seq.vertices[0] - pelvis, seq.vertices[1] - pelvis
    assert torch.allclose(d1[:, 0], -d0[:, 0], atol=1e-4) and torch.allclose(d1[:, 1], d0[:, 1], atol=1e-4)
    # shape transfer: other betas change the body
    moved = body.pose(params.with_shape(np.full(10, 2.0, np.float32))).vertices
    assert (moved - seq.vertices).abs().max() > 1e-3


def test_smpl_missing_model_names_what_is_needed(tmp_path):
    with pytest.raises(FileNotFoundError, match="SMPL_NEUTRAL.pkl"):
        find_smpl_model(tmp_path)


def test_param_files_roundtrip_and_champ_npy(tmp_path):
    params = anny_rest_params(3)
    params.body_pose[2, 0] = [0.1, 0.2, 0.3]
    (tmp_path / "p").mkdir()
    for f in range(3):
        save_frame_params(tmp_path / "p" / f"{f:04d}.npz", params, f)
    back = load_params_folder(tmp_path / "p")
    assert back.pose_bones == POSE_BONES and np.allclose(back.body_pose, params.body_pose)
    assert np.allclose(back.transl, params.transl) and back.focal == pytest.approx(params.focal)
    # Champ / 4D-Humans per-frame .npy with rotation matrices
    from scipy.spatial.transform import Rotation

    rv = np.random.default_rng(0).normal(0, 0.3, (24, 3))
    champ = {"smpls": {"global_orient": Rotation.from_rotvec(rv[:1]).as_matrix()[None, 0:1][0],
                       "body_pose": Rotation.from_rotvec(rv[1:]).as_matrix(), "betas": np.ones(10)},
             "cam_t": np.array([0.1, 0.2, 5.0]), "scaled_focal_length": 800.0,
             "render_res": np.array([720, 1280])}  # fmt: skip
    np.save(tmp_path / "0000.npy", champ, allow_pickle=True)
    fr = load_frame_params(tmp_path / "0000.npy")
    assert fr["model"] == "smpl" and fr["render_res"] == (720, 1280)
    assert np.allclose(fr["body_pose"], rv[1:], atol=1e-5) and np.allclose(
        fr["global_orient"], rv[0], atol=1e-5
    )


def test_bad_param_files_are_named(tmp_path):
    params = anny_rest_params(1)
    params.body_pose[0, 3, 1] = np.nan
    save_frame_params(tmp_path / "nan.npz", params, 0)
    with pytest.raises(BodyParamError, match=r"nan\.npz.*NaN"):
        load_frame_params(tmp_path / "nan.npz")
    np.save(tmp_path / "shape.npy", {"smpls": {"global_orient": np.zeros(3), "body_pose": np.zeros((21, 3)),
                                              "betas": np.zeros(10)}, "cam_t": np.zeros(3),
                                    "scaled_focal_length": 5.0, "render_res": [64, 64]}, allow_pickle=True)  # fmt: skip
    with pytest.raises(BodyParamError, match=r"shape\.npy.*body_pose.*\(23,3\)"):
        load_frame_params(tmp_path / "shape.npy")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(BodyParamError, match=r"bad\.npz: unreadable"):
        load_frame_params(tmp_path / "bad.npz")
    with open(tmp_path / "odd.npy", "wb") as fh:
        pickle.dump([1, 2], fh)
    with pytest.raises(BodyParamError, match="odd.npy"):
        load_frame_params(tmp_path / "odd.npy")


class _Planted:
    """Unpickling this calls os.system: what a hostile .npy would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_planted_pickle_npy_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    evil = {"smpls": {"betas": np.zeros(10)}, "cam_t": _Planted(marker)}
    np.save(tmp_path / "0000.npy", np.array(evil, dtype=object), allow_pickle=True)
    with pytest.raises(BodyParamError, match=r"0000\.npy: refused to load: its pickle asks for .*system"):
        load_frame_params(tmp_path / "0000.npy")
    assert not marker.exists()
    # the same file through numpy's own loader would have run the command: the test's payload is live
    np.load(tmp_path / "0000.npy", allow_pickle=True)
    assert marker.exists()


def test_plain_npy_array_is_not_a_param_file(tmp_path):
    np.save(tmp_path / "0000.npy", np.zeros((3, 3)))
    with pytest.raises(BodyParamError, match=r"0000\.npy: expected a pickled dict"):
        load_frame_params(tmp_path / "0000.npy")
