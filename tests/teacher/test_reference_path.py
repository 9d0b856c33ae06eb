"""The reference path: with the same pose and noise, another reference must change the teacher's output.

Both halves of the path are checked on a tiny model: the reference UNet's bank (read by the denoising
UNet's self-attention) and the CLIP image token (cross-attention); and stage 1 must train both.
"""

from __future__ import annotations

import pytest
import torch

from cosec.diffusion.schedule import NoiseSchedule
from cosec.diffusion.teacher import sample_teacher
from cosec.models import ChampModel, Conditioning
from cosec.teacher.objectives import TeacherStage1


@pytest.fixture(scope="module")
def model() -> ChampModel:
    torch.manual_seed(0)
    m = ChampModel.build("tiny")
    with torch.no_grad():  # Champ zero-initialises the guidance output; give the pose a say too
        for name, p in m.guidance_encoders.named_parameters():
            if name.endswith("conv_out.weight"):
                p.normal_(0, 0.05)
    return m


def _refs_and_pose(model: ChampModel):
    s = model.config.resolution
    gen = torch.Generator().manual_seed(0)
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, s, s).clone()
    blue = torch.tensor([-1.0, -1.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, s, s).clone()
    pose = {t: torch.rand(1, 3, s, s, generator=gen) for t in model.config.guidance_types}
    return red, blue, pose


def _sample(model: ChampModel, cond: Conditioning) -> torch.Tensor:
    s = model.config.latent_size
    noise = torch.randn((1, 4, s, s), generator=torch.Generator().manual_seed(1))
    return sample_teacher(model, cond, (1, 4, s, s), num_steps=3, guidance_scale=3.5, latents=noise)


@torch.no_grad()
def test_swapping_the_reference_changes_the_output_through_bank_and_clip(model):
    red, blue, pose = _refs_and_pose(model)
    a, b = model.condition(red, pose), model.condition(blue, pose)
    out_a, out_b = _sample(model, a), _sample(model, b)
    assert torch.equal(out_a, _sample(model, model.condition(red, pose)))  # same inputs: same output
    scale = out_a.abs().mean()
    assert (out_a - out_b).abs().mean() > 1e-3 * scale  # another reference: another output
    # each half of the path carries the reference on its own
    bank_only = Conditioning(a.clip_embeds, b.bank, a.guidance_features)
    clip_only = Conditioning(b.clip_embeds, a.bank, a.guidance_features)
    assert (_sample(model, bank_only) - out_a).abs().mean() > 1e-4 * scale
    assert (_sample(model, clip_only) - out_a).abs().mean() > 1e-4 * scale
    # and the bank is read at all: without it (CLIP kept) the output differs from the banked one
    assert (_sample(model, Conditioning(a.clip_embeds, None, a.guidance_features)) - out_a).abs().mean() > 0


def test_stage1_trains_the_reference_unet_and_the_clip_image_encoder(model):
    s = model.config.resolution
    red, blue, pose = _refs_and_pose(model)
    batch = {"pixel_values": torch.rand(2, 3, s, s) * 2 - 1, "ref_pixels": torch.cat([red, blue]),
             "guidance": {k: v.expand(2, -1, -1, -1) for k, v in pose.items()}}  # fmt: skip
    step = TeacherStage1(model, NoiseSchedule(), uncond_prob=0.0, seed=0, train_image_encoder=True)
    params = step.trainable()
    assert {id(p) for p in model.image_encoder.parameters()} <= {id(p) for p in params}
    for p in params:
        p.requires_grad_(True)
    try:
        loss, _ = step(batch)
        loss.backward()
        for part in (model.reference_unet, model.image_encoder):
            grads = [p.grad.abs().sum() for p in part.parameters() if p.grad is not None]
            assert grads and float(sum(grads)) > 0, type(part).__name__
        frozen = TeacherStage1(model, NoiseSchedule(), uncond_prob=0.0, seed=0, train_image_encoder=False)
        assert not {id(p) for p in model.image_encoder.parameters()} & {id(p) for p in frozen.trainable()}
    finally:
        model.zero_grad(set_to_none=True)
        model.requires_grad_(False)
