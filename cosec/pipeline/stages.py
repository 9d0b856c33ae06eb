"""Every stage of the pipeline by name (for `cosec stage NAME` and the tests; stage scripts import their own)."""

from __future__ import annotations

from . import (
    ablation,
    ablation_report,
    distill,
    evaluate,
    frames,
    guidance,
    index,
    ingest,
    report,
    seeds_data,
    seeds_distill,
    seeds_report,
    synth,
    teacher,
)
from .stage import Stage

STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        synth.STAGE,
        ingest.STAGE,
        frames.STAGE,
        guidance.STAGE,
        index.STAGE,
        teacher.STAGE,
        distill.PHASE1,
        distill.PHASE2,
        evaluate.STAGE,
        report.STAGE,
        ablation.VARIANT,
        ablation_report.STAGE,
        seeds_data.STAGE,
        seeds_distill.STAGE,
        seeds_report.STAGE,
    )
}
