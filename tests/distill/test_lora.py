"""LoRA students (distill.student: lora): one frozen base shared by teacher, student and target; memory levers."""

from __future__ import annotations

import copy

import pytest
import torch

from cosec.config import from_dict
from cosec.diffusion.schedule import NoiseSchedule
from cosec.diffusion.student import sample_student
from cosec.diffusion.teacher import sample_teacher
from cosec.distill import (
    DistillBatch,
    DistillConfig,
    LoraSettings,
    Phase1Config,
    Phase2Config,
    ReferenceLCM,
    load_lora_student,
    lora,
)
from cosec.models import ChampModel, Conditioning
from cosec.models.checkpoint import ChampCheckpointError
from tests.distill.test_referencelcm import clip_batch, frame_batch

LORA = dict(student="lora", lr=1e-2)  # a large lr so a few steps move the adapters visibly


def fresh(motion: bool = False) -> ChampModel:
    torch.manual_seed(0)
    model = ChampModel.build("tiny", motion_modules=motion)
    if motion:  # motion modules are zero-initialised (identity); perturb them so the temporal path acts
        with torch.no_grad():
            for p in model.denoising_unet.motion_parameters():
                p.add_(0.02 * torch.randn_like(p))
    return model


def probe(model: ChampModel, frames: int | None = None):
    """A fixed D-UNet input with a reference bank and pose features."""
    g = torch.Generator().manual_seed(11)
    shape = (2, 4, 8, 8) if frames is None else (2, 4, frames, 8, 8)
    gshape = (2, 3, 64, 64) if frames is None else (2, 3, frames, 64, 64)
    with torch.no_grad():
        bank = model.reference_unet(torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 1, 32, generator=g))
        feats = model.guidance_encoders(
            {k: torch.rand(gshape, generator=g) for k in model.config.guidance_types}
        )
    cond = Conditioning(torch.randn(2, 1, 32, generator=g), bank, feats)
    return torch.randn(shape, generator=g), torch.tensor([999, 300]), cond


def run(unet, model, x, t, cond) -> torch.Tensor:
    with torch.no_grad():
        return model.predict(unet, x, t, cond)


def train(lcd: ReferenceLCM, steps: int, phase: int = 1) -> None:
    optimizer = lcd.make_optimizer(phase)
    batch = frame_batch(lcd.model) if phase == 1 else clip_batch(lcd.model)
    for _ in range(steps):
        lcd.train_step(batch, optimizer, phase)


def test_config_keys_defaults_and_errors():
    c = from_dict(DistillConfig, {"student": "lora", "lora": {"rank": 8, "target_modules": ["to_q", "to_v"]}})
    assert c.student == "lora" and c.lora.rank == 8 and c.lora.target_modules == ("to_q", "to_v")
    d = DistillConfig()
    assert d.student == "full" and d.optimizer == "adamw" and not d.gradient_checkpointing
    assert "time_emb_proj" in d.lora.target_modules and "conv1" in d.lora.target_modules
    assert d.lora.resolved_rank(16) == 4 and d.lora.resolved_rank(320) == 64  # tiny and sd15 widths
    assert d.lora.resolved_alpha(4) == 4.0 and LoraSettings(alpha=8).resolved_alpha(4) == 8.0
    with pytest.raises(ValueError, match="student must be"):
        DistillConfig(student="qlora")
    with pytest.raises(ValueError, match="rank must be"):
        LoraSettings(rank=0)
    with pytest.raises(ValueError, match="optimizer must be"):
        DistillConfig(optimizer="sgd")


def test_lora_student_starts_as_the_teacher_on_one_shared_base():
    model = fresh()
    original = copy.deepcopy(model.denoising_unet)
    lcd = ReferenceLCM(model, DistillConfig(**LORA))
    base = model.denoising_unet
    assert lcd.student.base is base and lcd.target.base is base and lcd.teacher.base is base
    # no second D-UNet: the views hold adapter weights only; the base holds one copy of the D-UNet weights
    assert not list(lcd.teacher.parameters())
    assert all(".lora_" in n for n, _ in lcd.student.named_adapter_parameters())
    n_base = sum(p.numel() for n, p in base.named_parameters() if ".lora_" not in n)
    assert n_base == sum(p.numel() for p in original.parameters())
    assert lcd.lora_rank == 4 and lcd.lora_scale == 1.0  # tiny width 16 -> rank 4, alpha = rank
    adapted = {n.rsplit(".lora_", 1)[0] for n, _ in lcd.student.named_adapter_parameters()}
    for kind in ("attn1.to_q", "attn2.to_k", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "resnets.0.conv1",
                 "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"):  # fmt: skip
        assert any(name.endswith(kind) for name in adapted), kind
    # B = 0: student, target and teacher are all exactly the original D-UNet
    assert all(p.count_nonzero() == 0 for n, p in lcd.student.named_adapter_parameters() if ".lora_B." in n)
    assert any(p.count_nonzero() > 0 for n, p in lcd.student.named_adapter_parameters() if ".lora_A." in n)
    x, t, cond = probe(model)
    expected = run(original, model, x, t, cond)
    for unet in (lcd.student, lcd.target, lcd.teacher):
        assert torch.equal(run(unet, model, x, t, cond), expected)


