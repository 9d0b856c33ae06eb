"""Training the Champ-architecture teacher on the embedded benchmark: a small VAE, stage 1 (frames)
and stage 2 (motion modules on clips). Real Champ weights skip all of this (``cosec champ import``)."""

from cosec._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "TeacherStage1": ".objectives",
        "TeacherStage2": ".objectives",
        "VAETrainer": ".vae",
        "calibrate_scaling_factor": ".vae",
        "denoising_loss": ".objectives",
    },
)
