"""Guidance maps (depth, normal, semantic, mask, skeleton) and a shaded RGB image for one frame.

Depth, normal and semantic map follow Champ's conventions (cosec/render/champ.py; docs/data.md lists
what still differs). All maps come from the visible-face buffer of `raster.py`, so the GL and torch
backends give the same maps wherever their face buffers agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from cosec.body.base import BodyParams, BodySequence
from cosec.render.champ import (
    CHAMP_PART_RGB,
    CHAMP_SEMANTIC_BACKGROUND,
    champ_depth,
    encode_normal,
    linear_to_srgb,
    srgb_to_linear,
)
from cosec.render.raster import SUBPIXEL, ScreenMesh, project, rasterize
from cosec.render.skeleton import draw_skeleton

GUIDANCE_TYPES: tuple[str, ...] = ("depth", "normal", "semantic_map", "dwpose")
PALETTE = CHAMP_PART_RGB  # (24,3) sRGB colour of SMPL part j; the background is SEMANTIC_BACKGROUND
SEMANTIC_BACKGROUND = CHAMP_SEMANTIC_BACKGROUND
_PART_LINEAR = srgb_to_linear(torch.as_tensor(CHAMP_PART_RGB, dtype=torch.float32) / 255)

AlbedoFn = Callable[
    [torch.Tensor, torch.Tensor], torch.Tensor
]  # (rest xyz (N,3), part (N,)) -> rgb (N,3) in [0,1]


@dataclass
class FrameMaps:
    """One frame's maps as uint8 (H,W,3) arrays (mask (H,W) bool, part (H,W) int labels)."""

    depth: np.ndarray
    normal: np.ndarray
    semantic_map: np.ndarray
    dwpose: np.ndarray
    mask: np.ndarray
    part: np.ndarray
    rgb: np.ndarray | None = None


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor, weighting: str = "area") -> torch.Tensor:
    """Vertex normals (V,3), unit length: face normals summed with area or corner-angle weights
    ("angle" is how Blender smooth-shades a mesh, hence Champ's normal maps)."""
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    fn = torch.cross(v1 - v0, v2 - v0, dim=1)
    if weighting == "angle":
        fn = fn / fn.norm(dim=1, keepdim=True).clamp_min(1e-20)
    n = torch.zeros_like(vertices)
    for k, (a, b, c) in enumerate(((v0, v1, v2), (v1, v2, v0), (v2, v0, v1))):
        w = 1.0 if weighting == "area" else _corner_angle(a, b, c)[:, None]
        n.index_add_(0, faces[:, k], fn * w)
    return n / n.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _corner_angle(at: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    e1, e2 = b - at, c - at
    return torch.atan2(torch.cross(e1, e2, dim=1).norm(dim=1), (e1 * e2).sum(1))


def outward_sign(vertices: torch.Tensor, faces: torch.Tensor) -> float:
    """+1 if the mesh's winding gives outward normals, else -1 (checked on a reference pose)."""
    n = vertex_normals(vertices, faces)
    return 1.0 if float(((vertices - vertices.mean(0)) * n).sum()) >= 0 else -1.0


def face_parts(faces: torch.Tensor, vertex_parts: torch.Tensor) -> torch.Tensor:
    """A triangle's part is the majority label of its three vertices (vertex 0 on a 3-way tie)."""
    p = vertex_parts[faces]
    return torch.where(p[:, 1] == p[:, 2], p[:, 1], p[:, 0])


class GuidanceRenderer:
    """Renders a BodySequence at `width`x`height` with the chosen raster backend."""

    def __init__(self, width: int, height: int | None = None, backend: str = "auto", light=(0.3, -0.5, -1.0)):
        self.width = int(width)
        self.height = int(height or width)
        self.backend = backend
        light_dir = torch.tensor(light, dtype=torch.float32)
        self.light = light_dir / light_dir.norm()  # towards the light, camera frame

    def intrinsics(self, params: BodyParams) -> tuple[float, float]:
        """Focal lengths in output pixels: the video is scaled to cover the output, centre-cropped
        (what the frames stage does to the RGB frames)."""
        rw, rh = params.render_res
        scale = max(self.width / rw, self.height / rh)
        return params.focal * scale, params.focal * scale

    def screen(self, seq: BodySequence, params: BodyParams, frame: int) -> ScreenMesh:
        fx, fy = self.intrinsics(params)
        return project(seq.vertices[frame], seq.faces, fx, fy, self.width, self.height)

    def face_buffer(
        self, seq: BodySequence, params: BodyParams, frame: int
    ) -> tuple[torch.Tensor, ScreenMesh]:
        mesh = self.screen(seq, params, frame)
        return rasterize(mesh, self.backend), mesh

    def render_frame(
        self, seq: BodySequence, params: BodyParams, frame: int, albedo: AlbedoFn | None = None,
        background: np.ndarray | None = None, sign: float | None = None,
    ) -> FrameMaps:  # fmt: skip
        H, W = self.height, self.width
        face, mesh = self.face_buffer(seq, params, frame)
        verts = seq.vertices[frame].float()
        if sign is None:
            sign = outward_sign(seq.vertices[0].float(), seq.faces)
        hit = face >= 0
        mask = hit.numpy()
        pix = hit.nonzero()  # (N,2) rows, cols
        f = face[hit]
        tri = seq.faces[f]  # (N,3)
        # Screen-space barycentrics at pixel centres (same fixed-point geometry as the raster).
        xy = mesh.xy_fixed[tri].double()
        px = pix[:, 1].double() * SUBPIXEL + SUBPIXEL / 2
        py = pix[:, 0].double() * SUBPIXEL + SUBPIXEL / 2
        (ax, ay), (bx, by), (cx, cy) = xy[:, 0].T, xy[:, 1].T, xy[:, 2].T
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        w0 = ((bx - px) * (cy - py) - (by - py) * (cx - px)) / area
        w1 = ((cx - px) * (ay - py) - (cy - py) * (ax - px)) / area
        bary = torch.stack([w0, w1, 1 - w0 - w1], dim=1).clamp(0, 1)
        # Perspective-correct weights: 1/z is affine in screen space.
        inv_z = 1 / mesh.z[tri].double()
        pc = bary * inv_z
        z = 1 / pc.sum(1)
        pc = (pc * z[:, None]).float()

        out = {}
        depth = np.zeros((H, W), np.float32)
        depth[mask] = champ_depth(z.float()).numpy()  # Champ: per frame, nearest visible point 1, farthest 0
        out["depth"] = np.repeat(_u8(depth)[..., None], 3, axis=2)

        # Champ's normals: Blender's angle-weighted smooth normals, turned to the viewer on back faces.
        vn = vertex_normals(verts, seq.faces, "angle") * sign
        n = (vn[tri] * pc[..., None]).sum(1)
        n = n / n.norm(dim=1, keepdim=True).clamp_min(1e-12)
        v = verts[tri]
        g = torch.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=1) * sign
        p3 = (v * pc[..., None]).sum(1)  # the surface point; the camera sits at the origin
        n = torch.where(((g * p3).sum(1) > 0)[:, None], -n, n)
        normal = np.zeros((H, W, 3), np.float32)
        normal[mask] = encode_normal(n).numpy()
        out["normal"] = _u8(normal)

        # Champ's semantic map: per-vertex part colours blended across each triangle in linear light.
        lin = (_PART_LINEAR[seq.smpl_parts[tri]] * pc[..., None]).sum(1)
        semantic = np.empty((H, W, 3), np.float32)
        semantic[:] = SEMANTIC_BACKGROUND.astype(np.float32) / 255
        semantic[mask] = linear_to_srgb(lin).numpy()
        out["semantic_map"] = _u8(semantic)

        part = np.zeros((H, W), np.int64)  # clothing regions (PART_NAMES) for the albedo
        if getattr(seq, "_face_parts", None) is None:
            seq._face_parts = face_parts(seq.faces, seq.vertex_parts)  # constant over the sequence
        part[mask] = seq._face_parts[f].numpy()

        fx, fy = self.intrinsics(params)
        kp = seq.keypoints[frame]
        kz = kp[:, 2].clamp_min(1e-6)
        uv = torch.stack([fx * kp[:, 0] / kz + W / 2, fy * kp[:, 1] / kz + H / 2], dim=1).numpy()
        vis = (
            (kp[:, 2] > 0).numpy()
            & (uv[:, 0] > -W)
            & (uv[:, 0] < 2 * W)
            & (uv[:, 1] > -H)
            & (uv[:, 1] < 2 * H)
        )
        out["dwpose"] = draw_skeleton(uv, vis, W, H)

        rgb = None
        if albedo is not None:
            rest = (seq.rest_vertices[tri].float() * pc[..., None]).sum(1)
            col = albedo(rest, torch.as_tensor(part[mask]))
            ns = (vertex_normals(verts, seq.faces) * sign)[tri]  # shading keeps its own area-weighted normals
            ns = (ns * pc[..., None]).sum(1)
            ns = ns / ns.norm(dim=1, keepdim=True).clamp_min(1e-12)
            # Lambert with a soft ambient term (light direction in the camera frame, near the camera).
            lam = (ns * self.light).sum(1).clamp_min(0)
            shade = 0.35 + 0.65 * lam
            rgb_f = (
                np.zeros((H, W, 3), np.float32) if background is None else background.astype(np.float32) / 255
            )
            rgb_f[mask] = (col * shade[:, None]).clamp(0, 1).numpy()
            rgb = _u8(rgb_f)
        return FrameMaps(mask=mask, part=part, rgb=rgb, **out)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
