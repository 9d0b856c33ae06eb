"""Learning test: a distilled student's 2-step samples beat the teacher's own 2-step samples.

Toy problem on the tiny Champ model: latents x0 = mu + 0.5 * N(0, I) (a fixed pattern plus Gaussian
detail), one fixed reference and pose. The teacher D-UNet is briefly trained on it (v-prediction), then
distilled with the real ReferenceLCM phase-1 step. Samples are compared by a moment distance to the
teacher's 50-step DDIM samples: mean over latent elements of (mean difference)^2 + (std difference)^2.
Few-step DDIM over-smooths (too little variance: the classic blur); LCM's student should not.
"""

from __future__ import annotations

import pytest
import torch

from cosec.diffusion.schedule import NoiseSchedule
from cosec.diffusion.student import sample_student
from cosec.diffusion.teacher import sample_teacher
from cosec.distill import DistillBatch, DistillConfig, Phase1Config, ReferenceLCM
from cosec.models import ChampModel, Conditioning


def moment_distance(samples: torch.Tensor, reference: torch.Tensor) -> float:
    mean_gap = (samples.mean(0) - reference.mean(0)).square()
    std_gap = (samples.std(0) - reference.std(0)).square()
    return (mean_gap + std_gap).mean().item()


@pytest.mark.slow
def test_student_at_2_steps_beats_teacher_at_2_steps():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = ChampModel.build("tiny")
    schedule = NoiseSchedule()
    mu = 0.8 * torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None, None].expand(4, 8, 8)

    def data(n: int) -> torch.Tensor:
        return mu + 0.5 * torch.randn(n, 4, 8, 8, generator=g)

    ref_latents, ref_clip = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 1, 32, generator=g)
    pose = {k: torch.rand(1, 3, 64, 64, generator=g) for k in model.config.guidance_types}
    with torch.no_grad():
        cond = Conditioning(
            ref_clip, model.reference_unet(ref_latents, ref_clip), model.guidance_encoders(pose)
        )

    # 1. a teacher that actually models the toy distribution (100 v-prediction steps)
    teacher = model.denoising_unet.requires_grad_(True).train()
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=1e-3)
    train_cond = cond.select(torch.zeros(16, dtype=torch.long))
    for _ in range(100):
        x0, eps = data(16), torch.randn(16, 4, 8, 8, generator=g)
        t = torch.randint(0, 1000, (16,), generator=g)
        alpha, sigma = schedule.alpha_sigma(t)
        loss = (
            (model.predict(teacher, alpha * x0 + sigma * eps, t, train_cond) - (alpha * eps - sigma * x0))
            .square()
            .mean()
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    teacher.requires_grad_(False).eval()

    n = 64
    eval_cond = cond.select(torch.zeros(n, dtype=torch.long))
    shape = (n, 4, 8, 8)

    def seed() -> torch.Generator:
        return torch.Generator().manual_seed(123)

    teacher_many = sample_teacher(model, eval_cond, shape, 50, 1.0, seed())
    teacher_2 = sample_teacher(model, eval_cond, shape, 2, 1.0, seed())
    undistilled_2 = sample_student(
        model, teacher, eval_cond, shape, 2, seed()
    )  # teacher weights, LCM sampler

    # 2. distil with the real phase-1 step (no CFG: the teacher reference samples are unguided too)
    config = DistillConfig(
        lr=1e-3, num_solver_steps=10, phase1=Phase1Config(w=0.0, eta_weight=0.0, cons_weight=0.0)
    )
    lcd = ReferenceLCM(model, config)
    optimizer = lcd.make_optimizer(1)
    groups = 16
    batch = DistillBatch(
        latents=data(groups),
        guidance={k: v.expand(groups, -1, -1, -1) for k, v in pose.items()},
        ref_latents=ref_latents,
        ref_clip=ref_clip,
        ref_index=torch.zeros(groups, 1, dtype=torch.long),
        ref_video=torch.zeros(1, dtype=torch.long),
        num_ras=1,
    )
    for _ in range(100):
        batch.latents = data(groups)
        lcd.train_step(batch, optimizer, 1)
    student_2 = sample_student(model, lcd.student, eval_cond, shape, 2, seed())

    d_teacher = moment_distance(teacher_2, teacher_many)
    d_undistilled = moment_distance(undistilled_2, teacher_many)
    d_student = moment_distance(student_2, teacher_many)
    print(f"moment distance to teacher@50: teacher@2 {d_teacher:.4f}, undistilled@2 {d_undistilled:.4f}, "
          f"student@2 {d_student:.4f}")  # fmt: skip
    assert d_student < 0.6 * d_teacher
    assert d_student < 0.8 * d_undistilled  # the gain comes from distillation, not from the LCM sampler alone
