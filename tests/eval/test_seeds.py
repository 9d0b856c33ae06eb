"""The seeds study's aggregation on hand-made metrics: mean, sample sd and range over seeds, margins oriented
so that > 0 means the claim holds, and the verdicts (every seed / mixed / fails / not measured)."""

from __future__ import annotations

import math

import pytest

from cosec.eval.seeds import (
    CLAIMS,
    FAILS,
    HOLDS,
    METRICS,
    MIXED,
    UNMEASURED,
    aggregate,
    claim_entries,
    margin,
    seeds_markdown,
    spread,
    verdict,
)


def entry(ssim, psnr=20.0, hf=0.5, ab=10.0, chroma=0.8, jitter=3.0) -> dict:
    return {
        "ssim": ssim,
        "psnr": psnr,
        "l1": 0.1,
        "ssim_person": ssim,
        "psnr_person": psnr,
        "hf_ratio": hf,
        "ab_error_person": ab,
        "chroma_ratio_person": chroma,
        "jitter": jitter,
        "ssim_person_ci": [ssim - 0.01, ssim + 0.01],
    }


def run(student2_ssim: float, teacher4_ssim: float = 0.60) -> dict:
    """One seed: the student better than the teacher on every measure except (per argument) person SSIM."""
    rows = {
        "reference@0": entry(0.50, psnr=18.0, hf=1.0, ab=20.0, chroma=1.0, jitter=1.0),
        "teacher@1": entry(0.55, psnr=19.0, hf=0.30, ab=14.0, chroma=0.6, jitter=5.0),
        "teacher@2": entry(0.56, psnr=19.5, hf=0.35, ab=13.0, chroma=0.65, jitter=4.5),
        "teacher@4": entry(teacher4_ssim, psnr=20.0, hf=0.40, ab=12.0, chroma=0.7, jitter=4.0),
        "teacher@20": entry(0.62, psnr=20.5, hf=0.45, ab=11.0, chroma=0.75, jitter=3.5),
        "student@1": entry(0.60, psnr=20.2, hf=0.50, ab=11.5, chroma=1.2, jitter=3.0),
        "student@2": entry(student2_ssim, psnr=20.8, hf=1.3, ab=10.5, chroma=0.9, jitter=2.5),
        "student@4": entry(0.66, psnr=21.0, hf=0.9, ab=10.0, chroma=0.95, jitter=2.0),
    }
    return {"dance": rows, "wild": {k: dict(v) for k, v in rows.items()}}


def test_spread_is_mean_sample_sd_and_range_over_the_values_present():
    s = spread([1.0, 2.0, None, 4.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(7 / 3)
    assert s["sd"] == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))
    assert (s["min"], s["max"]) == (1.0, 4.0)
    assert spread([3.0]) == {"mean": 3.0, "sd": None, "min": 3.0, "max": 3.0, "n": 1}
    assert spread([None, None])["mean"] is None and spread([])["n"] == 0


def test_margins_are_oriented_so_that_positive_means_better():
    assert margin("psnr_person", 21.0, 20.0) == pytest.approx(1.0)  # higher is better
    assert margin("ssim_person", 0.5, 0.6) == pytest.approx(-0.1)
    assert margin("ab_error_person", 10.0, 12.0) == pytest.approx(2.0)  # lower is better
    assert margin("jitter", 4.0, 3.0) == pytest.approx(-1.0)
    # ratios with ideal 1: the gain in closeness to 1, on either side of it
    assert margin("hf_ratio", 1.2, 0.5) == pytest.approx(0.5 - 0.2)
    assert margin("chroma_ratio_person", 0.7, 1.1) == pytest.approx(0.1 - 0.3)
    assert margin("hf_ratio", None, 0.5) is None and margin("jitter", 1.0, None) is None


def test_verdicts():
    assert verdict([0.1, 0.2, 0.01]) == HOLDS
    assert verdict([0.1, -0.2, 0.3]) == MIXED
    assert verdict([0.0, -0.2, -0.1]) == FAILS  # a tie is not a win
    assert verdict([0.1, None, 0.2]) == MIXED  # a seed without the entry cannot count as holding
    assert verdict([None, -0.1]) == FAILS
    assert verdict([None, None]) == UNMEASURED


