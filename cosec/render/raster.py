"""Visibility rasterisers: per pixel, the index of the visible triangle (-1 for background).

Both backends see exactly the same screen-space triangles: vertex positions are snapped to the
1/256-pixel grid that GL rasterisers use (llvmpipe's 8 sub-pixel bits), coverage is the
pixel-centre test with a top-left fill rule (image coordinates, y down), and visibility is the
nearest normalised inverse depth, which is affine in screen space so both interpolate it alike.
Everything else (depth, normals, parts, colours) is computed from this buffer by shared code.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

SUBPIXEL = 256  # 8 sub-pixel bits, as llvmpipe's FIXED_ORDER
NEAR, FAR = 0.1, 1000.0


@dataclass
class ScreenMesh:
    """A projected frame. xy_fixed (V,2) int64 in 1/256 px (pixel centres at k+0.5);
    depth (V,) float32 normalised inverse depth in [0,1] (0 at NEAR); z (V,) camera depth;
    faces (T,3) int64; valid (T,) bool: triangles fully in front of the near plane."""

    xy_fixed: torch.Tensor
    depth: torch.Tensor
    z: torch.Tensor
    faces: torch.Tensor
    valid: torch.Tensor
    width: int
    height: int


def project(
    vertices: torch.Tensor, faces: torch.Tensor, fx: float, fy: float, width: int, height: int
) -> ScreenMesh:
    """Pinhole projection of camera-frame (OpenCV) vertices (V,3), principal point at the centre."""
    v = vertices.double()
    z = v[:, 2]
    zs = z.clamp_min(NEAR)
    u = fx * v[:, 0] / zs + width / 2
    w = fy * v[:, 1] / zs + height / 2
    xy = torch.stack([u, w], dim=1)
    xy_fixed = torch.round(xy.clamp(-(2**20), 2**20) * SUBPIXEL).long()
    depth = ((1 / NEAR - 1 / zs) / (1 / NEAR - 1 / FAR)).float()
    valid = (z[faces] > NEAR).all(dim=1)
    return ScreenMesh(xy_fixed, depth, z.float(), faces, valid, width, height)


def _edge(ax, ay, bx, by, px, py):
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


def _top_left(ax, ay, bx, by):
    # A pixel centre exactly on an edge belongs to the triangle only for these edge directions
    # (triangles have positive area, image y down); matched against llvmpipe on 80k pixels.
    dx, dy = bx - ax, by - ay
    return ((dy == 0) & (dx < 0)) | (dy < 0)


def rasterize_torch(mesh: ScreenMesh, chunk: int = 4_000_000) -> torch.Tensor:
    """Pure-torch z-buffer: (H,W) int64 visible-face index, -1 for background."""
    width, height = mesh.width, mesh.height
    fidx = mesh.valid.nonzero().squeeze(1)
    tri = mesh.xy_fixed[mesh.faces[fidx]]  # (T,3,2)
    x0, y0, x1, y1, x2, y2 = (
        tri[:, 0, 0],
        tri[:, 0, 1],
        tri[:, 1, 0],
        tri[:, 1, 1],
        tri[:, 2, 0],
        tri[:, 2, 1],
    )
    area = _edge(x0, y0, x1, y1, x2, y2)
    keep = area != 0  # degenerate triangles cover nothing, in GL too
    # Give every triangle positive area by swapping its last two vertices when needed.
    flip = area < 0
    order = torch.stack([torch.zeros_like(flip, dtype=torch.long), 1 + flip.long(), 2 - flip.long()], dim=1)
    tri = torch.gather(tri, 1, order[:, :, None].expand(-1, -1, 2))
    d = torch.gather(mesh.depth[mesh.faces[fidx]], 1, order)
    tri, d, fidx, area = tri[keep], d[keep], fidx[keep], area.abs()[keep]
    half = SUBPIXEL // 2
    lo = tri.min(dim=1).values
    hi = tri.max(dim=1).values
    # Pixel i's centre is at i*256+128 fixed units: candidates are centres inside the bbox.
    i0 = torch.div(lo - half + SUBPIXEL - 1, SUBPIXEL, rounding_mode="floor").clamp_min(0)
    i1 = torch.div(hi - half, SUBPIXEL, rounding_mode="floor")
    i1 = torch.minimum(i1, torch.tensor([width - 1, height - 1]))
    span = (i1 - i0 + 1).clamp_min(0)
    count = span[:, 0] * span[:, 1]
    key = torch.full((height * width,), torch.iinfo(torch.int64).max, dtype=torch.int64)
    nz = (count > 0).nonzero().squeeze(1)
    starts = 0
    while starts < nz.numel():
        # chunk triangles so that the candidate pairs stay bounded in memory
        csum = torch.cumsum(count[nz[starts:]], 0)
        stop = starts + max(1, int(torch.searchsorted(csum, torch.tensor(chunk)).item()))
        sel = nz[starts:stop]
        starts = stop
        cnt = count[sel]
        t = torch.repeat_interleave(torch.arange(sel.numel()), cnt)
        offs = torch.arange(int(cnt.sum())) - torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt)
        sw = span[sel, 0][t]
        px_i = i0[sel, 0][t] + offs % sw
        py_i = i0[sel, 1][t] + offs // sw
        px = px_i * SUBPIXEL + half
        py = py_i * SUBPIXEL + half
        tt = tri[sel][t]
        ax, ay, bx, by, cx, cy = tt[:, 0, 0], tt[:, 0, 1], tt[:, 1, 0], tt[:, 1, 1], tt[:, 2, 0], tt[:, 2, 1]
        e0 = _edge(bx, by, cx, cy, px, py)  # weight of vertex a
        e1 = _edge(cx, cy, ax, ay, px, py)  # weight of vertex b
        e2 = _edge(ax, ay, bx, by, px, py)  # weight of vertex c
        inside = (
            ((e0 > 0) | ((e0 == 0) & _top_left(bx, by, cx, cy)))
            & ((e1 > 0) | ((e1 == 0) & _top_left(cx, cy, ax, ay)))
            & ((e2 > 0) | ((e2 == 0) & _top_left(ax, ay, bx, by)))
        )
        t, e0, e1, e2, px_i, py_i = t[inside], e0[inside], e1[inside], e2[inside], px_i[inside], py_i[inside]
        dd = d[sel][t].double()
        z = ((e0 * dd[:, 0] + e1 * dd[:, 1] + e2 * dd[:, 2]) / area[sel][t]).float()
        # Depths are positive floats, whose bit patterns sort like the values; ties -> lower face id.
        zbits = z.clamp(0, 1).view(torch.int32).long()
        k = (zbits << 32) | fidx[sel][t]
        key.scatter_reduce_(0, py_i * width + px_i, k, reduce="amin")
    face = key & 0xFFFFFFFF
    face[key == torch.iinfo(torch.int64).max] = -1
    return face.view(height, width)


_VERT = """
#version 330
in vec3 in_pos;
void main() { gl_Position = vec4(in_pos, 1.0); }
"""
_FRAG = """
#version 330
out float face;
void main() { face = float(gl_PrimitiveID + 1); }
"""


class GLRasterizer:
    """moderngl on a headless EGL context (Mesa llvmpipe on CPU). One per thread."""

    def __init__(self, backend: str = "egl"):
        import moderngl

        self.ctx = moderngl.create_standalone_context(backend=backend)
        self.prog = self.ctx.program(vertex_shader=_VERT, fragment_shader=_FRAG)
        self._fbo = None
        self._size = None
        self.renderer = self.ctx.info.get("GL_RENDERER", "unknown")

    def _framebuffer(self, width: int, height: int):
        if self._size != (width, height):
            if self._fbo is not None:
                self._fbo.release()
            color = self.ctx.texture((width, height), 1, dtype="f4")
            depth = self.ctx.depth_renderbuffer((width, height))
            self._fbo = self.ctx.framebuffer(color_attachments=[color], depth_attachment=depth)
            self._size = (width, height)
        return self._fbo

    def _vertex_array(self, vertices: bytes, indices: bytes):
        """Reuse GPU buffers while the mesh size is unchanged (every frame of a sequence)."""
        key = (len(vertices), len(indices))
        if getattr(self, "_vao_key", None) != key:
            if getattr(self, "_vao", None) is not None:
                for obj in (self._vao, self._vbo, self._ibo):
                    obj.release()
            self._vbo = self.ctx.buffer(reserve=len(vertices))
            self._ibo = self.ctx.buffer(reserve=len(indices))
            self._vao = self.ctx.vertex_array(
                self.prog, [(self._vbo, "3f", "in_pos")], index_buffer=self._ibo, index_element_size=4
            )
            self._vao_key = key
        self._vbo.write(vertices)
        self._ibo.write(indices)
        return self._vao

    def __call__(self, mesh: ScreenMesh) -> torch.Tensor:
        import moderngl

        width, height = mesh.width, mesh.height
        fidx = mesh.valid.nonzero().squeeze(1)
        if fidx.numel() == 0:
            return torch.full((height, width), -1, dtype=torch.int64)
        xy = mesh.xy_fixed.double() / SUBPIXEL
        # NDC with w=1: GL's viewport transform maps these back onto the same 1/256 grid.
        ndc = torch.stack(
            [xy[:, 0] * 2 / width - 1, 1 - xy[:, 1] * 2 / height, mesh.depth.double() * 2 - 1], dim=1
        ).float()
        vbo = self.ctx.buffer(ndc.numpy().tobytes())
        ibo = self.ctx.buffer(mesh.faces[fidx].int().numpy().tobytes())
        vao = self.ctx.vertex_array(
            self.prog, [(vbo, "3f", "in_pos")], index_buffer=ibo, index_element_size=4
        )
        fbo = self._framebuffer(width, height)
        fbo.use()
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.ctx.depth_func = "<"
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        vao.render(moderngl.TRIANGLES)
        raw = np.frombuffer(fbo.read(components=1, dtype="f4"), dtype=np.float32).reshape(height, width)
        prim = torch.from_numpy(np.flipud(raw).astype(np.int64))  # GL rows run bottom-up
        out = torch.full_like(prim, -1)
        hit = prim > 0
        out[hit] = fidx[prim[hit] - 1]
        return out


_local = threading.local()


def gl_available() -> tuple[bool, str]:
    """Whether a headless EGL context can be created here, and why not."""
    try:
        get_gl_rasterizer()
        return True, ""
    except Exception as err:  # missing libEGL / no EGL device
        return False, f"{type(err).__name__}: {err}"


def get_gl_rasterizer() -> GLRasterizer:
    if getattr(_local, "gl", None) is None:
        _local.gl = GLRasterizer()
    return _local.gl


def rasterize(mesh: ScreenMesh, backend: str = "auto") -> torch.Tensor:
    """Visible-face buffer with backend "gl", "torch" or "auto" (GL when it works, else torch)."""
    if backend == "torch":
        return rasterize_torch(mesh)
    if backend == "gl":
        return get_gl_rasterizer()(mesh)
    if backend == "auto":
        ok, _ = gl_available()
        return get_gl_rasterizer()(mesh) if ok else rasterize_torch(mesh)
    raise ValueError(f"unknown raster backend '{backend}' (gl, torch or auto)")
