"""Guidance in Champ's conventions: semantic colours per SMPL part, depth and normal encodings."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from cosec.body.anny_body import anny_rest_params
from cosec.body.base import (
    KEYPOINT_NAMES,
    PART_INDEX,
    SMPL_JOINT_INDEX,
    SMPL_JOINT_NAMES,
    BodyParams,
    BodySequence,
)
from cosec.body.smpl_body import _SMPL_JOINT_PART, SmplBody
from cosec.render import PALETTE, SEMANTIC_BACKGROUND, GuidanceRenderer
from cosec.render.champ import CHAMP_WORLD_LINEAR, linear_to_srgb, srgb_to_linear
from tests.data.smpl_fake import write_fake_smpl

BG = tuple(int(c) for c in SEMANTIC_BACKGROUND)
_JOINT_COARSE = torch.tensor([PART_INDEX[p] for p in _SMPL_JOINT_PART])  # SMPL joint -> clothing region


def _colours(img: np.ndarray) -> set[tuple[int, ...]]:
    return set(map(tuple, img.reshape(-1, 3).tolist()))


def test_palette_is_champs_viridis_ramp_and_background():
    # 24 distinct colours; Champ's table is viridis at 10*j/255 for joint j (pelvis darkest, hands brightest)
    assert PALETTE.shape == (24, 3) and len(_colours(PALETTE)) == 24
    from matplotlib import colormaps

    ramp = np.array(colormaps["viridis"].colors)[10 * np.arange(24)] * 255
    assert np.abs(PALETTE.astype(float) - ramp).max() < 2.5
    # the world colour of Champ's semantic pass through the sRGB view: its pelvis colour
    assert BG == (68, 1, 84) == tuple(PALETTE[0])
    enc = linear_to_srgb(torch.tensor(CHAMP_WORLD_LINEAR, dtype=torch.float64)) * 255
    assert np.allclose(enc.numpy(), BG, atol=0.02)


def _fake_smpl_with_part_faces(path, seed=0):
    """The fake SMPL file, re-meshed so that every triangle lies inside one part (vertex owner)."""
    write_fake_smpl(path, seed=seed)
    with open(path, "rb") as fh:
        data = pickle.load(fh)
    owner = data["weights"].argmax(1)
    rng = np.random.default_rng(seed)
    faces = []
    for j in range(24):
        mine = np.nonzero(owner == j)[0]
        faces.append(mine[rng.integers(0, len(mine), (len(mine) * 2, 3))])
    data["f"] = np.concatenate(faces).astype(np.int64)
    with open(path, "wb") as fh:
        pickle.dump(data, fh)
    return owner


def _smpl_params(n=1):
    return BodyParams(
        "smpl", np.zeros(10, np.float32), np.zeros((n, 3), np.float32), np.zeros((n, 23, 3), np.float32),
        np.tile(np.array([0, 0, 2.5], np.float32), (n, 1)), 300.0, (128, 128),
    )  # fmt: skip


def test_smpl_semantic_map_shows_champs_colour_on_each_part(tmp_path):
    owner = _fake_smpl_with_part_faces(tmp_path / "SMPL_NEUTRAL.pkl")
    body = SmplBody(tmp_path / "SMPL_NEUTRAL.pkl")
    # parts come from the user's own model file: argmax of its skinning weights
    assert torch.equal(body.smpl_parts, torch.as_tensor(owner))
    assert torch.equal(body.vertex_parts, _JOINT_COARSE[torch.as_tensor(owner)])  # clothing regions follow
    params = _smpl_params()
    seq = body.pose(params)
    r = GuidanceRenderer(128, backend="torch")
    m = r.render_frame(seq, params, 0)
    face, _ = r.face_buffer(seq, params, 0)
    sem = m.semantic_map
    assert m.mask.mean() > 0.05
    # only Champ's colours (and its background), and each body pixel shows the colour of its face's part
    assert _colours(sem) <= _colours(PALETTE) | {BG}
    hit = face >= 0
    part = seq.smpl_parts[seq.faces[face[hit]][:, 0]].numpy()
    assert np.array_equal(sem[hit.numpy()], PALETTE[part])
    assert (sem[~m.mask] == BG).all()
    assert len(np.unique(part)) >= 20  # most of the 24 parts are on screen


def test_semantic_colours_blend_across_a_part_boundary_in_linear_light():
    # One frontal triangle whose corners lie in three parts: pelvis, head, right hand.
    z = 2.0
    verts = torch.tensor([[-0.5, 0.4, z], [0.5, 0.4, z], [0.0, -0.5, z]])
    parts = torch.tensor([SMPL_JOINT_INDEX["pelvis"], SMPL_JOINT_INDEX["head"], SMPL_JOINT_INDEX["r_hand"]])
    seq = _one_mesh(verts, torch.tensor([[0, 1, 2]]), parts)
    params = _flat_params(64.0, 64)
    r = GuidanceRenderer(64, backend="torch")
    m = r.render_frame(seq, params, 0, sign=1.0)
    face, mesh = r.face_buffer(seq, params, 0)
    # the pixel nearest the centroid: its colour is the barycentric mix of linear colours, re-encoded
    xy = mesh.xy_fixed.double() / 256  # SUBPIXEL
    cx, cy = xy.mean(0)
    row, col = int(cy), int(cx)
    assert face[row, col] == 0
    px, py = col + 0.5, row + 0.5
    (ax, ay), (bx, by), (qx, qy) = xy.tolist()
    area = (bx - ax) * (qy - ay) - (by - ay) * (qx - ax)
    w0 = ((bx - px) * (qy - py) - (by - py) * (qx - px)) / area
    w1 = ((qx - px) * (ay - py) - (qy - py) * (ax - px)) / area
    w = torch.tensor([w0, w1, 1 - w0 - w1], dtype=torch.float64)
    lin = srgb_to_linear(torch.as_tensor(PALETTE[parts.numpy()], dtype=torch.float64) / 255)
    want = np.rint(linear_to_srgb((w[:, None] * lin).sum(0)).numpy() * 255)
    assert np.abs(m.semantic_map[row, col].astype(float) - want).max() <= 1
    # blending in sRGB values instead would be visibly off (so the test tells the two apart)
    naive = (w[:, None] * torch.as_tensor(PALETTE[parts.numpy()], dtype=torch.float64)).sum(0).numpy()
    assert np.abs(naive - want).max() > 4


def _flat_params(focal: float, res: int) -> BodyParams:
    """Camera parameters for a hand-built mesh (its vertices are already in the camera frame)."""
    z = np.zeros((1, 3))
    return BodyParams("smpl", np.zeros(10), z, np.zeros((1, 23, 3)), z, focal, (res, res))


def _one_mesh(verts: torch.Tensor, faces: torch.Tensor, parts: torch.Tensor) -> BodySequence:
    kp = torch.zeros(1, len(KEYPOINT_NAMES), 3)
    kp[..., 2] = -1  # behind the camera: no skeleton drawn
    return BodySequence(
        vertices=verts[None].float(), faces=faces.long(), keypoints=kp,
        vertex_parts=torch.ones(len(verts), dtype=torch.long), rest_vertices=verts.float(), smpl_parts=parts.long(),
    )  # fmt: skip


def _plane(z_of, size=1.0):
    """A square of 2x2 triangles in front of the camera; z_of(x, y) gives each corner's depth."""
    xs = torch.tensor([-size, 0.0, size])
    pts = torch.tensor([[x, y, z_of(x, y)] for y in xs.tolist() for x in xs.tolist()])
    faces = []
    for i in range(2):
        for j in range(2):
            a = 3 * i + j
            faces += [[a, a + 1, a + 3], [a + 1, a + 4, a + 3]]
    return pts, torch.tensor(faces)


