"""Model-free LCD maths: solver grid, DDIM step, consistency scalings, distances, regularisers, config."""

from __future__ import annotations

import math

import pytest
import torch

from cosec.config import ConfigError, from_dict
from cosec.diffusion.lcd import (
    ConsistencyFunction,
    DDIMSolver,
    cfg_combine,
    consistency_scalings,
    pair_distance,
)
from cosec.diffusion.schedule import NoiseSchedule, v_to_x0_eps
from cosec.distill.config import DistillConfig
from cosec.distill.regularizers import (
    cons_distance,
    eta_distance,
    inter_source_pairs,
    ras_pairs,
    temporal_self_dependency,
)


def test_boundary_condition_and_lcm_scheduler_agree():
    c_skip, c_out = consistency_scalings(torch.tensor([0, 1, 259, 999]))
    assert c_skip[0].item() == 1.0 and c_out[0].item() == 0.0
    lcm = NoiseSchedule().lcm()
    for i, t in enumerate([0, 1, 259, 999]):
        ref_skip, ref_out = lcm.get_scalings_for_boundary_condition_discrete(t)
        assert c_skip[i].item() == pytest.approx(float(ref_skip), rel=1e-6, abs=1e-12)
        assert c_out[i].item() == pytest.approx(float(ref_out), rel=1e-6)
    # s t / sqrt((s t)^2 + sd^2) at t = 1: 10 / sqrt(100.25)
    assert c_out[1].item() == pytest.approx(10 / math.sqrt(100.25), rel=1e-6)


def test_consistency_function_is_identity_at_t0_and_x0_at_large_t():
    f = ConsistencyFunction()
    x, v = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    assert torch.equal(f(x, v, torch.tensor([0, 0])), x)
    t = torch.tensor([999, 999])
    alpha, sigma = NoiseSchedule().alpha_sigma(t)
    x0, _ = v_to_x0_eps(x, v, alpha, sigma)
    torch.testing.assert_close(f(x, v, t), x0, atol=1e-6, rtol=0)


def test_solver_grid_and_pairs():
    solver = DDIMSolver(NoiseSchedule(), 50)
    assert solver.skip == 20
    assert solver.timesteps[0].item() == 19 and solver.timesteps[-1].item() == 999
    assert torch.equal(solver.timesteps.diff(), torch.full((49,), 20))
    start, end = solver.sample_pairs(4000, torch.Generator().manual_seed(1))
    assert set(start.tolist()) == set(solver.timesteps.tolist())  # uniform over all 50 grid points
    assert torch.equal(end, (start - 20).clamp(min=0))
    with pytest.raises(ValueError, match="must divide"):
        DDIMSolver(NoiseSchedule(), 33)


@pytest.mark.parametrize("t", [999, 519, 39])
def test_solver_step_equals_diffusers_ddim_step(t):
    schedule = NoiseSchedule()
    solver = DDIMSolver(schedule, 50)
    ddim = schedule.ddim()
    ddim.set_timesteps(50)
    assert t in ddim.timesteps.tolist()
    g = torch.Generator().manual_seed(t)
    x, v_c, v_u = (torch.randn(2, 4, 5, 5, generator=g) for _ in range(3))
    w = 2.5
    tt = torch.tensor([t, t])
    alpha, sigma = schedule.alpha_sigma(tt)
    x0_c, eps_c = v_to_x0_eps(x, v_c, alpha, sigma)
    x0_u, eps_u = v_to_x0_eps(x, v_u, alpha, sigma)
    ours = solver.step(cfg_combine(x0_c, x0_u, w), cfg_combine(eps_c, eps_u, w), tt - 20)
    # guidance on x0 and eps equals guidance on v (all linear in v at fixed x): the same DDIM step
    theirs = ddim.step(cfg_combine(v_c, v_u, w), t, x, eta=0.0).prev_sample
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_cfg_lcm_convention():
    assert cfg_combine(torch.tensor(2.0), torch.tensor(1.0), 2.5).item() == pytest.approx(2.0 + 2.5)
    assert cfg_combine(torch.tensor(2.0), torch.tensor(1.0), 0.0).item() == 2.0


