"""The VAE's colour augmentations: a hue rotation that keeps grey and turns colours, never applied by default."""

from __future__ import annotations

import math

import pytest
import torch

from cosec.teacher.config import VAEPart
from cosec.teacher.vae import VAETrainer, rotate_hue


def test_hue_rotation_by_a_third_of_a_turn_cycles_the_channels_and_keeps_grey():
    x = torch.rand(2, 3, 5, 5) * 1.6 - 0.8
    turned = rotate_hue(x, torch.tensor([2 * math.pi / 3, 0.0]))
    assert torch.allclose(turned[0], x[0][[2, 0, 1]], atol=1e-6)  # R -> G -> B -> R
    assert torch.equal(turned[1], x[1])
    grey = torch.full((1, 3, 4, 4), 0.25)
    assert torch.allclose(rotate_hue(grey, torch.tensor([1.234])), grey, atol=1e-6)


def test_hue_rotation_changes_colour_but_keeps_the_distance_from_grey():
    red = torch.tensor([0.6, -0.3, -0.3]).reshape(1, 3, 1, 1)
    turned = rotate_hue(red, torch.tensor([math.pi / 2]))
    assert (turned - red).abs().max() > 0.3
    # a rotation about the grey axis keeps the chroma vector's length and the grey level (mean)
    assert torch.allclose(turned.mean(1), red.mean(1), atol=1e-6)
    assert torch.allclose((turned - turned.mean(1)).norm(dim=1), (red - red.mean(1)).norm(dim=1), atol=1e-6)


def _trainer(hue_prob: float) -> VAETrainer:
    return VAETrainer(torch.nn.Identity(), seed=3, hue_prob=hue_prob)  # only _augment is used


def test_hue_prob_zero_draws_nothing_and_one_turns_every_image():
    x = torch.rand(6, 3, 4, 4) * 2 - 1
    off = _trainer(0.0)
    before = off.generator.get_state()
    assert torch.equal(off._augment(x), x)
    assert torch.equal(off.generator.get_state(), before)  # the default run's random stream is untouched
    on = _trainer(1.0)._augment(x)
    changed = (on - x).flatten(1).abs().amax(1)
    assert bool((changed > 1e-3).all())


def test_hue_prob_is_a_strict_share():
    assert VAEPart().hue_prob == 0.0
    from cosec.config import from_dict

    with pytest.raises(ValueError, match="hue_prob"):
        from_dict(VAEPart, {"hue_prob": 1.5}, "teacher.vae")
