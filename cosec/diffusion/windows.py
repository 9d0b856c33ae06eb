"""Context windows over the frame axis: denoise a video of any length in constant memory (Champ, AnimateDiff).

At every denoising step the D-UNet runs on windows of ``length`` frames that start every ``length - overlap``
frames; a frame covered by several windows gets the mean of their predictions (each window's weight at a frame
is 1 / the number of windows covering it, so the weights of a frame sum to one). The last window is moved back
to end on the last frame, so every window is full length and no window wraps around from the end of the video
to its start (Champ's default scheduler wraps, which makes the last frames attend to the first; a non-looping
motion is better served without). ``stride`` > 1 adds Champ's dilated windows: level k (k < stride) tiles
every 2**k-th frame, so distant frames share a window. The reference bank and the CLIP embedding are computed
once per video (:func:`reference_conditioning`); guidance features are computed per window
(:class:`WindowGuidance`), so nothing but the latents (4 x F x h x w) grows with the number of frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from cosec.models import ChampModel, Conditioning


@dataclass(frozen=True)
class ContextWindows:
    """Window layout over the frame axis; defaults as Champ's inference (24 frames, overlap 4, stride 1)."""

    length: int = 24
    overlap: int = 4
    stride: int = 1  # dilation levels: 1 = contiguous windows only (Champ's default)

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"ContextWindows: length must be >= 1, got {self.length}")
        if not 0 <= self.overlap < self.length:
            raise ValueError(
                f"ContextWindows: overlap must be in [0, length={self.length}), got {self.overlap}"
            )
        if self.stride < 1:
            raise ValueError(f"ContextWindows: stride must be >= 1, got {self.stride}")

    def windows(self, num_frames: int) -> list[list[int]]:
        """Frame indices of every window, in order; a video no longer than one window is one window."""
        if num_frames < 1:
            raise ValueError(f"ContextWindows: need at least one frame, got {num_frames}")
        if num_frames <= self.length:
            return [list(range(num_frames))]
        # a level whose dilated window would span more than twice the video adds nothing (as Champ)
        levels = min(self.stride, math.ceil(math.log2(num_frames / self.length)) + 1)
        out: list[list[int]] = []
        for level in range(levels):
            step = 2**level
            for phase in range(step):
                frames = list(range(phase, num_frames, step))
                out.extend([frames[i] for i in span] for span in self._tile(len(frames)))
        return out

    def _tile(self, n: int) -> list[range]:
        """Contiguous spans of ``length`` covering 0..n-1, starting every length - overlap, the last one flush."""
        if n <= self.length:
            return [range(n)]
        hop = self.length - self.overlap
        starts = list(range(0, n - self.length, hop)) + [n - self.length]
        return [range(s, s + self.length) for s in starts]

    def weights(self, num_frames: int) -> torch.Tensor:
        """(windows, frames) float64: 1 / coverage where a window covers a frame, else 0; columns sum to one."""
        wins = self.windows(num_frames)
        cover = torch.zeros(len(wins), num_frames, dtype=torch.float64)
        for i, w in enumerate(wins):
            cover[i, w] = 1.0
        count = cover.sum(0)
        if bool((count == 0).any()):  # cannot happen by construction; a layout bug must not pass silently
            raise RuntimeError(
                f"ContextWindows: frames {torch.nonzero(count == 0).flatten().tolist()} uncovered"
            )
        return cover / count


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...


GuidanceLoader = Callable[[Sequence[int]], dict[str, torch.Tensor]]


