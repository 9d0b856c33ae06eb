"""The embedded synthetic benchmark: anny subjects, procedural motions, cameras, RGB videos."""

from cosec.synth.dataset import (
    SPLIT_FAMILIES,
    VideoSpec,
    plan,
    render_video,
    video_params,
    write_synthetic_data,
)

__all__ = ["SPLIT_FAMILIES", "VideoSpec", "plan", "render_video", "video_params", "write_synthetic_data"]
