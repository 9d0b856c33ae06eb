"""Frame and video quality metrics of the DisCo evaluation protocol, plus person-region measures.

Conventions: frames are uint8 RGB arrays (H, W, 3); a video is (F, H, W, 3); person masks are
(H, W) or (F, H, W) arrays, non-zero on the person. Every per-frame score is averaged over all
frames of a split (DisCo pools frames, not videos).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.metrics import structural_similarity

# OpenCV 4.x/5.x fixed-point BGR->grey weights for 8-bit images (0.299 R + 0.587 G + 0.114 B, scaled by
# 2^15, summing to 32768); checked bit-exact against cv2.cvtColor over all 2^24 colours.
_R2Y, _G2Y, _B2Y, _YUV_SHIFT = 9798, 19235, 3735, 15
# DisCo's psnr_eval returns this value for identical frames instead of infinity.
PSNR_IDENTICAL = 100.0
# Pad (pixels, at the evaluated resolution) around the ground-truth person box.
PERSON_PAD = 8


def _check_frame(name: str, img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(
            f"{name}: expected a uint8 RGB frame (H, W, 3), got dtype {img.dtype} shape {img.shape}"
        )
    return img


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _check_frame("prediction", pred), _check_frame("ground truth", gt)
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}; resize first"
        )
    return pred, gt


def rgb_to_grey(img: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> uint8 grey (...), bit-exact with OpenCV's cvtColor(BGR2GRAY) on the BGR image."""
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.shape[-1] != 3:
        raise ValueError(f"rgb_to_grey: expected uint8 (..., 3), got dtype {img.dtype} shape {img.shape}")
    x = img.astype(np.int32)
    y = x[..., 0] * _R2Y + x[..., 1] * _G2Y + x[..., 2] * _B2Y
    return ((y + (1 << (_YUV_SHIFT - 1))) >> _YUV_SHIFT).astype(np.uint8)


def ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """scikit-image SSIM with its defaults (7x7 window, data range 255) on the OpenCV grey images."""
    pred, gt = _check_pair(pred, gt)
    return float(structural_similarity(rgb_to_grey(pred), rgb_to_grey(gt)))


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR over all channels with max 255; identical frames score 100 as in DisCo.

    DisCo subtracts the uint8 arrays directly (values wrap modulo 256); this computes the true
    difference in float instead.
    """
    pred, gt = _check_pair(pred, gt)
    mse = float(np.mean((pred.astype(np.float64) - gt.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_IDENTICAL
    return 20.0 * math.log10(255.0 / math.sqrt(mse))


def l1(pred: np.ndarray, gt: np.ndarray) -> float:
    """DisCo's L1: mean over pixels and channels of |a - b| on the 0-255 scale, divided by H*W."""
    pred, gt = _check_pair(pred, gt)
    h, w = gt.shape[:2]
    return float(np.mean(np.abs(pred.astype(np.float64) - gt.astype(np.float64))) / (h * w))


def person_box(mask: np.ndarray, pad: int = PERSON_PAD) -> tuple[int, int, int, int] | None:
    """Bounding box (y0, y1, x0, x1), end-exclusive, of a non-empty mask grown by pad; None when empty."""
    mask = np.asarray(mask)
    if mask.ndim == 3:  # tolerate (H, W, C) mask images
        mask = mask.max(axis=2)
    if mask.ndim != 2:
        raise ValueError(f"person mask: expected (H, W), got shape {mask.shape}")
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    h, w = mask.shape
    y0, y1 = max(int(ys.min()) - pad, 0), min(int(ys.max()) + 1 + pad, h)
    x0, x1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + 1 + pad, w)
    # SSIM needs a 7x7 window: grow tiny boxes to at least 7 pixels per side.
    y0, y1 = _grow(y0, y1, 7, h)
    x0, x1 = _grow(x0, x1, 7, w)
    return y0, y1, x0, x1


def _grow(a: int, b: int, minimum: int, limit: int) -> tuple[int, int]:
    while b - a < minimum and (a > 0 or b < limit):
        a, b = max(a - 1, 0), min(b + 1, limit)
    return a, b


