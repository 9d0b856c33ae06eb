"""Percentile bootstrap over test videos: the confidence interval of every metric of one split.

Videos are the resampled unit (frames of one video are not independent). One seeded index matrix per
(seed, number of videos) is drawn, so every model of a split is resampled with the same videos (paired
intervals) and a rerun gives the same intervals. Pooled measures are recomputed exactly as the point
estimate pools them: frame averages as sum / count over the drawn videos, ratios as ratio of sums, the
Frechet distances from the drawn videos' features (a bootstrap Frechet distance is biased upwards, since a
drawn set repeats videos; its interval need not contain the point estimate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapSettings:
    resamples: int = 1000  # 0: no intervals
    frechet_resamples: int = 200  # for FID / FID-VID / FVD (a Frechet distance per resample)
    level: float = 0.95
    seed: int = 0


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) video indices drawn with replacement, fixed by (seed, n)."""
    return np.random.default_rng([seed, n]).integers(0, n, size=(resamples, n))


def interval(values: np.ndarray, level: float) -> list[float] | None:
    """Percentile interval [lo, hi] of the finite bootstrap values; None when fewer than half are finite."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.size * 2 < values.size:
        return None
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return [float(lo), float(hi)]


def pooled_ratio(num: Sequence[float], den: Sequence[float], idx: np.ndarray) -> np.ndarray:
    """sum(num) / sum(den) over each row's drawn videos (NaN where the drawn denominators sum to 0)."""
    num, den = np.asarray(num, np.float64)[idx].sum(axis=1), np.asarray(den, np.float64)[idx].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def frechet_resampled(
    pred: Sequence[np.ndarray | None],
    gt: Sequence[np.ndarray | None],
    idx: np.ndarray,
    distance: Callable[[np.ndarray, np.ndarray], float],
) -> np.ndarray:
    """The distance between the drawn videos' pooled features, per row of idx; videos without features
    (None: too short) are left out, and a draw with fewer than 2 samples per side gives NaN."""
    out = np.full(len(idx), np.nan)
    for r, row in enumerate(idx):
        p = [pred[i] for i in row if pred[i] is not None]
        g = [gt[i] for i in row if gt[i] is not None]
        if p and g:
            a, b = np.concatenate(p), np.concatenate(g)
            if min(len(a), len(b)) >= 2:
                out[r] = distance(a, b)
    return out
