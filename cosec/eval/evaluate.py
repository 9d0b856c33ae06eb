"""Score one model on one split: the DisCo frame metrics, the person and colour measures, and LPIPS / FID /
FID-VID / FVD when their weights are present, each with a bootstrap confidence interval over test videos."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
import torch

from cosec.eval.backbones import BackboneWeights, to_tensor01
from cosec.eval.bootstrap import (
    BootstrapSettings,
    frechet_resampled,
    interval,
    pooled_ratio,
    resample_indices,
)
from cosec.eval.metrics import MetricAccumulator, frechet_distance_features, frechet_from_feature_lists

# Metrics that depend on pretrained backbones; null in reports/metrics.json when unavailable.
BACKBONE_METRICS = ("lpips", "fid", "fid_vid", "fvd")
VIDEO_METRICS = ("fid_vid", "fvd")
# Frame-averaged measures of MetricAccumulator (pooled as sum / count over frames or frame pairs).
FRAME_MEANS = ("ssim", "psnr", "l1", "ssim_person", "psnr_person", "ab_error_person", "jitter")
# Ratios of sums (prediction / ground truth): metric -> the MetricAccumulator per-video prefix.
RATIOS = {"hf_ratio": "hf", "chroma_ratio_person": "chroma"}


class Backbones:
    """The feature networks loaded once from a BackboneWeights folder, plus the true reason for each missing
    one (no folder, file absent, file rejected naming keys); ground-truth features cached per video."""

    def __init__(self, weights: BackboneWeights | None = None, device: str | torch.device = "cpu"):
        self.weights = weights or BackboneWeights()
        self.device = torch.device(device)
        self.reasons: dict[str, str] = {}
        self.nets: dict[str, torch.nn.Module] = {}
        for metric in BACKBONE_METRICS:
            net, reason = self.weights.load(metric, self.device)
            if net is None:
                self.reasons[metric] = reason or f"{metric}: not loaded"
            else:
                self.nets[metric] = net
        self.lpips = self.nets.get("lpips")
        self.inception = self.nets.get("fid")
        # (video key, metric) -> ground-truth features: every model of a split is scored on the same clips
        self._gt: dict[tuple[Hashable, str], object] = {}

    def gt_features(self, key: Hashable | None, metric: str, compute):
        if key is None:
            return compute()
        if (key, metric) not in self._gt:
            self._gt[(key, metric)] = compute()
        return self._gt[(key, metric)]


@dataclass
class SplitEvaluator:
    """Accumulates one model's videos on one split; result() gives the metrics.json entry and reasons."""

    backbones: Backbones = field(default_factory=Backbones)
    batch_size: int = 16
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)
    frames: MetricAccumulator = field(default_factory=MetricAccumulator)
    lpips_sum: float = 0.0
    lpips_n: int = 0
    lpips_videos: list[tuple[float, int]] = field(default_factory=list)
    # per video: (frames, 2048) Inception features of prediction and ground truth
    fid_pred: list[np.ndarray] = field(default_factory=list)
    fid_gt: list[np.ndarray] = field(default_factory=list)
    # per video metric, per video: (segments, D) features, or None for a clip shorter than a segment
    seg_pred: dict[str, list[np.ndarray | None]] = field(default_factory=dict)
    seg_gt: dict[str, list[np.ndarray | None]] = field(default_factory=dict)
    seg_skipped: dict[str, list[str]] = field(default_factory=dict)

    def add_video(
        self, pred: np.ndarray, gt: np.ndarray, masks: np.ndarray | None = None, key: Hashable | None = None
    ) -> None:
        """pred, gt: (F, H, W, 3) uint8 frames paired by index, at the scoring size; masks (F, H, W).

        key names the clip (the same for every model scored on it), so that its ground-truth features are
        computed once."""
        self.frames.add_video(pred, gt, masks)
        bb = self.backbones
        lp_sum, lp_n, fp, fg = 0.0, 0, [], []
        for start in range(0, len(pred), self.batch_size):
            p = to_tensor01(pred[start : start + self.batch_size], bb.device)
            g = to_tensor01(gt[start : start + self.batch_size], bb.device)
            if bb.lpips is not None:
                batch = float(bb.lpips(p, g).sum())
                self.lpips_sum += batch
                self.lpips_n += p.shape[0]
                lp_sum, lp_n = lp_sum + batch, lp_n + p.shape[0]
            if bb.inception is not None:
                fp.append(bb.inception(p).cpu().numpy())
                if key is None:
                    fg.append(bb.inception(g).cpu().numpy())
        if bb.lpips is not None:
            self.lpips_videos.append((lp_sum, lp_n))
        if bb.inception is not None:
            self.fid_pred.append(np.concatenate(fp))
            self.fid_gt.append(
                np.concatenate(fg) if key is None else bb.gt_features(key, "fid", lambda: self._inception(gt))
            )
        for metric in VIDEO_METRICS:
            net = bb.nets.get(metric)
            if net is None:
                continue
            from cosec.eval.video_backbones import video_features

            f_pred = video_features(pred, net)
            f_gt = bb.gt_features(key, metric, lambda net=net: video_features(gt, net))
            ok = f_pred.features is not None and f_gt.features is not None
            self.seg_pred.setdefault(metric, []).append(f_pred.features if ok else None)
            self.seg_gt.setdefault(metric, []).append(f_gt.features if ok else None)
            if not ok:
                self.seg_skipped.setdefault(metric, []).append(f_pred.reason or f_gt.reason or "")

    def _inception(self, gt: np.ndarray) -> np.ndarray:
        bb = self.backbones
        return np.concatenate(
            [
                bb.inception(to_tensor01(gt[s : s + self.batch_size], bb.device)).cpu().numpy()
                for s in range(0, len(gt), self.batch_size)
            ]
        )

    def result(self) -> tuple[dict[str, float | list[float] | None], dict[str, str]]:
        """({metric: value or None, metric_ci: [lo, hi] or None, videos: n}, {metric: reason it is None})."""
        if self.frames.frames == 0:
            raise ValueError("SplitEvaluator.result: no frames were added")
        out: dict = self.frames.result()
        reasons = dict(self.backbones.reasons)
        out["lpips"] = self.lpips_sum / self.lpips_n if self.lpips_n else None
        out["fid"] = None
        if self.fid_pred:
            n = sum(len(f) for f in self.fid_pred)
            if n < 2:
                reasons["fid"] = "FID needs at least 2 frames"
            else:
                out["fid"] = frechet_distance_features(
                    np.concatenate(self.fid_pred), np.concatenate(self.fid_gt)
                )
        for metric in VIDEO_METRICS:
            out[metric] = None
            if metric not in self.backbones.nets:
                continue
            pred = [f for f in self.seg_pred.get(metric, []) if f is not None]
            gt = [f for f in self.seg_gt.get(metric, []) if f is not None]
            if not pred:
                why = (self.seg_skipped.get(metric) or ["no videos were added"])[0]
                reasons[metric] = f"no clip gave a 16-frame segment: {why}"
                continue
            out[metric], why = frechet_from_feature_lists(pred, gt, metric)
            if why:
                reasons[metric] = why
        if self.frames.empty_masks:
            reasons["person"] = (
                f"{self.frames.empty_masks} frames had an empty mask: person metrics used the whole frame"
            )
        for key, why in (
            ("hf_ratio", "ground truth has no high-frequency energy"),
            ("chroma_ratio_person", "ground-truth person has no chroma (grey)"),
            ("jitter", "single-frame videos"),
        ):
            if out.get(key) is None:
                reasons[key] = why
        n_videos = len(self.frames.videos)
        out.update(self._intervals(out, reasons))
        out["videos"] = n_videos
        return out, reasons

    def _intervals(self, out: dict, reasons: dict[str, str]) -> dict[str, list[float] | None]:
        """metric_ci for every metric with a value: the percentile bootstrap over this split's videos."""
        cfg, videos = self.bootstrap, self.frames.videos
        n = len(videos)
        names = [m for m in (*FRAME_MEANS, *RATIOS, *BACKBONE_METRICS) if out.get(m) is not None]
        if cfg.resamples == 0:
            reasons["ci"] = "bootstrap intervals are off (ci_resamples: 0)"
            return {f"{m}_ci": None for m in names}
        if n < 2:
            reasons["ci"] = f"{n} test video: no bootstrap interval over videos"
            return {f"{m}_ci": None for m in names}
        idx = resample_indices(n, cfg.resamples, cfg.seed)
        ci: dict[str, list[float] | None] = {}
        for m in names:
            if m in FRAME_MEANS:
                values = pooled_ratio(
                    [v.get(m, 0.0) for v in videos], [v.get(f"n_{m}", 0) for v in videos], idx
                )
            elif m in RATIOS:
                p = RATIOS[m]
                values = pooled_ratio([v[f"{p}_pred"] for v in videos], [v[f"{p}_gt"] for v in videos], idx)
            elif m == "lpips":
                values = pooled_ratio(*zip(*self.lpips_videos, strict=True), idx)
            else:
                fidx = idx[: cfg.frechet_resamples]
                if m == "fid":
                    pred, gt = self.fid_pred, self.fid_gt
                else:
                    pred, gt = self.seg_pred[m], self.seg_gt[m]
                values = frechet_resampled(pred, gt, fidx, frechet_distance_features)
            ci[f"{m}_ci"] = interval(values, cfg.level)
            if ci[f"{m}_ci"] is None:
                reasons[f"{m}_ci"] = "fewer than half of the bootstrap draws gave a value"
        return ci
