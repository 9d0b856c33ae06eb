"""Guidance rendering: a GL (moderngl/EGL) or pure-torch visibility buffer, then shared shading."""

from cosec.render.maps import GUIDANCE_TYPES, PALETTE, FrameMaps, GuidanceRenderer
from cosec.render.raster import gl_available, rasterize, rasterize_torch

__all__ = [
    "GUIDANCE_TYPES",
    "PALETTE",
    "FrameMaps",
    "GuidanceRenderer",
    "gl_available",
    "rasterize",
    "rasterize_torch",
]