def _crop(img: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    if box is None:
        return img
    y0, y1, x0, x1 = box
    return img[y0:y1, x0:x1]


def lab_ab(img: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> float64 (..., 2) CIELAB a*, b* (sRGB, D65; scikit-image's rgb2lab)."""
    return rgb2lab(np.asarray(img))[..., 1:]


def colour_stats(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None) -> tuple[float, float, float]:
    """(mean a*b* distance to the ground truth, summed chroma of pred, of gt) over the person mask's pixels.

    The a*b* distance is the CIELAB colour difference without lightness, so a grey (or colour-cast) rendering
    of a coloured person scores high even where SSIM on grey images does not notice; an empty or absent mask
    uses the whole frame, as the other person measures do.
    """
    pred, gt = _check_pair(pred, gt)
    ab_pred, ab_gt = lab_ab(pred), lab_ab(gt)
    if mask is not None and np.any(mask):
        sel = np.asarray(mask) > 0
        ab_pred, ab_gt = ab_pred[sel], ab_gt[sel]
    else:
        ab_pred, ab_gt = ab_pred.reshape(-1, 2), ab_gt.reshape(-1, 2)
    error = float(np.mean(np.linalg.norm(ab_pred - ab_gt, axis=-1)))
    return error, float(np.linalg.norm(ab_pred, axis=-1).sum()), float(np.linalg.norm(ab_gt, axis=-1).sum())


def highpass_energy(grey: np.ndarray) -> float:
    """Mean squared response of the 3x3 Laplacian (a high-pass filter) on a grey image in 0-255."""
    lap = ndimage.laplace(np.asarray(grey, dtype=np.float64), mode="reflect")
    return float(np.mean(lap**2))


@dataclass
class MetricAccumulator:
    """Running sums of every measure over the frames and videos of one split for one model.

    Per-frame scores (ssim, psnr, l1, ssim_person, psnr_person, ab_error_person) are averaged over frames;
    hf_ratio is the ratio of summed high-pass energies (prediction / ground truth) over all person boxes and
    chroma_ratio_person that of summed CIELAB chroma over the person masks; jitter is averaged over all
    consecutive frame pairs. `videos` keeps the same sums per video, for the bootstrap over videos
    (cosec.eval.evaluate); the pooled sums are kept as running sums, so their values do not depend on it.
    """

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    hf_pred: float = 0.0
    hf_gt: float = 0.0
    chroma_pred: float = 0.0
    chroma_gt: float = 0.0
    empty_masks: int = 0
    videos: list[dict[str, float]] = field(default_factory=list)

    def _add(self, key: str, value: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + value
        self.counts[key] = self.counts.get(key, 0) + 1
        video = self.videos[-1]
        video[key] = video.get(key, 0.0) + value
        video[f"n_{key}"] = video.get(f"n_{key}", 0) + 1

    def _add_ratio(self, name: str, pred: float, gt: float) -> None:
        video = self.videos[-1]
        video[f"{name}_pred"] = video.get(f"{name}_pred", 0.0) + pred
        video[f"{name}_gt"] = video.get(f"{name}_gt", 0.0) + gt

    def add_video(self, pred: np.ndarray, gt: np.ndarray, masks: np.ndarray | None = None) -> None:
        """Add one video: pred and gt (F, H, W, 3) uint8 paired by frame; masks (F, H, W) or None.

        Without a mask (or with an empty one) the person measures use the whole frame.
        """
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.ndim == 3:
            pred, gt = pred[None], gt[None]
        if pred.shape != gt.shape or pred.ndim != 4:
            raise ValueError(f"video shapes differ or are not (F, H, W, 3): {pred.shape} vs {gt.shape}")
        if masks is not None:
            masks = np.asarray(masks)
            if masks.ndim == 2:
                masks = masks[None]
            if masks.shape[0] != pred.shape[0] or masks.shape[1:3] != pred.shape[1:3]:
                raise ValueError(f"mask shape {masks.shape} does not match video shape {pred.shape}")
        self.videos.append({})
        boxes = []
        for i in range(pred.shape[0]):
            p, g = _check_pair(pred[i], gt[i])
            self._add("ssim", ssim(p, g))
            self._add("psnr", psnr(p, g))
            self._add("l1", l1(p, g))
            box = person_box(masks[i]) if masks is not None else None
            if masks is not None and box is None:
                self.empty_masks += 1
            boxes.append(box)
            pc, gc = _crop(p, box), _crop(g, box)
            self._add("ssim_person", ssim(pc, gc))
            self._add("psnr_person", psnr(pc, gc))
            hf_p, hf_g = highpass_energy(rgb_to_grey(pc)), highpass_energy(rgb_to_grey(gc))
            self.hf_pred += hf_p
            self.hf_gt += hf_g
            self._add_ratio("hf", hf_p, hf_g)
            error, c_pred, c_gt = colour_stats(p, g, masks[i] if masks is not None else None)
            self._add("ab_error_person", error)
            self.chroma_pred += c_pred
            self.chroma_gt += c_gt
            self._add_ratio("chroma", c_pred, c_gt)
        for i in range(pred.shape[0] - 1):
            self._add(
                "jitter", jitter_pair(pred[i], pred[i + 1], gt[i], gt[i + 1], _union(boxes[i], boxes[i + 1]))
            )

    def result(self) -> dict[str, float | None]:
        """Averages; hf_ratio None when the ground truth has no high-frequency energy, chroma_ratio_person when
        the ground-truth person is grey, jitter None for single frames."""
        out: dict[str, float | None] = {k: self.sums[k] / self.counts[k] for k in self.sums}
        out["hf_ratio"] = self.hf_pred / self.hf_gt if self.hf_gt > 0 else None
        out["chroma_ratio_person"] = self.chroma_pred / self.chroma_gt if self.chroma_gt > 0 else None
        out.setdefault("jitter", None)
        return out

    @property
    def frames(self) -> int:
        return self.counts.get("ssim", 0)


def _union(a, b):
    if a is None or b is None:
        return None
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def jitter_pair(pred0, pred1, gt0, gt1, box=None) -> float:
    """Mean |(pred1 - pred0) - (gt1 - gt0)| in grey levels (0-255) on the box: temporal change the
    ground truth does not have (flicker) or lacks (frozen motion). 0 is ideal."""
    d_pred = rgb_to_grey(_crop(pred1, box)).astype(np.float64) - rgb_to_grey(_crop(pred0, box))
    d_gt = rgb_to_grey(_crop(gt1, box)).astype(np.float64) - rgb_to_grey(_crop(gt0, box))
    return float(np.mean(np.abs(d_pred - d_gt)))


def video_metrics(
    pred: np.ndarray, gt: np.ndarray, masks: np.ndarray | None = None
) -> dict[str, float | None]:
    """All frame measures of one video (F, H, W, 3) uint8, averaged over its frames."""
    acc = MetricAccumulator()
    acc.add_video(pred, gt, masks)
    return acc.result()


def frame_difference_maps(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 -> (F-1, H, W) float |grey_{t+1} - grey_t|, the maps of the paper's Fig. 5."""
    grey = rgb_to_grey(np.asarray(frames)).astype(np.float64)
    return np.abs(np.diff(grey, axis=0))


# ---------------------------------------------------------------- distribution distances


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of an (N, D) feature array, as pytorch-fid."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"features: need an (N, D) array with N >= 2, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((sigma + sigma.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    Tr((S1 S2)^(1/2)) equals the sum of square roots of the eigenvalues of S1^(1/2) S2 S1^(1/2), a
    symmetric PSD matrix, so no general (non-symmetric) matrix square root is needed.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"frechet_distance: mismatched shapes {mu1.shape} {s1.shape} {mu2.shape} {s2.shape}")
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def frechet_distance_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two (N, D) feature sets.

    With fewer samples than dimensions the covariances are low-rank, S1 = A^T A / (n1-1) and
    S2 = B^T B / (n2-1) for the centred features A, B, and Tr((S1 S2)^(1/2)) is the nuclear norm of
    A B^T / sqrt((n1-1)(n2-1)): an n1 x n2 problem instead of a D x D one, with the same value.
    """
    a, b = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"frechet_distance_features: need (N, D) arrays with equal D and N >= 2, got {a.shape} {b.shape}"
        )
    if min(len(a), len(b)) >= a.shape[1]:
        return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    ca, cb = a - mu1, b - mu2
    n1, n2 = len(a) - 1, len(b) - 1
    tr_covmean = float(np.linalg.svd(ca @ cb.T, compute_uv=False).sum()) / np.sqrt(n1 * n2)
    diff = mu1 - mu2
    return float(diff @ diff + np.sum(ca * ca) / n1 + np.sum(cb * cb) / n2 - 2.0 * tr_covmean)


def frechet_from_feature_lists(
    pred: list[np.ndarray], gt: list[np.ndarray], metric: str = "frechet"
) -> tuple[float | None, str | None]:
    """The one Frechet distance of FID, FID-VID and FVD over feature batches collected per video.

    pred, gt: lists of (n_i, D) arrays (frames for FID, 16-frame segments for the video metrics), pooled
    into one sample set per side. Returns (distance, None), or (None, reason) when a side has fewer than 2
    samples (no covariance).
    """
    n_pred, n_gt = sum(len(f) for f in pred), sum(len(f) for f in gt)
    if min(n_pred, n_gt) < 2:
        return (
            None,
            f"{metric} needs at least 2 samples per side, got {n_pred} generated and {n_gt} ground truth",
        )
    return frechet_distance_features(np.concatenate(pred), np.concatenate(gt)), None
