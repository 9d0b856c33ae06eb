"""Score one model on one split: the DisCo frame metrics plus LPIPS / FID when their weights are present."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from cosec.eval.backbones import LPIPSVGG, BackboneWeights, FIDInceptionV3, to_tensor01
from cosec.eval.metrics import MetricAccumulator, frechet_distance_features

# Metrics that depend on pretrained backbones; null in reports/metrics.json when unavailable.
BACKBONE_METRICS = ("lpips", "fid", "fid_vid", "fvd")


class Backbones:
    """The feature networks loaded once from a BackboneWeights folder, plus why the others are missing."""

    def __init__(self, weights: BackboneWeights | None = None, device: str | torch.device = "cpu"):
        self.weights = weights or BackboneWeights()
        self.device = torch.device(device)
        self.reasons: dict[str, str] = {}
        for metric in BACKBONE_METRICS:
            reason = self.weights.missing_reason(metric)
            if reason is not None:
                self.reasons[metric] = reason
        self.lpips = (
            None
            if "lpips" in self.reasons
            else LPIPSVGG.from_files(*self.weights.paths("lpips")).to(self.device)
        )
        self.inception = (
            None
            if "fid" in self.reasons
            else FIDInceptionV3.from_file(*self.weights.paths("fid")).to(self.device)
        )


@dataclass
class SplitEvaluator:
    """Accumulates one model's videos on one split; result() gives the metrics.json entry and reasons."""

    backbones: Backbones = field(default_factory=Backbones)
    batch_size: int = 16
    frames: MetricAccumulator = field(default_factory=MetricAccumulator)
    lpips_sum: float = 0.0
    lpips_n: int = 0
    feats_pred: list[np.ndarray] = field(default_factory=list)
    feats_gt: list[np.ndarray] = field(default_factory=list)

    def add_video(self, pred: np.ndarray, gt: np.ndarray, masks: np.ndarray | None = None) -> None:
        """pred, gt: (F, H, W, 3) uint8 frames paired by index (256 x 256 in the protocol); masks (F, H, W)."""
        self.frames.add_video(pred, gt, masks)
        bb = self.backbones
        for start in range(0, len(pred), self.batch_size):
            p = to_tensor01(pred[start : start + self.batch_size], bb.device)
            g = to_tensor01(gt[start : start + self.batch_size], bb.device)
            if bb.lpips is not None:
                self.lpips_sum += float(bb.lpips(p, g).sum())
                self.lpips_n += p.shape[0]
            if bb.inception is not None:
                self.feats_pred.append(bb.inception(p).cpu().numpy())
                self.feats_gt.append(bb.inception(g).cpu().numpy())

    def result(self) -> tuple[dict[str, float | None], dict[str, str]]:
        """({metric: value or None}, {metric: reason it is None})."""
        if self.frames.frames == 0:
            raise ValueError("SplitEvaluator.result: no frames were added")
        out = self.frames.result()
        reasons = dict(self.backbones.reasons)
        out["lpips"] = self.lpips_sum / self.lpips_n if self.lpips_n else None
        out["fid"] = None
        if self.feats_pred:
            n = sum(len(f) for f in self.feats_pred)
            if n < 2:
                reasons["fid"] = "FID needs at least 2 frames"
            else:
                out["fid"] = frechet_distance_features(
                    np.concatenate(self.feats_pred), np.concatenate(self.feats_gt)
                )
        out["fid_vid"] = None
        out["fvd"] = None
        if self.frames.empty_masks:
            reasons["person"] = (
                f"{self.frames.empty_masks} frames had an empty mask: person metrics used the whole frame"
            )
        for key in ("hf_ratio", "jitter"):
            if out.get(key) is None:
                reasons[key] = (
                    "ground truth has no high-frequency energy"
                    if key == "hf_ratio"
                    else "single-frame videos"
                )
        return out, reasons