def test_only_adapter_weights_receive_gradients():
    model = fresh()
    lcd = ReferenceLCM(model, DistillConfig(**LORA))
    lcd.trainable_parameters(1)
    losses = lcd.phase1_step(frame_batch(model))
    losses["loss"].backward()
    with_grad = [n for n, p in lcd.named_parameters() if p.grad is not None]
    assert with_grad and all(".lora_" in n for n in with_grad)
    live = dict(lora.adapter_parameters(model.denoising_unet))
    # first step: B = 0, so only the B matrices get a non-zero gradient (dL/dA = B^T (...) = 0)
    assert all(p.grad is not None for p in live.values())
    assert any(p.grad.abs().sum() > 0 for n, p in live.items() if ".lora_B." in n)
    base = [p for n, p in model.denoising_unet.named_parameters() if ".lora_" not in n]
    frozen = [model.reference_unet, model.guidance_encoders, model.image_encoder, model.vae, lcd.target]
    assert all(p.grad is None and not p.requires_grad for p in base)
    assert all(p.grad is None and not p.requires_grad for m in frozen for p in m.parameters())


def test_ema_target_moves_only_adapters_and_base_stays_bit_identical():
    model = fresh()
    original = copy.deepcopy(model.denoising_unet)
    lcd = ReferenceLCM(model, DistillConfig(**LORA))
    base_before = {k: v.clone() for k, v in lora.base_state_dict(model.denoising_unet).items()}
    target_before = {n: p.detach().clone() for n, p in lcd.target.named_adapter_parameters()}
    optimizer = lcd.make_optimizer(1)
    batch = frame_batch(model)
    lcd.train_step(batch, optimizer, 1)
    student_1 = {n: p.detach().clone() for n, p in lcd.student.named_adapter_parameters()}
    lcd.train_step(batch, optimizer, 1)
    student_2 = dict(lcd.student.named_adapter_parameters())
    for name, p in lcd.target.named_adapter_parameters():  # two EMA updates of decay 0.95, adapters only
        expected = (
            0.95 * (0.95 * target_before[name] + 0.05 * student_1[name]) + 0.05 * student_2[name].detach()
        )
        torch.testing.assert_close(p, expected, rtol=1e-6, atol=1e-8)
    assert any(not torch.equal(target_before[n], p) for n, p in lcd.target.named_adapter_parameters())
    base_after = lora.base_state_dict(model.denoising_unet)
    assert base_after.keys() == base_before.keys() == original.state_dict().keys()
    assert all(torch.equal(base_before[k], v) for k, v in base_after.items())
    # the teacher (adapters off) is still the original D-UNet; student and target have moved apart from it
    x, t, cond = probe(model)
    expected = run(original, model, x, t, cond)
    assert torch.equal(run(lcd.teacher, model, x, t, cond), expected)
    student, target = run(lcd.student, model, x, t, cond), run(lcd.target, model, x, t, cond)
    assert not torch.allclose(student, expected, atol=1e-4) and not torch.allclose(target, student, atol=1e-5)
    # the teacher call left the adapters' trainability as it was
    assert all(p.requires_grad for _, p in lcd.student.named_adapter_parameters())
    # a checkpoint holds adapters only, and restores student and target into a fresh run
    state = {k: v.state_dict() for k, v in lcd.train_state().items()}
    assert all("/lora_" in key for part in state.values() for key in part)
    resumed = ReferenceLCM(fresh(), DistillConfig(**LORA))
    for k, v in resumed.train_state().items():
        v.load_state_dict(state[k])
    assert torch.equal(run(resumed.student, resumed.model, x, t, cond), student)
    assert torch.equal(run(resumed.target, resumed.model, x, t, cond), target)


