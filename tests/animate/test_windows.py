"""Context windows: the layout covers every frame with weights summing to one, one window is exactly the
plain sampler, overlapping windows average, and clips longer than the motion modules' table can be sampled."""

from __future__ import annotations

import pytest
import torch

from cosec.diffusion.schedule import NoiseSchedule
from cosec.diffusion.student import sample_student
from cosec.diffusion.teacher import sample_teacher
from cosec.diffusion.windows import ContextWindows, WindowGuidance, reference_conditioning, windowed_predict
from tests.animate.conftest import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def _inputs(model, frames: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    s = model.config.resolution
    ref = torch.rand(1, 3, s, s, generator=gen) * 2 - 1
    guidance = {t: torch.rand(1, 3, frames, s, s, generator=gen) for t in model.config.guidance_types}
    return ref, guidance


@pytest.mark.parametrize("frames", [1, 5, 24, 25, 44, 97, 480])
@pytest.mark.parametrize("layout", [(24, 4, 1), (8, 3, 1), (8, 0, 1), (6, 2, 2), (24, 4, 3)])
def test_every_frame_is_covered_and_weights_sum_to_one(frames, layout):
    cw = ContextWindows(*layout)
    wins = cw.windows(frames)
    covered = sorted({f for w in wins for f in w})
    assert covered == list(range(frames))
    for w in wins:
        assert len(set(w)) == len(w) <= cw.length  # no repeats, never longer than a window
        assert all(0 <= f < frames for f in w)  # no wrap-around
    if layout[2] == 1 and frames > cw.length:  # contiguous windows, hop = length - overlap, last one flush
        starts = [w[0] for w in wins]
        assert all(w == list(range(w[0], w[0] + cw.length)) for w in wins)
        assert starts[:-1] == list(range(0, frames - cw.length, cw.length - cw.overlap))
        assert wins[-1][-1] == frames - 1
    weights = cw.weights(frames)
    assert weights.shape == (len(wins), frames)
    assert torch.allclose(weights.sum(0), torch.ones(frames, dtype=torch.float64), atol=1e-12, rtol=0)


def test_defaults_are_champs_and_bad_layouts_are_refused():
    assert ContextWindows() == ContextWindows(24, 4, 1)
    assert len(ContextWindows().windows(24)) == 1 and len(ContextWindows().windows(44)) == 2
    for bad in ((0, 0, 1), (8, 8, 1), (8, -1, 1), (8, 2, 0)):
        with pytest.raises(ValueError, match="ContextWindows"):
            ContextWindows(*bad)


@pytest.mark.parametrize("layout", [(8, 3, 1), (8, 0, 1), (6, 2, 2)])
def test_overlapping_windows_average_a_per_frame_prediction_back_to_itself(layout):
    """A per-frame predictor gives the same value in every window covering a frame: the weighted average must
    be that value (and the predictor is called once per window)."""
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 50, 3, 3, generator=gen)
    feats = torch.randn(1, 4, 50, 3, 3, generator=gen)
    calls = []

    class Cond:
        def __init__(self, clip_embeds, bank, guidance_features):
            self.clip_embeds, self.bank, self.guidance_features = clip_embeds, bank, guidance_features

    def predict(x, c):
        calls.append(x.shape[2])
        return 2 * x + c.guidance_features

    cw = ContextWindows(*layout)
    out = windowed_predict(sample, predict, Cond(torch.zeros(1, 1, 2), None, feats), cw)
    torch.testing.assert_close(out, 2 * sample + feats, atol=1e-6, rtol=1e-6)
    assert len(calls) == len(cw.windows(50)) and max(calls) == cw.length


def _plain_teacher(model, cond, latents, steps, scale):
    """The unwindowed DDIM + CFG loop: one D-UNet call per branch on the whole clip."""
    sched = NoiseSchedule().ddim()
    sched.set_timesteps(steps)
    x = latents * sched.init_noise_sigma
    for t in sched.timesteps:
        ts = t.expand(x.shape[0])
        v = model.predict(model.denoising_unet, x, ts, cond).float()
        v_u = model.predict(model.denoising_unet, x, ts, cond.uncond()).float()
        x = sched.step(v_u + scale * (v - v_u), t, x, eta=0.0).prev_sample
    return x


def _plain_student(model, cond, latents, steps, generator):
    sched = NoiseSchedule().lcm()
    sched.set_timesteps(steps)
    x = latents * sched.init_noise_sigma
    for t in sched.timesteps.tolist():
        v = model.predict(model.denoising_unet, x, torch.full((x.shape[0],), int(t)), cond).float()
        x = sched.step(v, t, x, generator=generator).prev_sample
    return x


@torch.no_grad()
def test_one_window_equals_unwindowed_sampling_exactly(model):
    frames = 5
    ref, guidance = _inputs(model, frames)
    cond = model.condition(ref, guidance)
    lat = model.config.latent_size
    noise = torch.randn(1, 4, frames, lat, lat, generator=torch.Generator().manual_seed(3))
    per_window = WindowGuidance.from_tensors(model, guidance)  # guidance features computed inside the window
    ref_only = reference_conditioning(model, ref)
    plain = _plain_teacher(model, cond, noise.clone(), 3, 3.5)
    for windows in (None, ContextWindows(24, 4), ContextWindows(frames, 0)):
        out = sample_teacher(model, cond, noise.shape, 3, 3.5, latents=noise.clone(), windows=windows)
        assert torch.equal(out, plain)
    out = sample_teacher(model, ref_only, noise.shape, 3, 3.5, latents=noise.clone(), guidance=per_window)
    assert torch.equal(out, plain)
    plain = _plain_student(model, cond, noise.clone(), 4, torch.Generator().manual_seed(9))
    for c, g in ((cond, None), (ref_only, per_window)):
        out = sample_student(
            model, model.denoising_unet, c, noise.shape, 4, torch.Generator().manual_seed(9),
            latents=noise.clone(), windows=ContextWindows(), guidance=g,
        )  # fmt: skip
        assert torch.equal(out, plain)


@torch.no_grad()
def test_clips_longer_than_the_motion_table_are_sampled_in_windows(model):
    frames = 40  # the motion modules' position table holds 32
    ref, guidance = _inputs(model, frames)
    cond = reference_conditioning(model, ref)
    per_window = WindowGuidance.from_tensors(model, guidance)
    lat = model.config.latent_size
    shape = (1, 4, frames, lat, lat)
    with pytest.raises(ValueError, match="position table"):
        sample_student(model, model.denoising_unet, model.condition(ref, guidance), shape, 1,
                       torch.Generator().manual_seed(0), windows=ContextWindows(frames, 0))  # fmt: skip
    seen = []
    progress = type("P", (), {"update": lambda self, n=1: seen.append(n)})()
    out = sample_student(
        model, model.denoising_unet, cond, shape, 2, torch.Generator().manual_seed(0),
        windows=ContextWindows(24, 4), guidance=per_window, progress=progress,
    )  # fmt: skip
    assert out.shape == shape and torch.isfinite(out).all()
    assert len(seen) == 2 * 2  # 2 steps x 2 windows (0-23, 16-39)
