"""DWPose/OpenPose-style body skeleton image from projected body-18 keypoints."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# Limbs as keypoint-index pairs and the OpenPose colour of each (the convention DWPose draws).
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip


def draw_skeleton(uv: np.ndarray, visible: np.ndarray, width: int, height: int) -> np.ndarray:
    """(18,2) pixel coordinates + (18,) visibility -> (H,W,3) uint8 skeleton on black.

    Line and joint sizes scale with the image (4 px at 512, as DWPose's stick width).
    """
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    scale = max(width, height) / 512
    stick = max(1, round(4 * scale))
    radius = max(0.5, 4 * scale)
    for k, (a, b) in enumerate(LIMBS):
        if visible[a] and visible[b]:
            # Darkened limb colour as in OpenPose renderings, joints in full colour.
            col = tuple(int(c * 0.6) for c in COLORS[k])
            draw.line([tuple(uv[a]), tuple(uv[b])], fill=col, width=stick)
    for j in range(len(uv)):
        if visible[j]:
            x, y = uv[j]
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=COLORS[j])
    return np.asarray(img)