def test_adapter_only_and_merged_outputs_agree(tmp_path):
    model = fresh(motion=True)
    model.save_pretrained(tmp_path / "teacher")
    lcd = ReferenceLCM(model, DistillConfig(**LORA))
    train(lcd, 2, phase=2)
    x, t, cond = probe(model, frames=3)
    adapter_out = run(lcd.student, model, x, t, cond)
    assert any(".motion_modules." in n for n in lcd.shipped_adapter())  # motion layers are adapted too
    # merged in memory: a plain D-UNet (no peft layers) with the original names
    merged = lcd.shipped()
    assert not lora.is_adapted(merged) and merged.state_dict().keys() == ChampModel.build(
        "tiny", motion_modules=True, device="meta").denoising_unet.state_dict().keys()  # fmt: skip
    torch.testing.assert_close(run(merged, model, x, t, cond), adapter_out, rtol=1e-4, atol=1e-5)
    # merged folder: a plain Champ folder
    folder = ChampModel.from_pretrained(tmp_path / "teacher")
    folder.denoising_unet.load_state_dict(merged.state_dict())
    folder.save_pretrained(tmp_path / "merged")
    from_merged = ChampModel.from_pretrained(tmp_path / "merged")
    torch.testing.assert_close(
        run(from_merged.denoising_unet, model, x, t, cond), adapter_out, rtol=1e-4, atol=1e-5
    )
    # adapter alone: merged on load into the base folder it records
    lcd.save_adapter(tmp_path / "adapter", base_model=tmp_path / "teacher")
    assert lora.is_adapter_folder(tmp_path / "adapter") and not lora.is_adapter_folder(tmp_path / "merged")
    from_adapter = load_lora_student(tmp_path / "adapter")
    torch.testing.assert_close(
        run(from_adapter.denoising_unet, model, x, t, cond), adapter_out, rtol=1e-4, atol=1e-5
    )
    # the adapter really changes the model (the agreement is not the trivial B = 0 one)
    teacher_out = run(lcd.teacher, model, x, t, cond)
    assert (adapter_out - teacher_out).abs().max() > 1e-3
    meta, adapter = lora.load_adapter(tmp_path / "adapter")
    assert meta["rank"] == 4 and meta["motion_modules"] and set(adapter) == set(lcd.shipped_adapter())
    with pytest.raises(ChampCheckpointError, match="motion-module layers"):
        load_lora_student(tmp_path / "adapter", base_dir=_two_d_folder(tmp_path))
    with pytest.raises(ChampCheckpointError, match="unpaired"):
        lora.merge_adapter(
            folder.denoising_unet.state_dict(), {"unet.conv_in.lora_A.weight": torch.zeros(1)}, 1.0
        )


def _two_d_folder(tmp_path):
    fresh().save_pretrained(tmp_path / "teacher2d")
    return tmp_path / "teacher2d"


def test_phase2_motion_only_lora_from_a_phase1_adapter():
    phase1 = ReferenceLCM(fresh(), DistillConfig(**LORA))
    train(phase1, 1)
    init = phase1.shipped_adapter()
    assert not any(".motion_modules." in n for n in init)
    config = DistillConfig(**LORA, phase2=Phase2Config(trainable="motion", eta_weight=0.1))
    lcd = ReferenceLCM(fresh(motion=True), config, student_init=init)
    for name, p in lcd.target.named_adapter_parameters():  # student and target start from the phase-1 adapter
        if name in init:
            assert torch.equal(p, init[name])
    optimizer = lcd.make_optimizer(2)
    trainable = {n for n, p in lcd.student.named_adapter_parameters() if p.requires_grad}
    assert trainable and all(".motion_modules." in n and ".lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in lcd.student.named_adapter_parameters()}
    losses = lcd.train_step(clip_batch(lcd.model), optimizer, 2)
    assert losses["loss_tmp"].item() > 0
    after = dict(lcd.student.named_adapter_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before if n not in trainable)
    assert any(not torch.equal(before[n], after[n]) for n in trainable)
    with pytest.raises(ValueError, match="adapter weights"):
        ReferenceLCM(fresh(motion=True), config, student_init=fresh().denoising_unet.state_dict())


def test_low_precision_lora_keeps_fp32_adapters():
    exact = ReferenceLCM(fresh(), DistillConfig(**LORA))
    low = ReferenceLCM(fresh(), DistillConfig(**LORA, low_precision=True))
    base = low.model.denoising_unet
    assert {p.dtype for n, p in base.named_parameters() if ".lora_" not in n} == {torch.bfloat16}
    assert {p.dtype for _, p in low.student.named_adapter_parameters()} == {torch.float32}
    assert {p.dtype for _, p in low.target.named_adapter_parameters()} == {torch.float32}
    batch = frame_batch(low.model)
    a = exact.phase1_step(batch, torch.Generator().manual_seed(3))["loss_cd"].item()
    b = low.phase1_step(batch, torch.Generator().manual_seed(3))["loss_cd"].item()
    assert b == pytest.approx(a, rel=0.2) and a != b
    train(low, 1)
    assert all(p.dtype == torch.float32 for _, p in low.student.named_adapter_parameters())


@pytest.mark.parametrize("student", ["full", "lora"])
def test_gradient_checkpointing_gives_the_same_gradients(student):
    def grads(checkpointing: bool) -> dict[str, torch.Tensor]:
        config = DistillConfig(
            student=student, gradient_checkpointing=checkpointing, phase2=Phase2Config(w=0.0)
        )
        lcd = ReferenceLCM(fresh(motion=True), config)
        if student == "lora":  # non-zero B, so every adapter gets a gradient
            with torch.no_grad():
                for n, p in lcd.student.named_adapter_parameters():
                    if ".lora_B." in n:
                        p.normal_(0, 0.01, generator=torch.Generator().manual_seed(len(n)))
        lcd.trainable_parameters(2)
        calls = []
        for module in (lcd.student.base if student == "lora" else lcd.student).modules():
            if type(module).__name__ == "MotionModule":
                module.register_forward_pre_hook(lambda *_: calls.append(torch.is_grad_enabled()))
        lcd.phase2_step(clip_batch(lcd.model), torch.Generator().manual_seed(5))["loss"].backward()
        named = (
            lcd.student.named_adapter_parameters() if student == "lora" else lcd.student.named_parameters()
        )
        return {n: p.grad.clone() for n, p in named if p.grad is not None}, calls

    plain, plain_calls = grads(False)
    ckpt, ckpt_calls = grads(True)
    assert plain.keys() == ckpt.keys() and any(".motion_modules." in n for n in plain)
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-4, atol=1e-7, msg=name)
    assert len(ckpt_calls) > len(plain_calls)  # the motion modules were recomputed in backward