def test_claims_are_the_issues_and_name_the_entries_an_evaluation_must_score():
    assert [c.name for c in CLAIMS] == [
        "teacher@20 > reference@0",
        "student@1 > teacher@1",
        "student@2 > teacher@2",
        "student@4 > teacher@4",
        "student@2 > teacher@4",
    ]
    assert claim_entries() == {"teacher": {1, 2, 4, 20}, "reference": {0}, "student": {1, 2, 4}}


def test_aggregate_over_three_seeds():
    # person SSIM of student@2 vs teacher@4: +0.05, -0.02, +0.01 -> mixed; every other margin holds
    runs = {0: run(0.65), 1: run(0.58), 7: run(0.61)}
    runs[1]["wild"]["student@2"]["ssim_person"] = 0.70  # wild: +0.05, +0.10, +0.01 -> holds
    result = aggregate(runs)
    assert result["seeds"] == [0, 1, 7]
    assert set(result["metrics"]) == set(result["claims"]) == {"dance", "wild"}
    s2 = result["metrics"]["dance"]["student@2"]["ssim_person"]
    assert s2["values"] == [0.65, 0.58, 0.61] and s2["n"] == 3
    assert s2["mean"] == pytest.approx(0.61333333) and s2["sd"] == pytest.approx(0.0351188, rel=1e-5)
    assert (s2["min"], s2["max"]) == (0.58, 0.65)
    assert set(result["metrics"]["dance"]["student@2"]) == set(METRICS)
    # entries in table order (models as in metrics.json, then steps)
    assert list(result["metrics"]["dance"])[:3] == ["reference@0", "teacher@1", "teacher@2"]

    c = result["claims"]["dance"]["student@2 > teacher@4"]["ssim_person"]
    assert c["margins"] == pytest.approx([0.05, -0.02, 0.01])
    assert c["mean"] == pytest.approx(0.04 / 3) and c["verdict"] == MIXED
    assert result["claims"]["wild"]["student@2 > teacher@4"]["ssim_person"]["verdict"] == HOLDS
    for split in ("dance", "wild"):
        claims = result["claims"][split]
        assert list(claims) == [c.name for c in CLAIMS]
        for name, row in claims.items():
            for m in METRICS:
                if (name, m) != ("student@2 > teacher@4", "ssim_person"):
                    assert row[m]["verdict"] == (
                        FAILS
                        if name.startswith("teacher@20")
                        and m in ("hf_ratio", "chroma_ratio_person", "jitter")
                        else HOLDS
                    ), (split, name, m)
    # the reference is the ideal on the ratios and on jitter: the teacher loses on every seed there
    assert result["claims"]["dance"]["teacher@20 > reference@0"]["jitter"]["margins"] == [-2.5] * 3


def test_a_seed_missing_an_entry_or_a_split_counts_as_missing_not_as_zero():
    runs = {0: run(0.65), 1: run(0.66)}
    del runs[1]["dance"]["teacher@1"]
    del runs[1]["wild"]
    runs[0]["dance"]["student@4"]["jitter"] = None
    result = aggregate(runs)
    assert result["metrics"]["dance"]["teacher@1"]["ssim_person"]["n"] == 1
    assert result["metrics"]["dance"]["teacher@1"]["ssim_person"]["values"] == [0.55, None]
    claim = result["claims"]["dance"]["student@1 > teacher@1"]["psnr_person"]
    assert claim["margins"][1] is None and claim["verdict"] == MIXED and claim["sd"] is None
    assert result["claims"]["wild"]["student@4 > teacher@4"]["ssim_person"]["n"] == 1
    jitter = result["claims"]["dance"]["student@4 > teacher@4"]["jitter"]
    assert jitter["margins"] == [None, pytest.approx(2.0)] and jitter["n"] == 1


def test_markdown_has_every_split_claim_and_entry_with_mean_sd_and_verdict():
    result = aggregate({0: run(0.65), 1: run(0.58), 2: run(0.61)})
    text = seeds_markdown(result)
    for split in ("dance", "wild"):
        assert f"### {split}" in text
    for claim in CLAIMS:
        assert text.count(f"| {claim.name} |") == 2
    assert "| student@4 | 3 |" in text and "| reference@0 | 3 |" in text
    # student@2 > teacher@4, person SSIM on dance: mean 0.013 ± sd 0.035 over [-0.020, 0.050], mixed
    row = next(line for line in text.splitlines() if line.startswith("| student@2 > teacher@4 |"))
    assert "~ 0.013 ± 0.035 [-0.020, 0.050]" in row
    assert "✓ 0.80 ± 0.00 [0.80, 0.80]" in row  # person PSNR: +0.8 dB on every seed