class WindowGuidance:
    """Guidance features of any frames of a video, computed from the maps of those frames only.

    ``load(frames)`` returns the maps of those frames ({type: (B,3,n,H,W) in [0,1]}), read from disk or
    rendered; nothing of the whole video is held. ``cache=True`` keeps each window's features between steps
    (memory then grows with the video: meant for short clips such as the evaluation's).
    """

    def __init__(self, model: ChampModel, load: GuidanceLoader, cache: bool = False):
        self.model, self.load, self.cache = model, load, cache
        self._cache: dict[tuple[int, ...], torch.Tensor] = {}

    @classmethod
    def from_tensors(cls, model: ChampModel, guidance: dict[str, torch.Tensor], cache: bool = False):
        """Over maps already in memory ({type: (B,3,F,H,W)}): each window encodes its slice."""

        def load(frames: Sequence[int]) -> dict[str, torch.Tensor]:
            index = torch.as_tensor(list(frames), dtype=torch.long)
            return {k: g.index_select(2, index.to(g.device)) for k, g in guidance.items()}

        return cls(model, load, cache)

    @torch.no_grad()
    def __call__(self, frames: Sequence[int]) -> torch.Tensor:
        key = tuple(frames)
        if key in self._cache:
            return self._cache[key]
        maps = {k: v.to(self.model.device) for k, v in self.load(frames).items()}
        feats = self.model.guidance_encoders(maps)
        if self.cache:
            self._cache[key] = feats
        return feats


def reference_conditioning(model: ChampModel, ref_pixels: torch.Tensor) -> Conditioning:
    """CLIP embedding and reference bank of a reference (B,3,H,W) in [-1,1]: once per video, no guidance.

    The same two passes as ``ChampModel.condition``, which also encodes a whole clip's guidance."""
    from cosec.models import Conditioning

    clip = model.clip_embeds(ref_pixels).to(model.dtype)
    bank = model.reference_unet(model.encode_latents(ref_pixels).to(model.dtype), clip)
    return Conditioning(clip, bank, None)


def windowed_predict(
    sample: torch.Tensor,
    predict: Callable[[torch.Tensor, Conditioning], torch.Tensor],
    cond: Conditioning,
    windows: ContextWindows | None = None,
    guidance: WindowGuidance | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """The float32 prediction over a whole clip (B,C,F,h,w) from one ``predict(window_sample, window_cond)``
    call per window, averaged where windows overlap.

    Guidance features come from ``cond.guidance_features`` (sliced per window) or, when those are None, from
    ``guidance`` (computed per window). One window over the whole clip is exactly the plain call: its slice is
    the whole clip and its weights are 1. Frames (B,C,h,w) always make one plain call.
    """
    if sample.ndim != 5:
        out = predict(sample, cond).float()
        if progress is not None:
            progress.update(1)
        return out
    frames = sample.shape[2]
    windows = windows or ContextWindows()
    if cond.guidance_features is None and guidance is None:
        raise ValueError(
            "windowed_predict: no guidance (cond.guidance_features is None and no WindowGuidance)"
        )
    wins = windows.windows(frames)
    weights = windows.weights(frames)
    total: torch.Tensor | None = None
    for i, win in enumerate(wins):
        index = torch.as_tensor(win, dtype=torch.long, device=sample.device)
        if cond.guidance_features is not None:
            feats = cond.guidance_features.index_select(2, index.to(cond.guidance_features.device))
        else:
            feats = guidance(win)
        v = predict(sample.index_select(2, index), cond.__class__(cond.clip_embeds, cond.bank, feats)).float()
        w = weights[i, win].to(device=v.device, dtype=torch.float32).view(1, 1, -1, 1, 1)
        if total is None:
            total = torch.zeros(v.shape[:2] + (frames,) + v.shape[3:], dtype=torch.float32, device=v.device)
        total.index_add_(2, index.to(v.device), v * w)
        if progress is not None:
            progress.update(1)
    assert total is not None
    return total


def num_windows(shape: Sequence[int], windows: ContextWindows | None = None) -> int:
    """How many D-UNet calls (per branch) one denoising step makes for latents of ``shape``."""
    return 1 if len(shape) != 5 else len((windows or ContextWindows()).windows(int(shape[2])))


@torch.no_grad()
def decode_frames(model: ChampModel, latents: torch.Tensor, chunk: int = 24):
    """Decode clip latents (B,4,F,h,w) ``chunk`` frames at a time: yields pixels (B,3,n,H,W) in [-1,1], so a
    writer can stream them and the VAE's activations never hold more than ``chunk`` frames (frames: one call)."""
    if chunk < 1:
        raise ValueError(f"decode_frames: chunk must be >= 1, got {chunk}")
    if latents.ndim != 5:
        yield model.decode_latents(latents)
        return
    for start in range(0, latents.shape[2], chunk):
        yield model.decode_latents(latents[:, :, start : start + chunk])
