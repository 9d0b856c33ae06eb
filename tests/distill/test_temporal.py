"""The temporal term's forms (phase2.loss tmp_target / tmp_center): what they measure, their gradient, parsing."""

from __future__ import annotations

import pytest
import torch

from cosec.config import ConfigError
from cosec.distill import DistillBatch, DistillConfig, Phase2Config, ReferenceLCM
from cosec.distill.regularizers import temporal_regularizer, temporal_self_dependency
from cosec.models import ChampModel
from cosec.pipeline.distill import loss_config
from cosec.pipeline.params import PhaseStageConfig


@pytest.fixture(scope="module")
def tiny_video() -> ChampModel:
    torch.manual_seed(0)
    model = ChampModel.build("tiny", motion_modules=True)
    with torch.no_grad():  # motion modules start as the identity; perturb them so time is mixed
        for p in model.denoising_unet.motion_parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


def moving_clip(groups: int = 1, frames: int = 4, seed: int = 0) -> torch.Tensor:
    """(G, 4, F, 8, 8): a strong static background plus a small blob moving one pixel a frame."""
    g = torch.Generator().manual_seed(seed)
    background = 3.0 + torch.randn(groups, 4, 1, 8, 8, generator=g)
    blob = torch.zeros(groups, 4, frames, 8, 8)
    for t in range(frames):
        blob[:, :, t, 2:4, 1 + t : 3 + t] = 1.0
    return background + blob


def clip_batch(model: ChampModel, latents: torch.Tensor, num_ras: int = 2) -> DistillBatch:
    g = torch.Generator().manual_seed(2)
    frames = latents.shape[2]
    return DistillBatch(
        latents=latents,
        guidance={k: torch.rand(1, 3, frames, 64, 64, generator=g) for k in model.config.guidance_types},
        ref_latents=torch.randn(2, 4, 8, 8, generator=g),
        ref_clip=torch.randn(2, 1, 32, generator=g),
        ref_index=torch.tensor([[0, 1]])[:, :num_ras],
        ref_video=torch.tensor([0, 0]),
        num_ras=num_ras,
    )


def test_centering_measures_motion_not_the_static_background():
    clip = moving_clip()
    plain = temporal_self_dependency(clip)
    centred = temporal_self_dependency(clip, center=True)
    off = ~torch.eye(clip.shape[2], dtype=torch.bool)
    assert plain[0][off].min() > 0.9  # whole latents: the background makes every frame pair alike
    assert centred[0][off].max() < 0.5  # residuals: frames whose blobs do not overlap are dissimilar
    torch.testing.assert_close(torch.diagonal(centred, dim1=1, dim2=2), torch.ones(1, clip.shape[2]))
    # another background (another reference's appearance) and a positive scale leave the centred T alone
    other = 0.5 * clip + torch.randn(1, 4, 1, 8, 8)
    torch.testing.assert_close(temporal_self_dependency(other, center=True), centred)
    assert not torch.allclose(temporal_self_dependency(other), plain, atol=1e-3)


@pytest.mark.parametrize("center", [False, True])
def test_ground_truth_form_is_zero_on_the_clips_motion_and_positive_otherwise(center):
    clip = moving_clip(groups=2)
    # both references reproduce the clip (centred: up to their own static background and scale)
    same = torch.stack([clip, 2.0 * clip + 0.7 if center else clip], dim=1)  # (G, k, C, F, h, w)
    zero = temporal_regularizer(same, clip, "ground_truth", center)
    assert zero.item() == pytest.approx(0.0, abs=1e-6)
    frozen = clip[:, :, :1].expand_as(clip)  # the first frame held: no motion at all
    # the same frames out of order (a jerk back and forth; T cannot tell a clip played backwards)
    shuffled = clip[:, :, [0, 2, 1, 3]]
    for wrong in (frozen + 0.01 * torch.randn_like(clip), shuffled):
        outputs = torch.stack([same[:, 0], wrong], dim=1)
        assert temporal_regularizer(outputs, clip, "ground_truth", center).item() > 100 * max(
            zero.item(), 1e-6
        )
    # the paper's form (eq. 7) is blind to the ground truth: two references agreeing on the wrong motion cost 0
    agree = torch.stack([shuffled, shuffled], dim=1)
    assert temporal_regularizer(agree, clip, "references", center).item() == pytest.approx(0.0, abs=1e-6)
    assert temporal_regularizer(agree, clip, "ground_truth", center).item() > 1e-4
    with pytest.raises(ValueError, match="target"):
        temporal_regularizer(agree, clip, "truth", center)


