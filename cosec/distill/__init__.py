"""ReferenceLCM distillation (teacher / target / student around a shared reference bank) and CoSeC regularisers."""

from cosec._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "DistillBatch": ".batch",
        "DistillConfig": ".config",
        "LCM_LORA_TARGETS": ".config",
        "LOSS_KEYS": ".referencelcm",
        "LoraSettings": ".config",
        "NonFiniteLossError": ".referencelcm",
        "Phase1Config": ".config",
        "Phase2Config": ".config",
        "PhaseConfig": ".config",
        "ReferenceLCM": ".referencelcm",
        "build_optimizer": ".referencelcm",
        "cons_distance": ".regularizers",
        "eta_distance": ".regularizers",
        "load_lora_student": ".lora",
        "prepare_batch": ".batch",
        "temporal_self_dependency": ".regularizers",
        "temporal_regularizer": ".regularizers",
        "temporal_target_distance": ".regularizers",
    },
)
