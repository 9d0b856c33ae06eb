"""The embedded synthetic benchmark: anny subjects, procedural motions, cameras, RGB videos."""

from cosec.synth.benchmark import SPLIT_FAMILIES, VideoSpec, plan, render_video, video_params, write_benchmark

__all__ = ["SPLIT_FAMILIES", "VideoSpec", "plan", "render_video", "video_params", "write_benchmark"]
