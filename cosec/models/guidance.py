"""Champ's guidance encoders: one small conv net per guidance type, outputs summed.

Each encoder maps a 3-channel guidance image in [0, 1] at pixel resolution to the D-UNet's
first feature width at latent resolution (three stride-2 convs), with a zero-initialised
``conv_out`` so a fresh encoder leaves the D-UNet unchanged. Parameter names and shapes match
Champ's ``guidance_encoder_*.pth``: six ``attentions`` and a ``guidance_attention`` exist,
but Champ's forward uses only ``attentions[-1]``, and so does this one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn


def _spatial_attention(channels: int, heads: int, groups: int) -> Transformer2DModel:
    return Transformer2DModel(
        num_attention_heads=heads,
        attention_head_dim=channels // heads,
        in_channels=channels,
        norm_num_groups=groups,
        cross_attention_dim=None,
    )


class GuidanceEncoder(nn.Module):
    def __init__(
        self, out_channels: int, block_out_channels: tuple[int, ...], heads: int, in_channels: int = 3
    ):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        self.attentions = nn.ModuleList()
        for c_in, c_out in zip(block_out_channels[:-1], block_out_channels[1:], strict=True):
            self.blocks.append(nn.Conv2d(c_in, c_in, kernel_size=3, padding=1))
            self.attentions.append(_spatial_attention(c_in, heads, groups=1))
            self.blocks.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, stride=2))
            self.attentions.append(_spatial_attention(c_out, heads, groups=32))
        self.guidance_attention = _spatial_attention(block_out_channels[-1], heads, groups=32)
        self.conv_out = nn.Conv2d(block_out_channels[-1], out_channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # zero-initialised: a new encoder adds nothing to the D-UNet
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.conv_in(image))
        for block in self.blocks:
            x = F.silu(block(x))
        x = self.attentions[-1](x, return_dict=False)[0]  # Champ uses only the last attention
        return self.conv_out(x)


class GuidanceEncoders(nn.Module):
    """The per-type encoders (``encoders.<type>``); forward returns their sum."""

    def __init__(
        self, types: tuple[str, ...], out_channels: int, block_out_channels: tuple[int, ...], heads: int
    ):
        super().__init__()
        self.types = tuple(types)
        self.encoders = nn.ModuleDict(
            {name: GuidanceEncoder(out_channels, tuple(block_out_channels), heads) for name in self.types}
        )

    def forward(self, guidance: dict[str, torch.Tensor]) -> torch.Tensor:
        """guidance[type]: (B,3,H,W) or (B,3,F,H,W) in [0, 1] -> (B,C0,h,w) or (B,C0,F,h,w), summed over types."""
        missing = [t for t in self.types if t not in guidance]
        extra = [t for t in guidance if t not in self.types]
        if missing or extra:
            raise ValueError(
                f"guidance types: missing {missing}, unexpected {extra} (expected {list(self.types)})"
            )
        total = None
        for name in self.types:
            image = guidance[name].to(dtype=self.encoders[name].conv_in.weight.dtype)
            if image.ndim == 5:  # fold frames: the encoders are per frame
                b, c, f, h, w = image.shape
                out = self.encoders[name](image.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))
                out = out.reshape(b, f, *out.shape[1:]).permute(0, 2, 1, 3, 4)
            elif image.ndim == 4:
                out = self.encoders[name](image)
            else:
                raise ValueError(
                    f"guidance {name!r}: expected (B,3,H,W) or (B,3,F,H,W), got {tuple(image.shape)}"
                )
            total = out if total is None else total + out
        return total
