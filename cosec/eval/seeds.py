"""The seeds study's numbers: several runs' metrics.json -> mean, sd and range over seeds of every entry, and
the method's claims as per-seed margins with a verdict (does the margin hold on every seed, or is it noise?).

A margin is oriented so that > 0 means the claim holds on that measure: better - worse for a measure where
higher is better, worse - better where lower is better, and |worse - 1| - |better - 1| for the ratios whose
ideal is 1 (HF ratio, chroma ratio).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .report import METRIC_INFO, MODELS, parse_entry_key

# The measures the claims are judged on (person SSIM / PSNR, detail, colour, temporal stability).
METRICS = ("ssim_person", "psnr_person", "hf_ratio", "ab_error_person", "chroma_ratio_person", "jitter")
IDEAL_ONE = ("hf_ratio", "chroma_ratio_person")  # ratios to the ground truth: 1 is ideal, both sides worse

HOLDS, MIXED, FAILS, UNMEASURED = "holds on every seed", "mixed", "fails", "not measured"


@dataclass(frozen=True)
class Claim:
    better: str  # "<model>@<steps>" expected to score better ...
    worse: str  # ... than this one

    @property
    def name(self) -> str:
        return f"{self.better} > {self.worse}"


# The claims of the default run (issue 11): the teacher animates beyond copying the reference; the student
# beats the teacher at equal steps, and at 2 steps beats the teacher at 4.
CLAIMS = (
    Claim("teacher@20", "reference@0"),
    Claim("student@1", "teacher@1"),
    Claim("student@2", "teacher@2"),
    Claim("student@4", "teacher@4"),
    Claim("student@2", "teacher@4"),
)


def claim_entries(claims: Sequence[Claim] = CLAIMS) -> dict[str, set[int]]:
    """model -> the step counts the claims compare (what an evaluation must score for every claim)."""
    out: dict[str, set[int]] = {}
    for claim in claims:
        for key in (claim.better, claim.worse):
            model, steps = parse_entry_key(key)
            out.setdefault(model, set()).add(steps)
    return out


def margin(metric: str, better: float | None, worse: float | None) -> float | None:
    """How much ``better`` beats ``worse`` on ``metric`` (> 0: the claim holds); None when either is missing."""
    if better is None or worse is None:
        return None
    if metric in IDEAL_ONE:
        return abs(worse - 1.0) - abs(better - 1.0)
    higher = METRIC_INFO.get(metric, (metric, None))[1]
    if higher is None:
        raise ValueError(f"{metric}: no direction (higher or lower better) to orient a margin by")
    return better - worse if higher else worse - better


def spread(values: Sequence[float | None]) -> dict:
    """mean, sample sd (n - 1; None below 2 values), min, max and n over the values that are not None."""
    xs = [float(v) for v in values if v is not None]
    n = len(xs)
    if not n:
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
    return {"mean": mean, "sd": sd, "min": min(xs), "max": max(xs), "n": n}


def verdict(margins: Sequence[float | None]) -> str:
    """'holds on every seed' (every margin > 0, none missing), 'fails' (no measured margin > 0), else 'mixed';
    'not measured' when no seed has both entries."""
    xs = [m for m in margins if m is not None]
    if not xs:
        return UNMEASURED
    wins = sum(m > 0 for m in xs)
    if wins == len(margins):
        return HOLDS
    return FAILS if wins == 0 else MIXED


def aggregate(
    runs: Mapping[int, Mapping[str, Mapping[str, Mapping]]],
    metrics: Sequence[str] = METRICS,
    claims: Sequence[Claim] = CLAIMS,
) -> dict:
    """seed -> metrics.json document  ->  {"seeds", "metrics": split -> entry -> metric -> spread (+ values),
    "claims": split -> claim -> metric -> spread of the margins (+ margins, verdict)}.

    Splits and entries are those of any run (a run missing one counts as missing values, so n says how many
    seeds it rests on); per-seed lists follow the order of ``seeds``.
    """
    seeds = list(runs)
    splits = _union(runs[s] for s in seeds)
    out: dict = {"seeds": seeds, "metrics": {}, "claims": {}}
    for split in splits:
        docs = [runs[s].get(split, {}) for s in seeds]
        entries = sorted(_union(docs), key=_entry_order)
        out["metrics"][split] = {}
        for key in entries:
            row = {}
            for m in metrics:
                values = [d.get(key, {}).get(m) for d in docs]
                row[m] = {**spread(values), "values": values}
            out["metrics"][split][key] = row
        out["claims"][split] = {}
        for claim in claims:
            row = {}
            for m in metrics:
                ms = [margin(m, d.get(claim.better, {}).get(m), d.get(claim.worse, {}).get(m)) for d in docs]
                row[m] = {**spread(ms), "margins": ms, "verdict": verdict(ms)}
            out["claims"][split][claim.name] = row
    return out


def _union(docs) -> list[str]:
    seen: dict[str, None] = {}
    for d in docs:
        seen.update(dict.fromkeys(d))
    return list(seen)


def _entry_order(key: str) -> tuple:
    model, steps = parse_entry_key(key)
    return MODELS.index(model), steps


def _num(x: float | None, metric: str) -> str:
    if x is None:
        return "–"
    return f"{x:.2f}" if metric in ("psnr_person", "psnr", "jitter", "ab_error_person") else f"{x:.3f}"


def _mean_sd(s: Mapping, metric: str) -> str:
    if s["mean"] is None:
        return "–"
    sd = "" if s["sd"] is None else f" ± {_num(s['sd'], metric)}"
    return f"{_num(s['mean'], metric)}{sd}"


MARKS = {HOLDS: "✓", MIXED: "~", FAILS: "✗", UNMEASURED: "–"}


def seeds_markdown(result: Mapping) -> str:
    """The claims table (per split: mean ± sd of each margin, its range and the verdict), then every entry."""
    seeds = result["seeds"]
    label = lambda m: METRIC_INFO.get(m, (m,))[0]  # noqa: E731
    lines = [
        "# Seeds study: the claims against run-to-run noise",
        "",
        f"Seeds {', '.join(map(str, seeds))}: each seed makes its own synthetic data (synth.seed) and distils "
        "the same teacher with its own distill.seed; both are scored with the default protocol. Mean ± sample "
        "sd over seeds, [min, max] in brackets.",
        "",
        "## Claims",
        "",
        "Margin > 0 means the claim holds on that measure (higher minus lower where higher is better, the "
        "other way where lower is better, the gain in closeness to 1 for the HF and chroma ratios). "
        f"{MARKS[HOLDS]} holds on every seed, {MARKS[MIXED]} mixed, {MARKS[FAILS]} fails on every seed.",
        "",
    ]
    splits = list(result["claims"])
    for split in splits:
        lines += [f"### {split}", "", "| claim | " + " | ".join(label(m) for m in METRICS) + " |"]
        lines.append("|---" * (len(METRICS) + 1) + "|")
        for name, row in result["claims"][split].items():
            cells = []
            for m in METRICS:
                s = row.get(m)
                if s is None or s["mean"] is None:
                    cells.append("–")
                    continue
                rng = f"[{_num(s['min'], m)}, {_num(s['max'], m)}]"
                cells.append(f"{MARKS[s['verdict']]} {_mean_sd(s, m)} {rng}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Every entry", ""]
    for split, entries in result["metrics"].items():
        lines += [f"### {split}", "", "| entry | seeds | " + " | ".join(label(m) for m in METRICS) + " |"]
        lines.append("|---" * (len(METRICS) + 2) + "|")
        for key, row in entries.items():
            n = max(row[m]["n"] for m in METRICS)
            cells = [
                "–"
                if row[m]["mean"] is None
                else f"{_mean_sd(row[m], m)} [{_num(row[m]['min'], m)}, {_num(row[m]['max'], m)}]"
                for m in METRICS
            ]
            lines.append(f"| {key} | {n} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
