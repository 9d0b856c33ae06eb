"""ReferenceLCM distillation (teacher / target / student around a shared reference bank) and CoSeC regularisers."""

from cosec.distill.batch import DistillBatch, prepare_batch
from cosec.distill.config import DistillConfig, Phase1Config, Phase2Config, PhaseConfig
from cosec.distill.referencelcm import LOSS_KEYS, NonFiniteLossError, ReferenceLCM
from cosec.distill.regularizers import cons_distance, eta_distance, temporal_self_dependency

__all__ = [
    "LOSS_KEYS",
    "DistillBatch",
    "DistillConfig",
    "NonFiniteLossError",
    "Phase1Config",
    "Phase2Config",
    "PhaseConfig",
    "ReferenceLCM",
    "cons_distance",
    "eta_distance",
    "prepare_batch",
    "temporal_self_dependency",
]