def test_adamw8bit_needs_cuda_and_plain_adamw_is_default():
    lcd = ReferenceLCM(fresh(), DistillConfig(**LORA))
    assert type(lcd.make_optimizer(1)) is torch.optim.AdamW
    lcd8 = ReferenceLCM(fresh(), DistillConfig(**LORA, optimizer="adamw8bit"))
    with pytest.raises(ValueError, match="needs CUDA"):
        lcd8.make_optimizer(1)


def test_all_attention_runs_through_sdpa():
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    model = fresh(motion=True)
    ReferenceLCM(model, DistillConfig(student="lora"))  # adapted projections keep their processors
    attentions = [m for unet in (model.denoising_unet, model.reference_unet) for m in unet.modules()
                  if isinstance(m, Attention)]  # fmt: skip
    assert len(attentions) == 2 * 16 * 2 + 21 * 2  # self + cross per transformer block, 2 per motion module
    for attn in attentions:
        processor = attn.processor
        assert isinstance(getattr(processor, "inner", processor), AttnProcessor2_0), type(processor)


def moment_distance(samples: torch.Tensor, reference: torch.Tensor) -> float:
    mean_gap = (samples.mean(0) - reference.mean(0)).square()
    std_gap = (samples.std(0) - reference.std(0)).square()
    return (mean_gap + std_gap).mean().item()


@pytest.mark.slow
def test_lora_student_at_2_steps_beats_teacher_at_2_steps():
    """tests/distill/test_learning.py's toy problem and teacher, distilled into a rank-4 LoRA student."""
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
    teacher = model.denoising_unet.requires_grad_(True).train()
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=1e-3)
    train_cond = cond.select(torch.zeros(16, dtype=torch.long))
    for _ in range(100):
        x0, eps = data(16), torch.randn(16, 4, 8, 8, generator=g)
        t = torch.randint(0, 1000, (16,), generator=g)
        alpha, sigma = schedule.alpha_sigma(t)
        v = model.predict(teacher, alpha * x0 + sigma * eps, t, train_cond)
        loss = (v - (alpha * eps - sigma * x0)).square().mean()
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
    undistilled_2 = sample_student(model, teacher, eval_cond, shape, 2, seed())

    config = DistillConfig(
        student="lora",
        lr=3e-3,
        num_solver_steps=10,
        phase1=Phase1Config(w=0.0, eta_weight=0.0, cons_weight=0.0),
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
    # the teacher (the shared base with its adapters off) is untouched by the LoRA run
    with lora.adapters_disabled(model.denoising_unet):
        torch.testing.assert_close(
            sample_teacher(model, eval_cond, shape, 2, 1.0, seed()), teacher_2, rtol=0, atol=0
        )

    d_teacher = moment_distance(teacher_2, teacher_many)
    d_undistilled = moment_distance(undistilled_2, teacher_many)
    d_student = moment_distance(student_2, teacher_many)
    print(f"moment distance to teacher@50: teacher@2 {d_teacher:.4f}, undistilled@2 {d_undistilled:.4f}, "
          f"LoRA student@2 {d_student:.4f}")  # fmt: skip
    assert d_student < 0.6 * d_teacher
    assert d_student < 0.8 * d_undistilled
