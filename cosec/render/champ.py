"""Champ's guidance conventions (its Blender/Cycles render of SMPL fits), as facts this renderer follows.

Read from fudan-generative-vision/champ, scripts/data_processors/smpl/: render_condition_maps.py and the
scene in blend/smpl_rendering.blend (Blender 3.3, Cycles, 1 sample, no denoising).

- Semantic map: every SMPL vertex gets the colour of its body part (24 parts = SMPL's 24 joints),
  Blender interpolates the vertex colours across each triangle (linear light), shows them through an
  Emission shader and writes sRGB ("Standard" view). The colours are the distinct rows of
  blend/smpl_mesh_info.npy["verts_color"] (stored BGR, flipped to RGB by the script): a viridis ramp,
  joint j at 10*j of 255. The world colour, linear (0.05781, 0.0003, 0.08866), becomes sRGB
  (68, 1, 84): the background equals the pelvis colour (only the mask tells them apart).
- Depth: the Z pass (camera-plane distance) through the compositor's Normalize (min/max over the
  visible surface; the background's 1e10 is ignored), then clamp(1 - x): nearest point 1, farthest 0,
  background 0; 8-bit grey with the "Raw" view.
- Normal: Geometry.Normal (smooth, viewer-facing) in Cycles' camera space (x right, y up, z away from
  the camera), colour (0.5 + x/2, 0.5 + y/2, 0.5 - z/2): a surface facing the camera is (128, 128, 255).
  Film transparent, "Raw" view: the background is black.
"""

from __future__ import annotations

import numpy as np
import torch

SMPL_JOINT_COUNT = 24

# Champ's part colours (sRGB, RGB order), row j = SMPL joint j (pelvis, l_hip, r_hip, spine1, ...).
CHAMP_PART_RGB = np.array(
    [
        (68, 1, 84), (71, 16, 99), (72, 29, 111), (71, 42, 122), (69, 55, 129), (65, 66, 135),
        (61, 78, 138), (56, 89, 140), (51, 99, 141), (46, 109, 142), (42, 118, 142), (39, 128, 142),
        (35, 137, 142), (32, 146, 140), (30, 156, 137), (33, 165, 133), (40, 174, 128), (53, 183, 121),
        (70, 192, 111), (90, 200, 100), (112, 207, 87), (137, 213, 72), (162, 218, 55), (189, 223, 38),
    ],
    dtype=np.uint8,
)  # fmt: skip
# The Blender world colour of the semantic pass, linear RGB; shown through the sRGB view transform.
CHAMP_WORLD_LINEAR = (0.05781, 0.0003, 0.08866)


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0,1] to linear light (the IEC 61966-2-1 curve Blender uses)."""
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


CHAMP_SEMANTIC_BACKGROUND = np.rint(
    linear_to_srgb(torch.tensor(CHAMP_WORLD_LINEAR, dtype=torch.float64)).numpy() * 255
).astype(np.uint8)
assert tuple(CHAMP_SEMANTIC_BACKGROUND) == (68, 1, 84)


def champ_depth(z: torch.Tensor) -> torch.Tensor:
    """Champ's depth value for the camera-plane depths `z` of one frame's visible body pixels."""
    if z.numel() == 0:
        return z
    lo, hi = z.min(), z.max()
    scale = 1 / (hi - lo) if hi > lo else torch.zeros_like(hi)  # Blender's Normalize: 0 when flat
    return (1 - (z - lo) * scale).clamp(0, 1)


def encode_normal(n_cv: torch.Tensor) -> torch.Tensor:
    """Unit normals in the OpenCV camera frame (x right, y down, z forward) -> Champ's colours in [0,1]."""
    # Cycles' camera frame is x right, y up, z forward: y flips, and Champ's blue is 0.5 - z/2.
    return torch.stack([0.5 + 0.5 * n_cv[:, 0], 0.5 - 0.5 * n_cv[:, 1], 0.5 - 0.5 * n_cv[:, 2]], dim=1)
