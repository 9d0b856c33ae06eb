from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
from scipy import ndimage
from skimage.metrics import structural_similarity

from cosec.eval import metrics as M

# RGB pixels and the grey values cv2.cvtColor(BGR2GRAY) gives for them (OpenCV 5.0, same table as 4.x);
# the last three are where a 14-bit table or float rounding would be off by one.
CV_PIXELS = [
    [139, 74, 229],
    [241, 169, 65],
    [6, 160, 149],
    [106, 38, 175],
    [188, 205, 175],
    [229, 98, 249],
    [10, 148, 95],
    [86, 147, 198],
    [66, 39, 106],
    [0, 0, 250],
    [0, 1, 201],
    [0, 4, 168],
]
CV_GREY = [111, 179, 113, 74, 196, 154, 101, 135, 55, 28, 23, 21]


def _frames(seed=0, n=3, size=64):
    rng = np.random.default_rng(seed)
    # smooth random images: noise blurred, so SSIM/hf measures behave like on photos
    base = ndimage.gaussian_filter(rng.normal(128, 60, (n, size, size, 3)), sigma=(0, 2, 2, 0))
    return np.clip(base, 0, 255).astype(np.uint8)


def test_grey_matches_opencv():
    img = np.array(CV_PIXELS, dtype=np.uint8)[None]
    assert M.rgb_to_grey(img)[0].tolist() == CV_GREY
    with pytest.raises(ValueError, match="uint8"):
        M.rgb_to_grey(img.astype(np.float32))


def test_frame_metrics_known_values():
    gt = _frames()[0]
    pred = np.clip(gt.astype(int) + 10, 0, 255).astype(np.uint8)
    shifted = pred.astype(float) - gt.astype(float)
    assert M.psnr(pred, gt) == pytest.approx(20 * math.log10(255 / math.sqrt(np.mean(shifted**2))))
    assert M.l1(pred, gt) == pytest.approx(np.mean(np.abs(shifted)) / (64 * 64))
    assert M.ssim(pred, gt) == pytest.approx(structural_similarity(M.rgb_to_grey(pred), M.rgb_to_grey(gt)))
    assert M.ssim(gt, gt) == 1.0 and M.psnr(gt, gt) == M.PSNR_IDENTICAL and M.l1(gt, gt) == 0.0
    # the true difference, not DisCo's uint8 wrap-around (200 - 201 would wrap to 255)
    a, b = np.full((8, 8, 3), 200, np.uint8), np.full((8, 8, 3), 201, np.uint8)
    assert M.psnr(a, b) == pytest.approx(20 * math.log10(255))
    with pytest.raises(ValueError, match="differs"):
        M.ssim(gt, gt[:32])


def test_person_box_pad_and_empty_mask():
    mask = np.zeros((64, 64), bool)
    mask[20:30, 40:45] = True
    assert M.person_box(mask, pad=4) == (16, 34, 36, 49)
    assert M.person_box(mask, pad=100) == (0, 64, 0, 64)
    assert M.person_box(np.zeros((64, 64))) is None
    tiny = np.zeros((64, 64), bool)
    tiny[0, 0] = True
    y0, y1, x0, x1 = M.person_box(tiny, pad=0)
    assert y1 - y0 >= 7 and x1 - x0 >= 7  # grown so SSIM's 7x7 window fits


def test_video_metrics_person_region_and_empty_masks():
    gt = _frames()
    pred = gt.copy()
    pred[:, :, :16] = 0  # damage outside the person only
    masks = np.zeros(gt.shape[:3], bool)
    masks[:, 20:50, 30:60] = True
    out = M.video_metrics(pred, gt, masks)
    assert out["ssim_person"] == 1.0 and out["psnr_person"] == M.PSNR_IDENTICAL
    assert out["ssim"] < 0.9 and out["psnr"] < 30
    acc = M.MetricAccumulator()
    acc.add_video(pred, gt, np.zeros_like(masks))  # empty masks: person metrics fall back to the whole frame
    res = acc.result()
    assert acc.empty_masks == 3 and res["ssim_person"] == pytest.approx(res["ssim"])
    with pytest.raises(ValueError, match="mask shape"):
        M.video_metrics(pred, gt, masks[:, :32])


def test_hf_ratio_sees_blur_and_speckle():
    gt = _frames()
    blurred = ndimage.gaussian_filter(gt.astype(float), sigma=(0, 1.5, 1.5, 0)).astype(np.uint8)
    noisy = np.clip(gt + np.random.default_rng(1).normal(0, 20, gt.shape), 0, 255).astype(np.uint8)
    assert M.video_metrics(gt, gt)["hf_ratio"] == pytest.approx(1.0)
    assert M.video_metrics(blurred, gt)["hf_ratio"] < 0.7
    assert M.video_metrics(noisy, gt)["hf_ratio"] > 2.0


def test_jitter_flicker_and_frozen_motion():
    gt = _frames(n=4)
    assert M.video_metrics(gt, gt)["jitter"] == 0.0
    rng = np.random.default_rng(2)
    flicker = np.clip(gt.astype(int) + rng.integers(-15, 16, (4, 1, 1, 1)), 0, 255).astype(np.uint8)
    frozen = np.repeat(gt[:1], 4, axis=0)
    j_flicker, j_frozen = M.video_metrics(flicker, gt)["jitter"], M.video_metrics(frozen, gt)["jitter"]
    assert j_flicker > 3 and j_frozen > 3
    expected = np.mean(
        np.abs(
            np.diff(M.rgb_to_grey(frozen).astype(float), axis=0)
            - np.diff(M.rgb_to_grey(gt).astype(float), axis=0)
        )
    )
    assert j_frozen == pytest.approx(expected)
    assert M.video_metrics(gt[:1], gt[:1])["jitter"] is None
    maps = M.frame_difference_maps(gt)
    assert maps.shape == (3, 64, 64) and maps.min() >= 0


def _scipy_frechet(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)  # SciPy 1.17+: no disp= argument
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_agrees_with_scipy_sqrtm():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(200, 16))
    b = rng.normal(size=(150, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 1.0
    mu1, s1 = M.gaussian_stats(a)
    mu2, s2 = M.gaussian_stats(b)
    assert M.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=1e-8)
    assert M.frechet_distance_features(a, a) == pytest.approx(0.0, abs=1e-8)
    # 1-D closed form: (m1 - m2)^2 + (sd1 - sd2)^2
    assert M.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    # rank-deficient covariances (fewer samples than dimensions) stay finite and agree
    c, d = rng.normal(size=(5, 12)), rng.normal(size=(5, 12)) + 0.3
    mc, sc = M.gaussian_stats(c)
    md, sd = M.gaussian_stats(d)
    assert M.frechet_distance(mc, sc, md, sd) == pytest.approx(_scipy_frechet(mc, sc, md, sd), rel=1e-5)
    # the low-rank feature path (N < D) equals the covariance path
    assert M.frechet_distance_features(c, d) == pytest.approx(M.frechet_distance(mc, sc, md, sd), rel=1e-8)
    assert M.frechet_distance_features(a, b) == pytest.approx(M.frechet_distance(mu1, s1, mu2, s2), rel=1e-10)
    with pytest.raises(ValueError, match="mismatched"):
        M.frechet_distance(mu1, s1, mu2[:3], s2[:3, :3])
