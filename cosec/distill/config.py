"""Distillation settings: the paper's defaults (appendix C) in one place, plus the knobs tiny runs need."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

Distance = Literal["huber", "l2"]
Trainable = Literal["all", "motion"]
Student = Literal["full", "lora"]
Optimizer = Literal["adamw", "adamw8bit"]
# What the temporal term's self-dependency matrices are compared with (eq. 7 or the ground-truth clip)
TmpTarget = Literal["references", "ground_truth"]

# LCM-LoRA's SD1.5 targets (diffusers' train_lcm_distill_lora_sd_wds.py): attention projections, the
# transformers' proj_in / proj_out, feed-forward, resnet convolutions and their time-embedding projections,
# down- and upsamplers. peft matches a name when a module path ends with it, so the motion modules'
# attention and feed-forward layers are adapted too.
LCM_LORA_TARGETS: tuple[str, ...] = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "downsamplers.0.conv",
    "upsamplers.0.conv",
    "time_emb_proj",
)


@dataclass
class PhaseConfig:
    """One distillation phase (defaults: paper phase 1). Weights multiply the regularisers of eqs. 4-8."""

    steps: int = 3000
    w: float = 2.5  # CFG scale in the LCM convention (effective 1 + w)
    eta_weight: float = 0.1  # phi1: Equivalent Target Aggregation over RAS pairs (eq. 4, first term)
    cons_weight: float = (
        0.02  # phi2: Contrastive Negative Sampling over inter-source pairs (eq. 4, second term)
    )
    tmp_weight: float = 0.0  # lambda: temporal ETA on self-dependency matrices (eqs. 7-8); clips only
    # The temporal term's form (docs/distillation.md, "Temporal term"). tmp_target "references" is eq. 7:
    # D between the T matrices of two RAS references' outputs; "ground_truth": D between each RAS output's
    # T and the T of the clip's clean latents (the target's own motion). tmp_center subtracts each clip's
    # mean frame before the cosines (eq. 6 on the residuals), so T measures motion, not the static background.
    tmp_target: TmpTarget = "references"
    tmp_center: bool = False
    trainable: Trainable = "all"  # "all" student D-UNet weights, or only its "motion" modules

    def __post_init__(self) -> None:
        if self.steps < 1:  # 0 would ship the teacher's weights as a distilled student
            raise ValueError(f"PhaseConfig: steps must be >= 1, got {self.steps}")
        for name in ("eta_weight", "cons_weight", "tmp_weight", "w"):
            if getattr(self, name) < 0:
                raise ValueError(f"PhaseConfig: {name} must be >= 0, got {getattr(self, name)}")
        if self.tmp_target not in get_args(TmpTarget):
            raise ValueError(
                f"PhaseConfig: tmp_target must be one of {get_args(TmpTarget)}, got {self.tmp_target!r}"
            )
        if self.trainable not in get_args(Trainable):
            raise ValueError(
                f"PhaseConfig: trainable must be one of {get_args(Trainable)}, got {self.trainable!r}"
            )


@dataclass
class Phase1Config(PhaseConfig):
    """Appendix C, phase 1 (frames): 3000 steps, w = 2.5, phi1 = 0.1, phi2 = 0.02."""


@dataclass
class Phase2Config(PhaseConfig):
    """Appendix C, phase 2 (clips): 2000 steps, w = 1.5, temporal ETA lambda = 0.05, CoNS 0."""

    steps: int = 2000
    w: float = 1.5
    eta_weight: float = 0.0
    cons_weight: float = 0.0
    tmp_weight: float = 0.05


@dataclass
class LoraSettings:
    """LoRA adapters of a ``student: lora`` run (peft, plain LoRA: B zero-initialised, no dropout).

    ``rank: null`` scales LCM-LoRA's rank 64 for SD1.5 (first block width 320) with the model's width:
    ``max(4, round(64 * width / 320))``, which is 64 for ``sd15`` and 4 for ``tiny`` (width 16), the same
    rank-to-channel ratio (0.2 at the first level). ``alpha: null`` is the rank (LoRA scale alpha / rank = 1,
    as LCM-LoRA's alpha = rank = 64).
    """

    rank: int | None = None
    alpha: float | None = None
    target_modules: tuple[str, ...] = LCM_LORA_TARGETS
    # what the phase stages write to their out folder: "merged" (a plain Champ folder with the adapter merged,
    # and the adapter files beside it) or "adapter" (the adapter alone; loaders merge it into the teacher)
    ship: Literal["merged", "adapter"] = "merged"

    def __post_init__(self) -> None:
        self.target_modules = tuple(self.target_modules)
        if self.ship not in ("merged", "adapter"):
            raise ValueError(f"LoraSettings: ship must be 'merged' or 'adapter', got {self.ship!r}")
        if self.rank is not None and self.rank < 1:
            raise ValueError(f"LoraSettings: rank must be >= 1 or None, got {self.rank}")
        if self.alpha is not None and self.alpha <= 0:
            raise ValueError(f"LoraSettings: alpha must be > 0 or None, got {self.alpha}")
        if not self.target_modules:
            raise ValueError("LoraSettings: target_modules must name at least one module")

    def resolved_rank(self, first_block_width: int) -> int:
        return self.rank if self.rank is not None else max(4, round(64 * first_block_width / 320))

    def resolved_alpha(self, rank: int) -> float:
        return float(self.alpha) if self.alpha is not None else float(rank)


@dataclass
class DistillConfig:
    """All knobs of ReferenceLCM + CoSeC distillation; the defaults are the paper's (appendix C, sec. 2)."""

    phase1: Phase1Config = field(default_factory=Phase1Config)
    phase2: Phase2Config = field(default_factory=Phase2Config)
    lr: float = 1e-6
    ema_decay: float = 0.95  # target = EMA of the student
    # Weights shipped: None ships the online student (LCM's practice); a decay d ships a slow EMA of it
    # (consistency models' evaluation EMA), a separate average the loss never sees.
    sample_ema_decay: float | None = None
    distance: Distance = "huber"  # "huber" (sqrt(d^2 + c^2) - c) or "l2"
    huber_c: float = 0.001
    num_solver_steps: int = 50  # N of T = 1000, skip k = T / N = 20
    sigma_data: float = 0.5
    timestep_scaling: float = 10.0
    low_precision: bool = False  # teacher weights in bf16; teacher and target forwards under bf16 autocast
    cons_margin: float | None = None  # optional CoNS guard: D clamped at this margin; None = paper form
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = 1.0
    seed: int = 0
    # "full" fine-tunes a copy of the D-UNet; "lora" trains peft adapters on one frozen base D-UNet shared by
    # teacher (adapters off), student (adapters) and target (EMA of the adapters)
    student: Student = "full"
    lora: LoraSettings = field(default_factory=LoraSettings)
    gradient_checkpointing: bool = False  # recompute the student's activations in backward (memory for time)
    optimizer: Optimizer = "adamw"  # "adamw8bit": bitsandbytes' 8-bit AdamW (CUDA only; pip extra [cuda])

    def __post_init__(self) -> None:
        self.adam_betas = tuple(self.adam_betas)
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)
        if self.student not in get_args(Student):
            raise ValueError(
                f"DistillConfig: student must be one of {get_args(Student)}, got {self.student!r}"
            )
        if self.optimizer not in get_args(Optimizer):
            raise ValueError(
                f"DistillConfig: optimizer must be one of {get_args(Optimizer)}, got {self.optimizer!r}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"DistillConfig: ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.sample_ema_decay is not None and not 0.0 < self.sample_ema_decay < 1.0:
            raise ValueError(
                f"DistillConfig: sample_ema_decay must be in (0, 1) or None, got {self.sample_ema_decay}"
            )
        if self.distance not in get_args(Distance):
            raise ValueError(
                f"DistillConfig: distance must be one of {get_args(Distance)}, got {self.distance!r}"
            )
        if self.lr <= 0:
            raise ValueError(f"DistillConfig: lr must be > 0, got {self.lr}")
        if self.cons_margin is not None and self.cons_margin <= 0:
            raise ValueError(f"DistillConfig: cons_margin must be > 0 or None, got {self.cons_margin}")

    def phase(self, number: int) -> PhaseConfig:
        if number not in (1, 2):
            raise ValueError(f"DistillConfig: phase must be 1 or 2, got {number}")
        return self.phase1 if number == 1 else self.phase2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
