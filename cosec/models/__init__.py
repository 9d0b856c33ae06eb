"""Champ-compatible teacher models (see docs/models.md)."""

from cosec._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "ChampModel": ".champ",
        "Conditioning": ".champ",
        "DenoisingUNet": ".unet",
        "GUIDANCE_TYPES": ".config",
        "GuidanceEncoder": ".guidance",
        "GuidanceEncoders": ".guidance",
        "ModelConfig": ".config",
        "ModelSize": ".config",
        "MotionConfig": ".config",
        "MotionModule": ".motion",
        "ReferenceBank": ".reference_attention",
        "ReferenceUNet": ".unet",
        "model_config": ".config",
    },
)
