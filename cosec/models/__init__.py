"""Champ-compatible teacher models (see docs/models.md)."""

from .champ import ChampModel, Conditioning
from .config import GUIDANCE_TYPES, ModelConfig, MotionConfig, model_config
from .guidance import GuidanceEncoder, GuidanceEncoders
from .motion import MotionModule
from .reference_attention import ReferenceBank
from .unet import DenoisingUNet, ReferenceUNet

__all__ = [
    "GUIDANCE_TYPES",
    "ChampModel",
    "Conditioning",
    "DenoisingUNet",
    "GuidanceEncoder",
    "GuidanceEncoders",
    "ModelConfig",
    "MotionConfig",
    "MotionModule",
    "ReferenceBank",
    "ReferenceUNet",
    "model_config",
]
