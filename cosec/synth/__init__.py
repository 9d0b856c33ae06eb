"""The embedded synthetic benchmark: anny subjects, procedural motions, cameras, RGB videos."""

from cosec._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "SPLIT_FAMILIES": ".dataset",
        "VideoSpec": ".dataset",
        "plan": ".dataset",
        "render_video": ".dataset",
        "video_params": ".dataset",
        "write_synthetic_data": ".dataset",
    },
)