def _render_plane(z_of, res=48, focal=30.0, sign=1.0, flip=False):
    pts, faces = _plane(z_of)
    if flip:
        faces = faces[:, [0, 2, 1]]
    seq = _one_mesh(pts, faces, torch.zeros(len(pts), dtype=torch.long))
    params = _flat_params(focal, res)
    r = GuidanceRenderer(res, backend="torch")
    return r.render_frame(seq, params, 0, sign=sign)


def test_depth_is_champs_per_frame_min_max_nearest_white():
    m = _render_plane(lambda x, y: 3.0 + 0.5 * x)  # the right side is farther
    d = m.depth[..., 0].astype(int)
    assert (m.depth[..., 0] == m.depth[..., 1]).all() and (m.depth[..., 0] == m.depth[..., 2]).all()
    assert (d[~m.mask] == 0).all()  # background black
    body = d[m.mask]
    assert body.max() == 255 and body.min() <= 3  # nearest visible point white, farthest black
    row = d[d.shape[0] // 2][m.mask[d.shape[0] // 2]]
    assert (np.diff(row) <= 0).all() and row[0] > row[-1] + 200  # monotone: farther is darker
    # the same body twice as far: the same normalised map (Champ has no metric range)
    far = _render_plane(lambda x, y: 2 * (3.0 + 0.5 * x), focal=60.0)
    assert np.abs(far.depth.astype(int) - m.depth.astype(int)).max() <= 2


def test_depth_of_a_flat_frontal_surface_is_white():
    m = _render_plane(lambda x, y: 3.0)
    assert (m.depth[m.mask] == 255).all() and (m.depth[~m.mask] == 0).all()


@pytest.mark.parametrize("flip", [False, True])
def test_normal_encoding_is_champs_and_faces_the_viewer(flip):
    # frontal: (128,128,255) whatever the winding (Cycles turns back faces to the viewer)
    m = _render_plane(lambda x, y: 3.0, flip=flip)
    assert (m.normal[m.mask] == (128, 128, 255)).all() and (m.normal[~m.mask] == 0).all()
    # the right side farther: the normal leans to the image right -> red up
    k, c = 0.25 / np.sqrt(1.25), 0.5 / np.sqrt(1.25)  # half the tilted unit normal's x (or y) and z
    m = _render_plane(lambda x, y: 3.0 + 0.5 * x, flip=flip)
    px = m.normal[m.mask].astype(int)
    assert np.abs(px - np.rint(255 * np.array([0.5 + k, 0.5, 0.5 + c]))).max() <= 1
    # the lower part farther (image y down): the normal leans down -> green below 128
    m = _render_plane(lambda x, y: 3.0 + 0.5 * y, flip=flip)
    px = m.normal[m.mask].astype(int)
    assert np.abs(px - np.rint(255 * np.array([0.5, 0.5 - k, 0.5 + c]))).max() <= 1


def test_anny_parts_map_onto_smpl_parts_consistently(anny_body):
    # every one of the 24 parts is used, sides agree with SMPL's, the clothing regions agree with the 24 parts
    parts = anny_body.smpl_parts
    assert set(parts.unique().tolist()) == set(range(24))
    assert torch.equal(_JOINT_COARSE[parts], anny_body.vertex_parts)
    seq = anny_body.pose(anny_rest_params(1, distance=3.0))
    v = seq.vertices[0]
    mean = {name: v[parts == j].mean(0) for j, name in enumerate(SMPL_JOINT_NAMES)}
    for left in [n for n in SMPL_JOINT_NAMES if n.startswith("l_")]:
        assert (
            mean[left][0] > mean["r_" + left[2:]][0]
        )  # facing the camera: the subject's left on image right
    assert mean["head"][1] < mean["neck"][1] < mean["spine3"][1] < mean["pelvis"][1] < mean["l_knee"][1]
    assert mean["l_knee"][1] < mean["l_ankle"][1] and mean["l_elbow"][1] < mean["l_wrist"][1]


def test_anny_semantic_map_uses_the_same_palette(anny_body):
    params = anny_rest_params(1, distance=3.0, focal=700, res=256)
    seq = anny_body.pose(params)
    m = GuidanceRenderer(128, backend="torch").render_frame(seq, params, 0)
    body = m.semantic_map[m.mask]
    exact = np.isin(
        body.view([("", body.dtype)] * 3).ravel(), PALETTE.view([("", PALETTE.dtype)] * 3).ravel()
    )
    assert exact.mean() > 0.7  # part interiors: exactly Champ's colours; the rest are blends at part borders
    assert len(_colours(body[exact])) >= 18
    assert (m.semantic_map[~m.mask] == BG).all()
