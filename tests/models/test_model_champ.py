"""ChampModel: conditioning, the unconditional branch, VAE and CLIP wrappers."""

from __future__ import annotations

import torch

from cosec.models import Conditioning


@torch.no_grad()
def test_uncond_branch_matches_champ(tiny_random, make_inputs):
    model = tiny_random
    ref, guidance = make_inputs(model)
    cond = model.condition(ref, guidance)
    u = cond.uncond()
    assert u.bank is None  # plain self-attention
    assert torch.equal(u.clip_embeds, torch.zeros_like(cond.clip_embeds))  # CLIP embedding zeroed
    assert u.guidance_features is cond.guidance_features  # pose guidance kept
    assert cond.clip_embeds.abs().max() > 0 and cond.bank is not None
    x = torch.randn(2, 4, 8, 8)
    t = torch.tensor([50, 950])
    d = model.denoising_unet
    torch.testing.assert_close(
        model.predict(d, x, t, u), d(x, t, torch.zeros_like(cond.clip_embeds), cond.guidance_features, None)
    )
    assert (model.predict(d, x, t, u) - model.predict(d, x, t, cond)).abs().max() > 1e-4


@torch.no_grad()
def test_condition_runs_reference_once_and_shapes(tiny, make_inputs, monkeypatch):
    calls = []
    forward = tiny.reference_unet.forward
    monkeypatch.setattr(
        tiny.reference_unet, "forward", lambda *a, **k: (calls.append(1), forward(*a, **k))[1]
    )
    ref, guidance = make_inputs(tiny, frames=3)
    cond = tiny.condition(ref, guidance)
    assert len(calls) == 1
    assert cond.clip_embeds.shape == (2, 1, 32)
    assert cond.guidance_features.shape == (2, 16, 3, 8, 8)
    assert cond.bank.batch_size == 2 and len(cond.bank) == 16
    sel = cond.select(torch.tensor([1, 0, 1]))
    assert isinstance(sel, Conditioning) and sel.clip_embeds.shape[0] == 3 and sel.bank.batch_size == 3
    torch.testing.assert_close(sel.bank.tensors[5][0], cond.bank.tensors[5][1])


@torch.no_grad()
def test_vae_scaling_and_video_folding(tiny):
    pixels = torch.rand(2, 3, 2, 64, 64) * 2 - 1
    lat = tiny.encode_latents(pixels)
    assert lat.shape == (2, 4, 2, 8, 8)
    frame1 = tiny.vae.encode(pixels[:, :, 1]).latent_dist.mean * 0.18215
    torch.testing.assert_close(lat[:, :, 1], frame1, rtol=1e-5, atol=1e-5)
    out = tiny.decode_latents(lat)
    assert out.shape == pixels.shape and out.min() >= -1 and out.max() <= 1
    torch.testing.assert_close(out[:, :, 0], tiny.vae.decode(lat[:, :, 0] / 0.18215).sample.clamp(-1, 1))


@torch.no_grad()
def test_clip_embeds_preprocessing(tiny):
    size = tiny.image_encoder.config.image_size
    ref = torch.rand(1, 3, 64, 96) * 2 - 1  # non-square: short side resized, centre crop
    emb = tiny.clip_embeds(ref)
    assert emb.shape == (1, 1, 32)
    x = torch.nn.functional.interpolate((ref + 1) / 2, size=(size, 48), mode="bicubic", antialias=True)
    x = x[..., :, 8:40].clamp(0, 1)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    expected = tiny.image_encoder(pixel_values=(x - mean) / std).image_embeds
    torch.testing.assert_close(emb[:, 0], expected)
