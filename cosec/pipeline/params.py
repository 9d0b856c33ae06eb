"""The one params root: every section of params.yaml, parsed once, strictly.

An unknown section (``phase_1:`` for ``phase1:``), an unknown key, a wrong type, a non-finite number
or a value out of its range is a ConfigError naming the file and the key, before any work starts.
A stage sees only the sections it declares (``Params.only``), so the sections DVC tracks for it
(``params:`` in dvc.yaml) are exactly what it can read.

This module imports only the libraries' light configuration modules: every stage imports it, so
whatever it imports is a dependency of every stage in dvc.yaml.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from cosec.config import ConfigError, Range, from_dict, read_yaml
from cosec.data.config import FramesConfig, GuidanceConfig, IndexConfig, IngestConfig, SynthConfig
from cosec.distill.config import DistillConfig
from cosec.eval.config import EvalProtocol
from cosec.models.config import ModelSize
from cosec.teacher.config import TeacherConfig
from cosec.train.config import RunConfig

# sections of params.yaml that are not parsed: DVC templating variables (dvc.yaml's ${...})
TEMPLATE_SECTIONS = ("vars",)


@dataclass
class Common:
    """Shared by the training and evaluation stages."""

    experiment: str = "cosec-lcd"  # MLflow experiment
    mlflow_db: str = (
        "mlflow.db"  # sqlite store, relative to the stage's folder; MLFLOW_TRACKING_URI overrides
    )
    data_root: str = "data/prepared"
    index: str = "data/index.parquet"
    threads: Annotated[int, Range(ge=0)] = 0  # torch intra-op threads; 0 = torch's default
    model: ModelSize = field(default_factory=ModelSize)
    run: RunConfig = field(default_factory=RunConfig)

    def tracking_uri(self) -> str:
        # absolute, so Ray workers (which run in their own folder) log into the same store
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(self.mlflow_db).resolve()}"


@dataclass
class PhaseData:
    batch_size: Annotated[int, Range(ge=1)] = 2  # groups (phase 1) or clips (phase 2) per step
    k_ras: Annotated[int, Range(ge=1)] = 2  # phase 1: intra-source references per group (>= 2 for ETA)
    m_ers: Annotated[int, Range(ge=0)] = 2  # phase 1: inter-source references per group (CoNS)
    window: Annotated[int, Range(ge=1)] = 8  # phase 1: RAS references within this many frames of the target
    num_frames: Annotated[int, Range(ge=1)] = 8  # phase 2: frames per clip


@dataclass
class PhaseStageConfig:
    """The `phase1` / `phase2` section."""

    loss: dict = field(default_factory=dict)  # Phase1Config / Phase2Config fields (cosec.distill.config)
    data: PhaseData = field(default_factory=PhaseData)
    teacher: str = "models/teacher"
    init: str | None = None  # phase 2: the phase-1 checkpoint whose student starts phase 2
    out: str = "models/phase1"


@dataclass
class EvaluateConfig:
    """The `evaluate` section."""

    teacher: str = "models/teacher"
    students: dict[str, str] = field(default_factory=lambda: {"student": "models/student"})
    out: str = "reports"
    protocol: EvalProtocol = field(default_factory=EvalProtocol)


@dataclass
class ReportConfig:
    """The `report` section."""

    metrics: str = "reports/metrics.json"  # the evaluate stage's output
    out: str = "reports/summary"
    samples: str = "reports/samples"  # the evaluate stage's figures (Fig. 5: jitter_<split>.png)
    # split -> the published benchmark its rows sit beside (tiktok: Tables 1, 3, 4; ubc: 2; wild_tiktok: 5)
    benchmarks: dict[str, str] = field(
        default_factory=lambda: {"dance": "tiktok", "fashion": "ubc", "wild": "wild_tiktok"}
    )

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.benchmarks.items() if v not in ("tiktok", "ubc", "wild_tiktok")}
        if bad:  # a typo would silently drop the split's paper tables
            raise ValueError(f"benchmarks: {bad} must map to one of tiktok, ubc, wild_tiktok")


@dataclass
class AblationConfig:
    """The `ablation` section (ablation/dvc.yaml)."""

    out: str = "reports/ablation"
    models: str = "models/ablation"
    teacher: str = "models/teacher"
    full_student: str = "models/student"  # the eta_cons_tmp rung is the main pipeline's student
    report: str = "reports/ablation.md"
    protocol: EvalProtocol = field(
        default_factory=lambda: EvalProtocol(teacher_steps=[], teacher_nocfg_steps=[], student_steps=[2])
    )


@dataclass
class SeedsConfig:
    """The `seeds` section (seeds/dvc.yaml): data and distillation repeated per seed, the claims' spread.

    Seed s: synthetic data made with synth.seed = s under <data>/<s>, the teacher distilled with
    distill.seed = s into <models>/<s>/{phase1,student}, both scored -> <out>/<s>.json (metrics.json's shape).
    """

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    teacher: str = "models/teacher"  # the main graph's teacher: the input of every seed's distillation
    data: str = "seeds/data"
    models: str = "seeds/models"
    out: str = "reports/seeds"
    report: str = "reports/seeds.md"  # mean, sd and range over seeds of every measure and claim
    table: str = "reports/seeds.json"  # the same numbers (every seed's value and margin) as JSON

    def __post_init__(self) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds: expected distinct seeds >= 0, got {self.seeds}")

    def seed(self, argument: str) -> int:
        """A stage's seed argument, checked to be one of ``seeds``."""
        try:
            seed = int(argument)
        except ValueError:
            raise ConfigError(
                f"seed {argument!r}: expected an integer, one of seeds.seeds {self.seeds}"
            ) from None
        if seed not in self.seeds:
            raise ConfigError(f"seed {seed} is not in seeds.seeds {self.seeds}")
        return seed

    def data_root(self, seed: int) -> Path:
        """<data>/<seed>: raw, frames, prepared, index.parquet of that seed's synthetic data."""
        return Path(self.data) / str(seed)


@dataclass
class Params:
    synth: SynthConfig = field(default_factory=SynthConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    frames: FramesConfig = field(default_factory=FramesConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    common: Common = field(default_factory=Common)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    phase1: PhaseStageConfig = field(default_factory=PhaseStageConfig)
    phase2: PhaseStageConfig = field(
        default_factory=lambda: PhaseStageConfig(init="models/phase1", out="models/student")
    )
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    source: str = field(default="params.yaml", compare=False)  # the file it came from (for messages)

    def only(self, sections: tuple[str, ...]) -> Params:
        """A copy in which the sections a stage did not declare cannot be read."""
        hidden = {
            f.name: _Hidden(f.name, sections)
            for f in dataclasses.fields(self)
            if f.name != "source" and f.name not in sections
        }
        return dataclasses.replace(self, **hidden)


class _Hidden:
    def __init__(self, name: str, allowed: tuple[str, ...]):
        self._name, self._allowed = name, allowed

    def __getattr__(self, key):
        if key.startswith("__"):
            raise AttributeError(key)
        raise RuntimeError(
            f"a stage declaring the params sections {list(self._allowed)} read '{self._name}.{key}': "
            f"add '{self._name}' to the stage's sections and to its params in dvc.yaml"
        )


SECTIONS = tuple(f.name for f in dataclasses.fields(Params) if f.name != "source")


def load_params(path: str | Path) -> Params:
    """Parse the whole params file; errors name the file and the key."""
    document = read_yaml(path)
    unknown = sorted(set(document) - set(SECTIONS) - set(TEMPLATE_SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; the sections are {list(SECTIONS)}")
    data = {k: ({} if v is None else v) for k, v in document.items() if k in SECTIONS}
    for name, value in data.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{path}:{name}: expected a mapping, got {value!r}")
    types = typing.get_type_hints(Params)
    sections = {name: from_dict(types[name], value, where=f"{path}:{name}") for name, value in data.items()}
    return Params(**sections, source=str(path))
