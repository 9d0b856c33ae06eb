"""Teacher sampling: DDIM on Champ's schedule, CFG as Champ, reference UNet once per clip, deterministic."""

from __future__ import annotations

import pytest
import torch

from cosec.diffusion.schedule import NoiseSchedule
from cosec.diffusion.teacher import sample_teacher
from cosec.models import ChampModel


@pytest.fixture(scope="module")
def model() -> ChampModel:
    torch.manual_seed(0)
    m = ChampModel.build("tiny", motion_modules=True)
    with torch.no_grad():  # non-zero guidance / motion outputs so they take part
        for name, p in m.named_parameters():
            if name.endswith(("conv_out.weight", "proj_out.weight")) and (
                "guidance" in name or "motion" in name
            ):
                p.normal_(0, 0.05)
    return m


def _inputs(model, frames=None, batch=1):
    gen = torch.Generator().manual_seed(0)
    s = model.config.resolution
    shape = (batch, 3, s, s) if frames is None else (batch, 3, frames, s, s)
    ref = torch.rand(batch, 3, s, s, generator=gen) * 2 - 1
    return ref, {t: torch.rand(shape, generator=gen) for t in model.config.guidance_types}


def test_reference_unet_runs_once_per_clip(model, monkeypatch):
    calls = {"ref": 0, "den": 0}
    ref_forward, den_forward = model.reference_unet.forward, model.denoising_unet.forward

    def count(key, fn):
        def wrapped(*a, **k):
            calls[key] += 1
            return fn(*a, **k)

        return wrapped

    monkeypatch.setattr(model.reference_unet, "forward", count("ref", ref_forward))
    monkeypatch.setattr(model.denoising_unet, "forward", count("den", den_forward))
    ref, guidance = _inputs(model, frames=2)
    with torch.no_grad():
        cond = model.condition(ref, guidance)
    s = model.config.latent_size
    out = sample_teacher(
        model, cond, (1, 4, 2, s, s), num_steps=4, generator=torch.Generator().manual_seed(1)
    )
    assert out.shape == (1, 4, 2, s, s) and torch.isfinite(out).all()
    assert calls["ref"] == 1
    assert calls["den"] == 8  # 4 steps x (cond + uncond)


def test_sampler_is_deterministic_under_seed(model):
    ref, guidance = _inputs(model)
    with torch.no_grad():
        cond = model.condition(ref, guidance)
    s = model.config.latent_size
    a = sample_teacher(model, cond, (1, 4, s, s), num_steps=3, generator=torch.Generator().manual_seed(7))
    b = sample_teacher(model, cond, (1, 4, s, s), num_steps=3, generator=torch.Generator().manual_seed(7))
    c = sample_teacher(model, cond, (1, 4, s, s), num_steps=3, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-3


@torch.no_grad()
def test_one_step_is_cfg_of_v_at_t999(model):
    """Zero terminal SNR: at t=999 alpha=0, sigma=1 so x0 = -v; a 1-step DDIM returns x0 of the CFG'd v."""
    ref, guidance = _inputs(model)
    cond = model.condition(ref, guidance)
    s = model.config.latent_size
    noise = torch.randn(1, 4, s, s, generator=torch.Generator().manual_seed(3))
    out = sample_teacher(model, cond, noise.shape, num_steps=1, guidance_scale=3.5, latents=noise)
    t = torch.tensor([999])
    v_c = model.predict(model.denoising_unet, noise, t, cond)
    v_u = model.denoising_unet(noise, t, torch.zeros_like(cond.clip_embeds), cond.guidance_features, None)
    torch.testing.assert_close(out, -(v_u + 3.5 * (v_c - v_u)), rtol=1e-5, atol=1e-5)
    # guidance_scale 1 is the conditional branch alone
    out1 = sample_teacher(model, cond, noise.shape, num_steps=1, guidance_scale=1.0, latents=noise)
    torch.testing.assert_close(out1, -v_c, rtol=1e-5, atol=1e-5)


def test_ddim_uses_champ_schedule(model):
    sched = NoiseSchedule().ddim()
    sched.set_timesteps(20)
    assert sched.config.prediction_type == "v_prediction" and sched.config.rescale_betas_zero_snr
    assert sched.timesteps[0] == 999 and sched.timesteps[-1] == 49  # trailing spacing
    assert float(sched.alphas_cumprod[-1]) == pytest.approx(0.0, abs=1e-7)
