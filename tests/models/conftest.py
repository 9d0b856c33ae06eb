"""Shared tiny models for the model tests (built once, copied per test)."""

from __future__ import annotations

import copy

import pytest
import torch

from cosec.models import ChampModel


def randomize_zero_init(model: ChampModel, seed: int = 1) -> ChampModel:
    """Give the zero-initialised outputs (guidance conv_out, motion proj_out) random values so tests see them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("conv_out.weight", "conv_out.bias", "proj_out.weight", "proj_out.bias")) and (
                "guidance_encoders" in name or "motion_modules" in name
            ):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


@pytest.fixture(scope="session")
def _tiny_base() -> ChampModel:
    torch.manual_seed(0)
    return ChampModel.build("tiny", motion_modules=True)


@pytest.fixture
def tiny(_tiny_base) -> ChampModel:
    """A fresh copy of the tiny model with motion modules (zero-initialised parts as built)."""
    return copy.deepcopy(_tiny_base)


@pytest.fixture
def tiny_random(_tiny_base) -> ChampModel:
    """The tiny model with its zero-initialised outputs randomised."""
    return randomize_zero_init(copy.deepcopy(_tiny_base))


def _make_inputs(model: ChampModel, batch: int = 2, frames: int | None = None, seed: int = 0):
    """Reference pixels in [-1, 1] and the four guidance images in [0, 1] (frames=None: images)."""
    gen = torch.Generator().manual_seed(seed)
    size = model.config.resolution
    ref = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    shape = (batch, 3, size, size) if frames is None else (batch, 3, frames, size, size)
    guidance = {t: torch.rand(shape, generator=gen) for t in model.config.guidance_types}
    return ref, guidance


@pytest.fixture
def make_inputs():
    return _make_inputs
