"""Denoising UNet: guidance after conv_in, video = per-frame 2D when motion is off, motion modules, copies."""

from __future__ import annotations

import copy

import torch

from cosec.models import MotionModule


def _sample(model, batch=2, frames=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    s = model.config.latent_size
    shape = (batch, 4, s, s) if frames is None else (batch, 4, frames, s, s)
    return torch.randn(shape, generator=gen)


@torch.no_grad()
def test_zero_initialised_guidance_leaves_unet_unchanged(tiny, tiny_random, make_inputs):
    ref, guidance = make_inputs(tiny)
    cond = tiny.condition(ref, guidance)
    assert cond.guidance_features.abs().max() == 0  # fresh encoders: zero conv_out
    x, t = _sample(tiny), torch.tensor([5, 600])
    d = tiny.denoising_unet
    torch.testing.assert_close(
        d(x, t, cond.clip_embeds, cond.guidance_features, cond.bank),
        d(x, t, cond.clip_embeds, None, cond.bank),
    )
    # trained (non-zero) guidance does change the output
    cond_r = tiny_random.condition(ref, guidance)
    d_r = tiny_random.denoising_unet
    with_g = d_r(x, t, cond_r.clip_embeds, cond_r.guidance_features, cond_r.bank)
    assert (with_g - d_r(x, t, cond_r.clip_embeds, None, cond_r.bank)).abs().max() > 1e-4


@torch.no_grad()
def test_guidance_is_added_right_after_conv_in(tiny_random):
    d = tiny_random.denoising_unet
    x, t = _sample(tiny_random), torch.tensor([1, 2])
    clip = torch.randn(2, 1, 32)
    g = torch.randn(2, tiny_random.config.unet["block_out_channels"][0], 8, 8)
    seen = []
    d.unet.down_blocks[0].register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(args[0] if args else kwargs["hidden_states"]), with_kwargs=True
    )
    d(x, t, clip, g, None)
    torch.testing.assert_close(seen[0], d.unet.conv_in(x) + g)


@torch.no_grad()
def test_summed_guidance_encoders(tiny_random, make_inputs):
    _, guidance = make_inputs(tiny_random)
    enc = tiny_random.guidance_encoders
    total = enc(guidance)
    torch.testing.assert_close(total, sum(enc.encoders[k](guidance[k]) for k in enc.types))
    assert total.shape == (2, tiny_random.config.unet["block_out_channels"][0], 8, 8)


@torch.no_grad()
def test_video_with_motion_off_equals_2d_per_frame(tiny_random, make_inputs):
    model = tiny_random
    d = model.denoising_unet
    assert sum(isinstance(m, MotionModule) for m in d.modules()) == 21
    ref, guidance = make_inputs(model, frames=3)
    cond = model.condition(ref, guidance)
    x, t = _sample(model, frames=3), torch.tensor([7, 400])
    per_frame = torch.stack(
        [d(x[:, :, f], t, cond.clip_embeds, cond.guidance_features[:, :, f], cond.bank) for f in range(3)],
        dim=2,
    )
    d.motion_enabled = False
    off = d(x, t, cond.clip_embeds, cond.guidance_features, cond.bank)
    torch.testing.assert_close(off, per_frame, rtol=1e-5, atol=1e-5)
    d.motion_enabled = True
    on = d(x, t, cond.clip_embeds, cond.guidance_features, cond.bank)
    assert (on - per_frame).abs().max() > 1e-4
    # temporal mixing: changing frame 0 moves frame 2's prediction only when motion is on
    x2 = x.clone()
    x2[:, :, 0] += 1.0
    on2 = d(x2, t, cond.clip_embeds, cond.guidance_features, cond.bank)
    assert (on2[:, :, 2] - on[:, :, 2]).abs().max() > 1e-5
    d.motion_enabled = False
    torch.testing.assert_close(
        d(x2, t, cond.clip_embeds, cond.guidance_features, cond.bank)[:, :, 2], off[:, :, 2]
    )


@torch.no_grad()
def test_fresh_motion_modules_are_identity(tiny):
    d = tiny.denoising_unet
    x, t, clip = _sample(tiny, frames=2), torch.tensor([3, 9]), torch.randn(2, 1, 32)
    d.motion_enabled = True
    on = d(x, t, clip)
    d.motion_enabled = False
    torch.testing.assert_close(on, d(x, t, clip), rtol=1e-6, atol=1e-6)


def test_motion_parameters_are_separate(tiny):
    d = tiny.denoising_unet
    motion = d.motion_parameters()
    assert motion and all(p.requires_grad for p in motion)
    n_motion = sum(p.numel() for p in motion)
    n_2d = sum(p.numel() for n, p in d.named_parameters() if ".motion_modules." not in n)
    assert n_motion + n_2d == sum(p.numel() for p in d.parameters())


@torch.no_grad()
def test_deep_copies_are_independent(tiny, make_inputs):
    """Teacher / student / target copies of the D-UNet must each read their own bank and weights."""
    ref, guidance = make_inputs(tiny)
    cond = tiny.condition(ref, guidance)
    x, t = _sample(tiny), torch.tensor([100, 800])
    d = tiny.denoising_unet
    student = copy.deepcopy(d)
    with_bank = tiny.predict(d, x, t, cond)
    torch.testing.assert_close(tiny.predict(student, x, t, cond), with_bank)
    assert (with_bank - tiny.predict(d, x, t, cond.with_bank(None))).abs().max() > 1e-4
    for p in student.parameters():
        p.add_(0.01)
    assert (tiny.predict(student, x, t, cond) - with_bank).abs().max() > 1e-4
    torch.testing.assert_close(tiny.predict(d, x, t, cond), with_bank)


def test_gradients_reach_student_and_reference(tiny_random, make_inputs):
    model = tiny_random
    ref, guidance = make_inputs(model, batch=1)
    cond = model.condition(ref, guidance)
    v = model.predict(model.denoising_unet, _sample(model, batch=1), torch.tensor([500]), cond)
    v.square().mean().backward()
    assert model.denoising_unet.unet.conv_in.weight.grad.abs().sum() > 0
    assert model.reference_unet.unet.down_blocks[0].attentions[0].proj_in.weight.grad.abs().sum() > 0
    assert model.guidance_encoders.encoders["dwpose"].conv_in.weight.grad.abs().sum() > 0


def test_gradient_checkpointing_gives_the_same_gradients(tiny_random, make_inputs):
    """The bank travels with the call (cross_attention_kwargs), so checkpoint recomputation sees it too."""
    model = tiny_random
    model.train()
    ref, guidance = make_inputs(model, batch=1, frames=2)
    x = torch.randn(1, 4, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([300])

    def grads():
        model.zero_grad()
        cond = model.condition(ref, guidance)
        v = model.predict(model.denoising_unet, x, t, cond)
        v.square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.denoising_unet.unet.enable_gradient_checkpointing()
    model.reference_unet.unet.enable_gradient_checkpointing()
    ckpt = grads()
    assert plain.keys() == ckpt.keys()
    assert any("motion_modules" in n for n in plain) and any("reference_unet" in n for n in plain)
    for n in plain:
        torch.testing.assert_close(ckpt[n], plain[n], rtol=1e-4, atol=1e-6, msg=n)