def _student_call_replaced(lcd: ReferenceLCM, replace):
    """Replace the step's first consistency call (the student's outputs) by ``replace(f)``."""
    inner, calls = lcd.consistency, []

    def wrapped(*args):
        out = inner(*args)
        calls.append(out)
        return replace(out) if len(calls) == 1 else out

    lcd.consistency = wrapped


@pytest.mark.parametrize("center", [False, True])
def test_step_ground_truth_term_vanishes_on_the_true_motion_and_its_gradient_reaches_the_student(
    tiny_video, center
):
    clip = moving_clip(frames=3)
    config = DistillConfig(phase2=Phase2Config(tmp_weight=1.0, tmp_target="ground_truth", tmp_center=center))
    lcd = ReferenceLCM(tiny_video, config)
    batch = clip_batch(tiny_video, clip)
    # the student's outputs replaced by the clean clip (kept on the graph with a zero factor): no temporal cost
    scale = 1.5 if center else 1.0
    _student_call_replaced(lcd, lambda f: scale * clip.repeat_interleave(f.shape[0], 0) + 0.0 * f)
    assert lcd.phase2_step(batch, torch.Generator().manual_seed(0))["loss_tmp"].item() == pytest.approx(
        0.0, abs=1e-6
    )
    # the student's own outputs: positive, and its gradient reaches the student's weights (not the teacher's)
    lcd = ReferenceLCM(tiny_video, config)
    losses = lcd.phase2_step(batch, torch.Generator().manual_seed(0))
    assert losses["loss_tmp"].item() > 1e-4
    student = [p for p in lcd.student.parameters() if p.requires_grad]
    grads = torch.autograd.grad(losses["loss_tmp"], student, allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0
    assert all(not p.requires_grad for p in lcd.teacher.parameters())
    assert all(not p.requires_grad for p in lcd.target.parameters())


def test_ground_truth_form_needs_one_ras_reference_the_papers_two(tiny_video):
    batch = clip_batch(tiny_video, moving_clip(frames=3), num_ras=1)
    gt = ReferenceLCM(tiny_video, DistillConfig(phase2=Phase2Config(tmp_target="ground_truth")))
    assert gt.phase2_step(batch)["loss_tmp"].item() > 0
    paper = ReferenceLCM(tiny_video, DistillConfig(phase2=Phase2Config()))
    with pytest.raises(ValueError, match=">= 2 RAS"):
        paper.phase2_step(batch)


def test_params_parser_accepts_the_forms_and_refuses_other_values():
    where = "params.yaml:phase2.loss"
    default = loss_config(2, PhaseStageConfig(loss={}), where)
    assert (default.tmp_target, default.tmp_center) == ("references", False)  # the paper's form
    for target in ("references", "ground_truth"):
        for center in (False, True):
            stage = PhaseStageConfig(loss={"tmp_weight": 0.05, "tmp_target": target, "tmp_center": center})
            parsed = loss_config(2, stage, where)
            assert (parsed.tmp_target, parsed.tmp_center) == (target, center)
    for bad in ({"tmp_target": "gt"}, {"tmp_target": None}, {"tmp_center": "yes"}, {"tmp_center": 1}):
        with pytest.raises(ConfigError, match=f"{where}.tmp_"):
            loss_config(2, PhaseStageConfig(loss=bad), where)
    with pytest.raises(ConfigError, match="tmp_target"):
        loss_config(2, PhaseStageConfig(loss={}), where, {"tmp_target": "teacher"})
    with pytest.raises(ValueError, match="tmp_target"):
        Phase2Config(tmp_target="both")
