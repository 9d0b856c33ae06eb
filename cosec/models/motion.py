"""AnimateDiff-style motion module (Champ's "Vanilla" temporal module), from diffusers parts.

Built from diffusers' ``Attention``, ``FeedForward`` and ``SinusoidalPositionalEmbedding``.
Sub-module names follow Champ/AnimateDiff (``temporal_transformer.transformer_blocks.0.
attention_blocks.{0,1}``, ``norms``, ``ff_norm``, ``pos_encoder.pe``), so Champ's
``motion_module.pth`` loads without renaming. diffusers' own ``AnimateDiffTransformer3D`` is
not used because it group-normalises across frames, whereas AnimateDiff and Champ normalise
each frame separately.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import SinusoidalPositionalEmbedding
from torch import nn


class TemporalBlock(nn.Module):
    """Two temporal self-attentions (each with its own sinusoidal position table) and a GEGLU feed-forward."""

    def __init__(self, dim: int, heads: int, max_len: int, num_attention_blocks: int = 2):
        super().__init__()
        self.attention_blocks = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(num_attention_blocks):
            attn = Attention(query_dim=dim, heads=heads, dim_head=dim // heads, bias=False)
            attn.pos_encoder = SinusoidalPositionalEmbedding(dim, max_seq_length=max_len)
            self.attention_blocks.append(attn)
            self.norms.append(nn.LayerNorm(dim))
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B*H*W, F, C) -- attention runs over the frame axis at every spatial position
        for attn, norm in zip(self.attention_blocks, self.norms, strict=True):
            x = attn(attn.pos_encoder(norm(x))) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, max_len: int, norm_num_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(norm_num_groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([TemporalBlock(channels, heads, max_len)])
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)  # zero-initialised: a new module starts as the identity
        nn.init.zeros_(self.proj_out.bias)
        self.max_len = max_len

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        # x: (B*F, C, H, W), b-major; group norm per frame as AnimateDiff
        bf, c, h, w = x.shape
        if bf % num_frames:
            raise ValueError(f"motion module: batch*frames {bf} is not a multiple of num_frames {num_frames}")
        if num_frames > self.max_len:
            raise ValueError(
                f"motion module: {num_frames} frames exceed the position table length {self.max_len}"
            )
        b = bf // num_frames
        hidden = self.norm(x)
        hidden = hidden.reshape(b, num_frames, c, h * w).permute(0, 3, 1, 2).reshape(b * h * w, num_frames, c)
        hidden = self.proj_in(hidden)
        for block in self.transformer_blocks:
            hidden = block(hidden)
        hidden = self.proj_out(hidden)
        hidden = hidden.reshape(b, h * w, num_frames, c).permute(0, 2, 3, 1).reshape(bf, c, h, w)
        return x + hidden


class MotionModule(nn.Module):
    """One of the 21 motion modules; the wrapper level keeps Champ's ``temporal_transformer`` key prefix."""

    def __init__(self, channels: int, heads: int, max_len: int, norm_num_groups: int):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, heads, max_len, norm_num_groups)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.temporal_transformer(x, num_frames)
