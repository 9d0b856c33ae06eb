"""Metric tables -> reports/metrics.json, Markdown tables shaped like the paper's, plots and figures.

reports/metrics.json schema (ARCHITECTURE.md section 4):
    {"<split>": {"<model>@<steps>": {"ssim": x, "psnr": x, "l1": x, "ssim_person": x, "psnr_person": x,
                                    "lpips": x|null, "fid": x|null, "fid_vid": x|null, "fvd": x|null,
                                    "hf_ratio": x|null, "jitter": x|null, "ab_error_person": x|null,
                                    "chroma_ratio_person": x|null, "<metric>_ci": [lo, hi]|null, ...,
                                    "videos": n, "score_size": px}}}
`<metric>_ci` is the bootstrap confidence interval over test videos (cosec.eval.bootstrap), `score_size` the
frame size the metrics saw. Why a value is null is written beside it, in metrics_notes.json, and as footnotes
of the Markdown.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cosec.atomic import atomic_write, write_json_atomic, write_text_atomic

# Model names of reports/metrics.json, in table order. teacher_nocfg is the teacher sampled without
# classifier-free guidance (the setting the student runs in).
MODELS = (
    "reference",
    "teacher",
    "teacher_nocfg",
    "student",
    "referencelcm",
    "eta",
    "eta_cons",
    "eta_cons_tmp",
)
MODEL_LABELS = {
    "reference": "Reference frame",
    "teacher": "Champ (teacher)",
    "teacher_nocfg": "Champ, no CFG",
    "student": "CoSeC-LCD",
    "referencelcm": "ReferenceLCM",
    "eta": "+ spatial ETA",
    "eta_cons": "+ spatial CoNS",
    "eta_cons_tmp": "+ temporal ETA",
}
# The ablation ladder of the paper's Table 4: each row adds one regulariser to the previous.
ABLATION = ("referencelcm", "eta", "eta_cons", "eta_cons_tmp")
REQUIRED = ("ssim", "psnr", "l1", "ssim_person", "psnr_person")
NULLABLE = ("lpips", "fid", "fid_vid", "fvd", "hf_ratio", "jitter", "ab_error_person", "chroma_ratio_person")
# Whole-number fields of an entry (kept as int): test videos scored, and the frame size scored at.
INTEGER_FIELDS = ("videos", "score_size")
# Column label and whether higher is better.
METRIC_INFO = {
    "ssim": ("SSIM", True),
    "psnr": ("PSNR", True),
    "l1": ("L1", False),
    "ssim_person": ("SSIM-person", True),
    "psnr_person": ("PSNR-person", True),
    "lpips": ("LPIPS", False),
    "fid": ("FID", False),
    "fid_vid": ("FID-VID", False),
    "fvd": ("FVD", False),
    "hf_ratio": ("HF ratio (1 ideal)", None),
    "jitter": ("Jitter", False),
    "ab_error_person": ("Colour err. (ΔE a*b*)", False),
    "chroma_ratio_person": ("Chroma ratio (1 ideal)", None),
}
TABLE3_METRICS = (
    "ssim",
    "psnr",
    "l1",
    "lpips",
    "fid",
    "fid_vid",
    "fvd",
    "ssim_person",
    "psnr_person",
    "hf_ratio",
    "ab_error_person",
    "chroma_ratio_person",
    "jitter",
)
# Our measures shown after the paper's columns in the paper-shaped tables.
EXTRA_METRICS = (
    "psnr",
    "ssim_person",
    "psnr_person",
    "ab_error_person",
    "chroma_ratio_person",
    "hf_ratio",
    "jitter",
)


def entry_key(model: str, steps: int) -> str:
    if model not in MODELS:
        raise ValueError(f"unknown model name {model!r}; expected one of {MODELS}")
    if int(steps) < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    return f"{model}@{int(steps)}"


def parse_entry_key(key: str) -> tuple[str, int]:
    model, sep, steps = key.partition("@")
    if not sep or not steps.isdigit() or model not in MODELS:
        raise ValueError(f"bad metrics entry {key!r}: expected '<model>@<steps>' with model in {MODELS}")
    return model, int(steps)


@dataclass
class MetricsTable:
    """split -> "model@steps" -> metric -> value (None when missing), and split -> key -> metric -> reason."""

    values: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    reasons: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def add(
        self,
        split: str,
        model: str,
        steps: int,
        metrics: Mapping[str, float | None],
        reasons: Mapping[str, str] | None = None,
    ) -> None:
        key = entry_key(model, steps)
        absent = [m for m in REQUIRED if metrics.get(m) is None]
        if absent:
            raise ValueError(f"{split}/{key}: required metrics missing or null: {absent}")
        row: dict = {}
        for name, value in metrics.items():
            if value is None:
                pass
            elif name.endswith("_ci"):
                value = [float(v) for v in value]
                if len(value) != 2 or not all(math.isfinite(v) for v in value) or value[0] > value[1]:
                    raise ValueError(f"{split}/{key}: interval {name} must be finite [lo, hi], got {value}")
            elif name in INTEGER_FIELDS:
                value = int(value)
            else:
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError(f"{split}/{key}: metric {name} is not finite ({value})")
            row[name] = value
        for name in NULLABLE:
            row.setdefault(name, None)
        self.values.setdefault(split, {})[key] = row
        notes = {k: v for k, v in (reasons or {}).items()}
        for name in NULLABLE:
            if row[name] is None:
                notes.setdefault(name, "not computed")
        if notes:
            self.reasons.setdefault(split, {})[key] = notes

    def rows(self, split: str) -> list[tuple[str, int, dict[str, float | None]]]:
        """(model, steps, metrics) sorted by model order then steps."""
        if split not in self.values:
            raise KeyError(f"no split {split!r} in the table (have {sorted(self.values)})")
        out = [(*parse_entry_key(k), v) for k, v in self.values[split].items()]
        return sorted(out, key=lambda r: (MODELS.index(r[0]), r[1]))

    @classmethod
    def from_json(cls, obj: Mapping, notes: Mapping | None = None) -> MetricsTable:
        table = cls()
        for split, entries in obj.items():
            for key, metrics in entries.items():
                model, steps = parse_entry_key(key)
                table.add(split, model, steps, metrics, (notes or {}).get(split, {}).get(key))
        return table


# ---------------------------------------------------------------- files


def write_metrics_json(table: MetricsTable, path: Path) -> Path:
    """metrics.json in the section-4 schema, and the reasons for nulls in <stem>_notes.json beside it."""
    path = Path(path)
    write_json_atomic(table.reasons, path.with_name(f"{path.stem}_notes.json"))
    return write_json_atomic(table.values, path)


def load_metrics_json(path: Path) -> MetricsTable:
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read metrics JSON ({err})") from err
    notes_path = path.with_name(f"{path.stem}_notes.json")
    notes = json.loads(notes_path.read_text(encoding="utf-8")) if notes_path.is_file() else None
    try:
        return MetricsTable.from_json(obj, notes)
    except (ValueError, AttributeError) as err:
        raise ValueError(f"{path}: {err}") from err


# ---------------------------------------------------------------- Markdown tables


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "n/a"
    if metric in ("psnr", "psnr_person", "fid", "fid_vid", "fvd", "jitter"):
        return f"{value:.2f}"
    if metric == "l1":
        return f"{value:.3e}"
    return f"{value:.3f}"


def _cell(vals: Mapping, metric: str) -> str:
    """The value, and its 95% bootstrap interval when the entry has one: `0.812 [0.801, 0.824]`."""
    text = _fmt(vals.get(metric), metric)
    ci = vals.get(f"{metric}_ci")
    if vals.get(metric) is not None and ci:
        text += f" [{_fmt(ci[0], metric)}, {_fmt(ci[1], metric)}]"
    return text


def _header(metrics: Sequence[str]) -> list[str]:
    labels = []
    for m in metrics:
        label, higher = METRIC_INFO.get(m, (m, None))
        labels.append(label + (" ↑" if higher else " ↓" if higher is False else ""))
    return labels


def _notes(table: MetricsTable, split: str, keys: Sequence[str], metrics: Sequence[str]) -> list[str]:
    seen: dict[str, list[str]] = {}
    for key in keys:
        for metric, reason in table.reasons.get(split, {}).get(key, {}).items():
            if (
                metric in metrics
                or metric in ("person", "ci", "score_size")
                or metric.removesuffix("_ci") in metrics
            ):
                seen.setdefault(f"{metric}: {reason}", []).append(key)
    return [f"- {text} ({', '.join(keys)})" for text, keys in sorted(seen.items())]


def table3_markdown(table: MetricsTable, metrics: Sequence[str] = TABLE3_METRICS) -> str:
    """Methods x steps x metrics, one table per split (the shape of the paper's Table 3)."""
    parts = []
    for split in sorted(table.values):
        rows = table.rows(split)
        lines = [
            f"### {split}",
            "",
            "| method | steps | " + " | ".join(_header(metrics)) + " |",
            "|---|---|" + "---|" * len(metrics),
        ]
        for model, steps, vals in rows:
            cells = [_cell(vals, m) for m in metrics]
            lines.append(f"| {MODEL_LABELS[model]} | {steps} | " + " | ".join(cells) + " |")
        notes = _notes(table, split, [entry_key(m, s) for m, s, _ in rows], metrics)
        if notes:
            lines += ["", "Missing values:", *notes]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def ablation_markdown(table: MetricsTable, metrics: Sequence[str] = TABLE3_METRICS) -> str:
    """The ablation ladder (the paper's Tables 4/5): ReferenceLCM, + spatial ETA, + spatial CoNS, + temporal ETA."""
    parts = []
    for split in sorted(table.values):
        rows = [r for r in table.rows(split) if r[0] in ABLATION]
        if not rows:
            continue
        lines = [
            f"### {split} (ablation)",
            "",
            "| variant | steps | " + " | ".join(_header(metrics)) + " |",
            "|---|---|" + "---|" * len(metrics),
        ]
        for model, steps, vals in sorted(rows, key=lambda r: (r[1], ABLATION.index(r[0]))):
            lines.append(
                f"| {MODEL_LABELS[model]} | {steps} | " + " | ".join(_cell(vals, m) for m in metrics) + " |"
            )
        notes = _notes(table, split, [entry_key(m, s) for m, s, _ in rows], metrics)
        if notes:
            lines += ["", "Missing values:", *notes]
        parts.append("\n".join(lines))
    return ("\n\n".join(parts) + "\n") if parts else ""


# ---------------------------------------------------------------- the paper's Tables 1-5

# Which published benchmark a split stands for (report.benchmarks in params.yaml): the synthetic splits and
# the real benchmarks of `ingest`.
DEFAULT_BENCHMARKS = {
    "dance": "tiktok",
    "fashion": "ubc",
    "wild": "wild_tiktok",
    "tiktok": "tiktok",
    "ubc": "ubc",
    "wild_tiktok": "wild_tiktok",
}


def _scored_line(table: MetricsTable, split: str) -> str:
    sizes = sorted({v["score_size"] for _, _, v in table.rows(split) if v.get("score_size") is not None})
    if not sizes:
        return ""
    videos = sorted({v["videos"] for _, _, v in table.rows(split) if v.get("videos") is not None})
    text = f"Scored at {' / '.join(map(str, sizes))} px"
    if videos:
        text += (
            f" on {' / '.join(map(str, videos))} test videos; brackets: 95% bootstrap interval over videos"
        )
    return text + "."


def _paper_table(
    table: MetricsTable, split: str, benchmark: str, ours: Sequence[tuple[str, int]], note: str = ""
) -> str:
    """Our rows (model, steps) on `split` under the paper's published rows of `benchmark`, marked as such."""
    from cosec.eval.published import PUBLISHED

    number, caption, columns, published = PUBLISHED[benchmark]
    metrics = [*columns, *[m for m in EXTRA_METRICS if m not in columns]]
    have = {(m, s): v for m, s, v in table.rows(split)}
    lines = [
        f"### Table {number}: {caption} (ours: split `{split}`)",
        "",
        "| source | method | steps | " + " | ".join(_header(metrics)) + " |",
        "|---|---|---|" + "---|" * len(metrics),
    ]
    for model, steps, vals in published:
        cells = [_fmt(vals.get(m), m) if m in columns else "" for m in metrics]
        lines.append(f"| published (paper) | {MODEL_LABELS[model]} | {steps} | " + " | ".join(cells) + " |")
    absent = []
    for model, steps in ours:
        if (model, steps) not in have:
            absent.append(entry_key(model, steps))
            continue
        cells = [_cell(have[(model, steps)], m) for m in metrics]
        lines.append(f"| ours | {MODEL_LABELS[model]} | {steps} | " + " | ".join(cells) + " |")
    foot = [t for t in (_scored_line(table, split), note) if t]
    if absent:
        foot.append(f"Not evaluated here: {', '.join(absent)}.")
    keys = [entry_key(m, s) for m, s in ours if (m, s) in have]
    notes = _notes(table, split, keys, metrics)
    lines += ["", *foot] if foot else []
    if notes:
        lines += ["", "Missing values:", *notes]
    return "\n".join(lines)


def _teacher_full(table: MetricsTable, split: str) -> int:
    steps = [s for m, s, _ in table.rows(split) if m == "teacher"]
    return 20 if 20 in steps or not steps else max(steps)


def main_rows(table: MetricsTable, split: str) -> list[tuple[str, int]]:
    """Tables 1/2: the teacher at 20 steps, ReferenceLCM and CoSeC-LCD at 2."""
    rows = [("teacher", _teacher_full(table, split)), ("referencelcm", 2), ("student", 2)]
    have = {(m, s) for m, s, _ in table.rows(split)}
    return [r for r in rows if r in have or r[0] != "referencelcm"]


def paper_tables_markdown(
    table: MetricsTable,
    benchmarks: Mapping[str, str] | None = None,
    figures: Mapping[str, str] | None = None,
) -> str:
    """Tables 1 (TikTok-like splits), 2 (UBC-like), 3 (low steps, TikTok-like), 4 (ablation, when the
    table holds its variants), 5 (generalisation, Wild-TikTok-like) and links to Fig. 5 (figures: split ->
    relative path of its jitter heat map)."""
    benchmarks = {**DEFAULT_BENCHMARKS, **(benchmarks or {})}
    by = {
        b: [s for s in sorted(table.values) if benchmarks.get(s) == b]
        for b in ("tiktok", "ubc", "wild_tiktok")
    }
    caveat = (
        "Published rows are the paper's numbers on the real benchmark; ours come from this run's split, so "
        "compare orderings and margins, not values, unless the split is the real benchmark."
    )
    parts = ["## Tables shaped like the paper's", caveat]
    no_rlcm = (
        "ReferenceLCM (the ablation's first rung) is in reports/ablation.md when the ablation graph ran."
    )
    for b in ("tiktok", "ubc"):
        for split in by[b]:
            rows = main_rows(table, split)
            parts.append(_paper_table(table, split, b, rows, "" if ("referencelcm", 2) in rows else no_rlcm))
    for split in by["tiktok"]:
        rows = [("teacher", s) for m, s, _ in table.rows(split) if m == "teacher" and 0 < s <= 8]
        rows += [("student", s) for m, s, _ in table.rows(split) if m == "student"]
        parts.append(_paper_table(table, split, "tiktok_low_steps", rows))
    for split in by["tiktok"]:
        if any(m in ABLATION for m, _, _ in table.rows(split)):
            parts.append(_paper_table(table, split, "tiktok_ablation", ablation_rows(table, split)))
    for split in by["wild_tiktok"]:
        rows = [("teacher", _teacher_full(table, split))]
        for n in (1, 2, 4):
            rows += [("teacher", n), ("student", n)]
        parts.append(_paper_table(table, split, "wild_tiktok", rows))
    if figures:
        fig = [
            "### Fig. 5: frame-to-frame change |grey(t+1) - grey(t)|, ground truth / teacher / student",
            "",
        ]
        fig += [f"![{split}]({path})" for split, path in sorted(figures.items())]
        parts.append("\n".join(fig))
    return "\n\n".join(parts) + "\n"


def ablation_rows(table: MetricsTable, split: str) -> list[tuple[str, int]]:
    """The ladder's rungs present on the split, in ladder order (steps ascending)."""
    rows = [(m, s) for m, s, _ in table.rows(split) if m in ABLATION]
    return sorted(rows, key=lambda r: (r[1], ABLATION.index(r[0])))


def table4_markdown(table: MetricsTable, benchmarks: Mapping[str, str] | None = None) -> str:
    """Table 4 (the ablation ladder) for every split holding its rungs, with the paper's rows beside ours;
    and Table 1/2 completed with ReferenceLCM where the table also holds the main run's rows."""
    benchmarks = {**DEFAULT_BENCHMARKS, **(benchmarks or {})}
    parts = []
    for split in sorted(table.values):
        rows = ablation_rows(table, split)
        if not rows:
            continue
        # the paper's ablation is on TikTok; other splits show the same published ladder for reference
        parts.append(_paper_table(table, split, "tiktok_ablation", rows))
        have = {(m, s) for m, s, _ in table.rows(split)}
        main = benchmarks.get(split)
        if main in ("tiktok", "ubc") and ("student", 2) in have and ("referencelcm", 2) in have:
            parts.append(_paper_table(table, split, main, main_rows(table, split)))
    return ("\n\n".join(parts) + "\n") if parts else ""


def paper_tables_columns(table: MetricsTable, split: str) -> dict[str, list]:
    """One split's entries as {column: values} (values, intervals as "lo..hi"), the form MLflow tables take."""
    rows = table.rows(split)
    out: dict[str, list] = {"entry": [entry_key(m, s) for m, s, _ in rows]}
    for metric in (*TABLE3_METRICS,):
        out[metric] = [v.get(metric) for _, _, v in rows]
        out[f"{metric}_ci"] = [
            None if not v.get(f"{metric}_ci") else list(v[f"{metric}_ci"]) for _, _, v in rows
        ]
    out["score_size"] = [v.get("score_size") for _, _, v in rows]
    out["videos"] = [v.get("videos") for _, _, v in rows]
    return out


# ---------------------------------------------------------------- figures


def _savefig(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_quality_vs_steps(
    table: MetricsTable, split: str, path: Path, metrics: Sequence[str] = ("ssim", "lpips", "fid", "hf_ratio")
) -> Path:
    """One panel per metric: value against sampling steps, one line per model; missing metrics say so."""
    plt = _pyplot()
    rows = table.rows(split)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        plotted = False
        for model in MODELS:
            pts = [(s, v[metric]) for m, s, v in rows if m == model and v.get(metric) is not None and s > 0]
            if pts:
                xs, ys = zip(*sorted(pts), strict=True)
                ax.plot(xs, ys, marker="o", label=MODEL_LABELS[model])
                plotted = True
        ref = [v[metric] for m, s, v in rows if m == "reference" and v.get(metric) is not None]
        if ref:
            ax.axhline(ref[0], color="grey", linestyle="--", label=MODEL_LABELS["reference"])
            plotted = True
        label, higher = METRIC_INFO.get(metric, (metric, None))
        ax.set_title(label + (" (higher better)" if higher else " (lower better)" if higher is False else ""))
        ax.set_xlabel("sampling steps")
        if plotted:
            ax.set_xscale("log", base=2)
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not computed", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"Quality versus steps ({split})", y=1.04)
    return _savefig(fig, path)


def _as_uint8_rgb(name: str, img) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(
            f"sample grid: {name} must be a uint8 (H, W, 3) or (H, W) image, got {arr.dtype} {arr.shape}"
        )
    return arr


def save_sample_grid(
    rows: Sequence[Mapping[str, np.ndarray]],
    path: Path,
    columns: Sequence[str] = ("reference", "pose", "ground truth", "teacher", "student"),
) -> Path:
    """Images side by side (one row per sample, one column per name) with a title bar; all of one size."""
    from PIL import Image, ImageDraw

    if not rows:
        raise ValueError("sample grid: no rows")
    first = _as_uint8_rgb(columns[0], rows[0][columns[0]])
    h, w = first.shape[:2]
    title = 14
    canvas = Image.new("RGB", (w * len(columns), title + h * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for j, name in enumerate(columns):
        draw.text((j * w + 3, 1), name, fill="black")
    for i, row in enumerate(rows):
        for j, name in enumerate(columns):
            if name not in row:
                raise ValueError(f"sample grid: row {i} has no image {name!r} (has {sorted(row)})")
            img = _as_uint8_rgb(f"row {i} {name}", row[name])
            if img.shape[:2] != (h, w):
                raise ValueError(f"sample grid: row {i} {name} is {img.shape[:2]}, expected {(h, w)}")
            canvas.paste(Image.fromarray(img), (j * w, title + i * h))
    return atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))


def save_jitter_heatmap(videos: Mapping[str, np.ndarray], path: Path, max_pairs: int = 6) -> Path:
    """Consecutive-frame difference maps |grey_{t+1} - grey_t| (the paper's Fig. 5), one row per video.

    videos: name -> (F, H, W, 3) uint8, e.g. {"ground truth": ..., "teacher": ..., "student": ...}; one
    colour scale for all rows so that flicker is comparable.
    """
    from cosec.eval.metrics import frame_difference_maps

    plt = _pyplot()
    maps = {name: frame_difference_maps(v)[:max_pairs] for name, v in videos.items()}
    if not maps or any(m.shape[0] == 0 for m in maps.values()):
        raise ValueError("jitter heat map: every video needs at least 2 frames")
    n = max(m.shape[0] for m in maps.values())
    vmax = max(float(m.max()) for m in maps.values()) or 1.0
    fig, axes = plt.subplots(len(maps), n, figsize=(1.8 * n, 1.9 * len(maps)), squeeze=False)
    image = None
    for i, (name, m) in enumerate(maps.items()):
        for t in range(n):
            ax = axes[i][t]
            ax.set_xticks([])
            ax.set_yticks([])
            if t < m.shape[0]:
                image = ax.imshow(m[t], cmap="inferno", vmin=0, vmax=vmax)
            if i == 0:
                ax.set_title(f"t={t}→{t + 1}", fontsize=8)
        axes[i][0].set_ylabel(name, fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8, label="|Δ grey| (0-255)")
    return _savefig(fig, path)


def write_report(
    table: MetricsTable,
    out_dir: Path,
    with_json: bool = True,
    benchmarks: Mapping[str, str] | None = None,
    figures: Mapping[str, Path] | None = None,
) -> dict[str, Path]:
    """metrics.json (+ notes; skipped with with_json=False when the table came from that very file),
    metrics.md (every entry, methods x steps, and the ablation ladder), paper_tables.md (Tables 1-5 with the
    published rows, Fig. 5 linked: figures maps split -> its heat map), quality_vs_steps_<split>.png."""
    out_dir = Path(out_dir)
    files = {"metrics": write_metrics_json(table, out_dir / "metrics.json")} if with_json else {}
    links = {split: os.path.relpath(path, out_dir) for split, path in (figures or {}).items()}
    files["paper_tables"] = write_text_atomic(
        "# Results\n\n" + paper_tables_markdown(table, benchmarks, links), out_dir / "paper_tables.md"
    )
    text = "# Metrics\n\n## Methods x steps\n\n" + table3_markdown(table)
    ablation = ablation_markdown(table)
    if ablation:
        text += "\n## Ablation ladder\n\n" + ablation
    files["markdown"] = write_text_atomic(text, out_dir / "metrics.md")
    for split in sorted(table.values):
        files[f"plot_{split}"] = plot_quality_vs_steps(
            table, split, out_dir / f"quality_vs_steps_{split}.png"
        )
    return files
