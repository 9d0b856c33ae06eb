"""Champ's two UNets on diffusers' ``UNet2DConditionModel``.

* ``ReferenceUNet``: runs once per reference image at timestep 0; its self-attention processors
  write the 16-block bank. Like Champ's 2D UNet it has no ``conv_norm_out`` / ``conv_out``.
* ``DenoisingUNet``: the same 2D weights applied per frame; self-attention reads the bank;
  guidance features are added right after ``conv_in`` (a forward hook, so parameter names stay
  SD1.5's); optional 21 motion modules live at Champ's key paths
  (``{down,up}_blocks.i.motion_modules.j``, ``mid_block.motion_modules.0``) and run after each
  resnet/attention pair (mid block: after the attention, before the second resnet).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from torch import nn

from .config import ModelConfig
from .motion import MotionModule
from .reference_attention import ReferenceBank, install_bank_readers, install_bank_writers


def build_unet(config: ModelConfig) -> UNet2DConditionModel:
    return UNet2DConditionModel(**config.unet)


class ReferenceUNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.unet = build_unet(config)
        # Champ's reference UNet drops the output head: its output is never used
        self.unet.conv_norm_out = None
        self.unet.conv_out = nn.Identity()
        self._state = install_bank_writers(self.unet)

    @property
    def num_blocks(self) -> int:
        return self._state.num_blocks

    def forward(self, ref_latents: torch.Tensor, clip_embeds: torch.Tensor) -> ReferenceBank:
        """ref_latents (B,4,h,w), clip_embeds (B,1,D) -> bank of the 16 self-attention inputs."""
        if ref_latents.ndim != 4:
            raise ValueError(f"reference latents must be (B,4,h,w), got {tuple(ref_latents.shape)}")
        timestep = torch.zeros(ref_latents.shape[0], dtype=torch.long, device=ref_latents.device)
        self._state.start_recording()
        try:
            self.unet(ref_latents, timestep, encoder_hidden_states=clip_embeds, return_dict=False)
            return self._state.take_recording()
        finally:
            self._state.recorded = []


@dataclass
class _RunState:
    """What the hooks of one DenoisingUNet call need; frames persist for gradient-checkpoint recomputation."""

    guidance: torch.Tensor | None = None
    num_frames: int = 1
    motion_active: bool = False
    checkpoint_motion: bool = False  # recompute motion modules in backward (gradient checkpointing)


class _GuidanceHook:
    """conv_in forward hook: add the summed guidance features (Champ: right after conv_in)."""

    def __init__(self, run: _RunState):
        self.run = run

    def __call__(self, module, args, output):
        if self.run.guidance is None:
            return output
        return output + self.run.guidance.to(output.dtype)


class _MotionHook:
    """Forward hook on the module a motion module follows (a resnet or a transformer)."""

    def __init__(self, run: _RunState, motion: MotionModule):
        self.run = run
        self.motion = motion

    def __call__(self, module, args, output):
        if not self.run.motion_active:
            return output
        if isinstance(output, tuple):
            return (self._motion(output[0]),) + tuple(output[1:])
        return self._motion(output)

    def _motion(self, x: torch.Tensor) -> torch.Tensor:
        if self.run.checkpoint_motion and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(self.motion, x, self.run.num_frames, use_reentrant=False)
        return self.motion(x, self.run.num_frames)


class DenoisingUNet(nn.Module):
    def __init__(self, config: ModelConfig, motion_modules: bool = False):
        super().__init__()
        self.config = config
        self.unet = build_unet(config)
        self._num_blocks = install_bank_readers(self.unet)
        self._run = _RunState()
        self.unet.conv_in.register_forward_hook(_GuidanceHook(self._run))
        self.has_motion_modules = False
        self.motion_enabled = True  # switch off to run a motion-module UNet as the per-frame 2D model
        if motion_modules:
            self.add_motion_modules()

    @property
    def num_blocks(self) -> int:
        return self._num_blocks

    def _motion_sites(self):
        """(block, module a motion module follows) in Champ's order: 2 per down block, 1 mid, 3 per up block."""
        for block in list(self.unet.down_blocks) + [self.unet.mid_block] + list(self.unet.up_blocks):
            anchors = getattr(block, "attentions", None) or block.resnets
            yield block, list(anchors)

    def add_motion_modules(self) -> None:
        """Insert the 21 zero-initialised motion modules (video stage); 2D weights are untouched."""
        if self.has_motion_modules:
            return
        m = self.config.motion
        for block, anchors in self._motion_sites():
            channels = [self._channels_of(a) for a in anchors]
            block.motion_modules = nn.ModuleList(
                [MotionModule(c, m.num_attention_heads, m.max_len, m.norm_num_groups) for c in channels]
            ).to(device=self.unet.conv_in.weight.device, dtype=self.unet.conv_in.weight.dtype)
            for anchor, motion in zip(anchors, block.motion_modules, strict=True):
                anchor.register_forward_hook(_MotionHook(self._run, motion))
        self.has_motion_modules = True

    @staticmethod
    def _channels_of(anchor: nn.Module) -> int:
        if hasattr(anchor, "in_channels") and hasattr(anchor, "transformer_blocks"):
            return int(anchor.in_channels)
        return int(anchor.out_channels)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in backward: diffusers' resnet and transformer-block checkpointing, plus every
        motion module (their hooks follow the transformers, which diffusers does not checkpoint whole)."""
        self.unet.enable_gradient_checkpointing()
        self._run.checkpoint_motion = True

    def motion_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if ".motion_modules." in n]

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        clip_embeds: torch.Tensor,
        guidance_features: torch.Tensor | None = None,
        bank: ReferenceBank | None = None,
    ) -> torch.Tensor:
        """v prediction with the shape of ``sample`` ((B,4,h,w) or (B,4,F,h,w)); bank=None is plain self-attention."""
        video = sample.ndim == 5
        if not video and sample.ndim != 4:
            raise ValueError(f"sample must be (B,4,h,w) or (B,4,F,h,w), got {tuple(sample.shape)}")
        b = sample.shape[0]
        frames = sample.shape[2] if video else 1
        timestep = torch.as_tensor(timestep, device=sample.device)
        timestep = timestep.expand(b) if timestep.ndim == 0 else timestep
        if timestep.shape != (b,):
            raise ValueError(f"timestep must be a scalar or (B,)=({b},), got {tuple(timestep.shape)}")
        if clip_embeds.shape[0] != b:
            raise ValueError(f"clip_embeds batch {clip_embeds.shape[0]} != sample batch {b}")
        if bank is not None and bank.batch_size != b:
            raise ValueError(f"reference bank batch {bank.batch_size} != sample batch {b}")
        if guidance_features is not None and (
            guidance_features.shape[0] != b or guidance_features.shape[2:] != sample.shape[2:]
        ):
            raise ValueError(
                f"guidance features {tuple(guidance_features.shape)} do not fit sample {tuple(sample.shape)} "
                "(same batch, frames and latent size)"
            )
        if video:
            x = fold_frames(sample)
            timestep = timestep.repeat_interleave(frames)
            clip_embeds = clip_embeds.repeat_interleave(frames, dim=0)
            guidance_features = None if guidance_features is None else fold_frames(guidance_features)
            bank = None if bank is None else bank.repeat_frames(frames)
        else:
            x = sample
        self._run.guidance = guidance_features
        self._run.num_frames = frames
        self._run.motion_active = video and self.has_motion_modules and self.motion_enabled
        try:
            out = self.unet(
                x,
                timestep,
                encoder_hidden_states=clip_embeds,
                cross_attention_kwargs={"reference_bank": bank},
                return_dict=False,
            )[0]
        finally:
            self._run.guidance = None
        return unfold_frames(out, frames) if video else out


def fold_frames(x: torch.Tensor) -> torch.Tensor:
    """(B,C,F,H,W) -> (B*F,C,H,W), b-major."""
    b, c, f, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def unfold_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B*F,C,H,W) -> (B,C,F,H,W)."""
    bf, c, h, w = x.shape
    return x.reshape(bf // frames, frames, c, h, w).permute(0, 2, 1, 3, 4)
