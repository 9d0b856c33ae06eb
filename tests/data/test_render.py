"""Renderer: GL (moderngl/EGL) and the torch z-buffer agree pixel for pixel; maps are sane."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cosec.body.anny_body import POSE_BONES, anny_rest_params
from cosec.render import PALETTE, SEMANTIC_BACKGROUND, GuidanceRenderer, gl_available
from cosec.render.maps import face_parts
from cosec.render.raster import SUBPIXEL, GLRasterizer, ScreenMesh, rasterize_torch

GL_OK, GL_WHY = gl_available()
needs_gl = pytest.mark.skipif(not GL_OK, reason=f"no EGL context: {GL_WHY}")


def _posed(anny_body):
    params = anny_rest_params(3, distance=3.0, focal=700, res=512)
    params.body_pose[1, POSE_BONES.index("upperarm01.L")] = [0.0, -1.3, 0.0]
    params.body_pose[1, POSE_BONES.index("lowerarm01.R")] = [-1.5, 0.0, 0.0]  # forearm across the body
    params.body_pose[2, POSE_BONES.index("root")] = [0.0, 0.0, 1.2]
    params.body_pose[2, POSE_BONES.index("upperleg01.L")] = [-0.8, 0.0, 0.0]
    return params, anny_body.pose(params)


@needs_gl
@pytest.mark.parametrize("res", [64, 128])
def test_gl_and_torch_agree_exactly_on_parts_and_mask(anny_body, res):
    params, seq = _posed(anny_body)
    gl, tr = GuidanceRenderer(res, backend="gl"), GuidanceRenderer(res, backend="torch")
    fparts = face_parts(seq.faces, seq.vertex_parts)
    for f in range(params.num_frames):
        a, _ = gl.face_buffer(seq, params, f)
        b, _ = tr.face_buffer(seq, params, f)
        assert (a >= 0).sum() > 0.05 * res * res
        assert torch.equal(a >= 0, b >= 0)  # masks: exact
        pa = torch.where(a >= 0, fparts[a.clamp_min(0)], 0)
        pb = torch.where(b >= 0, fparts[b.clamp_min(0)], 0)
        assert torch.equal(pa, pb)  # part labels: exact
        ma, mb = gl.render_frame(seq, params, f), tr.render_frame(seq, params, f)
        assert np.array_equal(ma.semantic_map, mb.semantic_map) and np.array_equal(ma.mask, mb.mask)


@needs_gl
def test_gl_and_torch_agree_on_random_overlapping_triangles():
    gen = torch.Generator().manual_seed(0)
    w = h = 24
    gl = GLRasterizer()
    for trial in range(6):
        n = 40
        # Half the trials put vertices on half-pixel grid points: many pixel centres lie on edges.
        if trial % 2:
            xy = torch.randint(0, 2 * w, (3 * n, 2), generator=gen) * (SUBPIXEL // 2)
        else:
            xy = (torch.rand(3 * n, 2, generator=gen) * w * SUBPIXEL).long()
        depth = torch.rand(3 * n, generator=gen) * 0.5 + 0.25
        mesh = ScreenMesh(
            xy, depth, depth, torch.arange(3 * n).view(n, 3), torch.ones(n, dtype=torch.bool), w, h
        )
        assert torch.equal(gl(mesh), rasterize_torch(mesh))


def test_maps_are_consistent(anny_body):
    params, seq = _posed(anny_body)
    r = GuidanceRenderer(96, backend="torch")
    m = r.render_frame(seq, params, 0, albedo=lambda p, part: torch.full((p.shape[0], 3), 0.8))
    for a in (m.depth, m.normal, m.semantic_map, m.dwpose, m.rgb):
        assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    assert (m.semantic_map[~m.mask] == SEMANTIC_BACKGROUND).all()  # Champ's background outside the body
    assert not m.depth[~m.mask].any() and not m.normal[~m.mask].any()
    assert np.array_equal(m.mask, m.normal.any(2))  # every body pixel has a normal colour (blue >= 128)
    # part interiors show Champ's colours exactly; the frontal body faces the camera (blue)
    exact = (m.semantic_map[m.mask][:, None, :] == PALETTE[None]).all(2).any(1)
    assert exact.mean() > 0.6
    assert m.normal[m.mask][:, 2].mean() > 200
    # depth: per frame, the nearest visible point is white and the farthest black
    assert m.depth[m.mask][:, 0].max() == 255 and m.depth[m.mask][:, 0].min() <= 2
    assert m.dwpose.any() and m.dwpose.reshape(-1, 3).max(0).max() == 255


def test_near_plane_triangles_are_dropped_by_both(anny_body):
    params = anny_rest_params(1, distance=0.3, focal=100, res=64)  # the body straddles the near plane
    seq = anny_body.pose(params)
    r = GuidanceRenderer(32, backend="torch")
    face, mesh = r.face_buffer(seq, params, 0)
    assert not mesh.valid.all()
    assert mesh.valid[face[face >= 0]].all()
    if GL_OK:
        assert torch.equal(GuidanceRenderer(32, backend="gl").face_buffer(seq, params, 0)[0], face)