def test_distances():
    a = torch.zeros(2, 3)
    b = torch.tensor([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    huber = pair_distance(a, b, "huber", 0.001)
    assert huber[0].item() == 0.0
    expected = (math.sqrt(9 + 1e-6) - 1e-3 + math.sqrt(16 + 1e-6) - 1e-3) / 3
    assert huber[1].item() == pytest.approx(expected, rel=1e-6)
    assert pair_distance(a, b, "l2")[1].item() == pytest.approx(25 / 3)
    with pytest.raises(ValueError, match="unknown distance"):
        pair_distance(a, b, "l1")


def test_temporal_self_dependency():
    g = torch.Generator().manual_seed(0)
    video = torch.randn(2, 4, 5, 3, 3, generator=g)
    t = temporal_self_dependency(video)
    assert t.shape == (2, 5, 5)
    torch.testing.assert_close(t, t.transpose(1, 2))
    torch.testing.assert_close(torch.diagonal(t, dim1=1, dim2=2), torch.ones(2, 5))
    scaled = video.clone()
    scaled[:, :, 2] *= 7.5  # rescaling one frame leaves cosine similarities unchanged
    torch.testing.assert_close(temporal_self_dependency(scaled), t)
    v0, v1 = video[0, :, 0].flatten(), video[0, :, 1].flatten()
    assert t[0, 0, 1].item() == pytest.approx(
        torch.nn.functional.cosine_similarity(v0, v1, dim=0).item(), rel=1e-5
    )
    with pytest.raises(ValueError, match="B,C,F,h,w"):
        temporal_self_dependency(video[:, :, 0])


def test_eta_zero_for_identical_outputs_and_positive_otherwise():
    same = torch.randn(1, 1, 4, 3, 3).expand(3, 3, 4, 3, 3)
    assert eta_distance(same, 3).item() == 0.0
    diff = torch.randn(3, 3, 4, 3, 3)
    manual = torch.stack([pair_distance(diff[:, i], diff[:, j]) for i, j in [(0, 1), (0, 2), (1, 2)]]).mean()
    torch.testing.assert_close(eta_distance(diff, 3), manual)
    assert ras_pairs(3).tolist() == [[0, 1], [0, 2], [1, 2]]
    with pytest.raises(ValueError, match="at least 2"):
        eta_distance(diff, 1)


def test_cons_pairs_only_across_videos_and_margin_guard():
    videos = torch.tensor([[0, 0, 1, 2]])
    pairs = inter_source_pairs(videos).tolist()
    assert [0, 0, 1] not in pairs  # same video: an ETA pair, never a CoNS pair
    assert sorted(pairs) == [[0, 0, 2], [0, 0, 3], [0, 1, 2], [0, 1, 3], [0, 2, 3]]
    out = torch.zeros(1, 4, 2)
    out[0, 2] = 10.0
    d = cons_distance(out, videos, "l2")
    assert d.item() == pytest.approx((100 * 3) / 5)  # 3 of the 5 pairs involve the far output
    assert cons_distance(out, videos, "l2", margin=1.0).item() == pytest.approx((3 * 1.0) / 5)
    with pytest.raises(ValueError, match="different videos"):
        cons_distance(out, torch.zeros(1, 4, dtype=torch.long))


def test_config_defaults_are_the_papers_and_parse_from_params():
    c = DistillConfig()
    assert (c.phase1.steps, c.phase1.w, c.phase1.eta_weight, c.phase1.cons_weight) == (3000, 2.5, 0.1, 0.02)
    assert (c.phase2.steps, c.phase2.w, c.phase2.tmp_weight, c.phase2.cons_weight) == (2000, 1.5, 0.05, 0.0)
    assert (c.lr, c.ema_decay, c.huber_c, c.num_solver_steps) == (1e-6, 0.95, 0.001, 50)
    assert (c.sigma_data, c.timestep_scaling, c.distance, c.cons_margin) == (0.5, 10.0, "huber", None)
    parsed = from_dict(DistillConfig, {"lr": 1e-4, "phase2": {"w": 1.0}, "distance": "l2"})
    assert parsed.lr == 1e-4 and parsed.phase2.w == 1.0 and parsed.phase2.tmp_weight == 0.05
    with pytest.raises(ConfigError, match="unknown"):
        from_dict(DistillConfig, {"phase1": {"phi9": 1.0}})
    with pytest.raises(ConfigError):
        from_dict(DistillConfig, {"distance": "l1"})
    with pytest.raises(ValueError, match="ema_decay"):
        DistillConfig(ema_decay=1.0)
