"""Guidance rendering: a GL (moderngl/EGL) or pure-torch visibility buffer, then shared shading."""

from cosec._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "FrameMaps": ".maps",
        "GUIDANCE_TYPES": ".maps",
        "GuidanceRenderer": ".maps",
        "PALETTE": ".maps",
        "SEMANTIC_BACKGROUND": ".maps",
        "gl_available": ".raster",
        "rasterize": ".raster",
        "rasterize_torch": ".raster",
    },
)
