"""ReferenceLCM on the tiny Champ model: shared bank, call counts, gradients, EMA, loss terms, errors, sampler."""

from __future__ import annotations

import pytest
import torch

from cosec.diffusion.schedule import NoiseSchedule
from cosec.diffusion.student import sample_student
from cosec.distill import (
    LOSS_KEYS,
    DistillBatch,
    DistillConfig,
    NonFiniteLossError,
    Phase1Config,
    Phase2Config,
    ReferenceLCM,
    prepare_batch,
)
from cosec.models import ChampModel, Conditioning


@pytest.fixture(scope="module")
def tiny() -> ChampModel:
    torch.manual_seed(0)
    return ChampModel.build("tiny")


@pytest.fixture(scope="module")
def tiny_video() -> ChampModel:
    torch.manual_seed(0)
    model = ChampModel.build("tiny", motion_modules=True)
    # motion modules are zero-initialised (identity); perturb them so the temporal path does something
    with torch.no_grad():
        for p in model.denoising_unet.motion_parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


def frame_batch(model: ChampModel, groups: int = 2) -> DistillBatch:
    g = torch.Generator().manual_seed(1)
    # refs 0,1 from video 0 (group 0 RAS), 2 from video 1, 3,4 from video 2 (group 1 RAS); ref 2 is ERS of both
    return DistillBatch(
        latents=torch.randn(groups, 4, 8, 8, generator=g),
        guidance={k: torch.rand(groups, 3, 64, 64, generator=g) for k in model.config.guidance_types},
        ref_latents=torch.randn(5, 4, 8, 8, generator=g),
        ref_clip=torch.randn(5, 1, 32, generator=g),
        ref_index=torch.tensor([[0, 1, 2], [3, 4, 2]]),
        ref_video=torch.tensor([0, 0, 1, 2, 2]),
        num_ras=2,
    )


def clip_batch(model: ChampModel, frames: int = 3) -> DistillBatch:
    g = torch.Generator().manual_seed(2)
    return DistillBatch(
        latents=torch.randn(1, 4, frames, 8, 8, generator=g),
        guidance={k: torch.rand(1, 3, frames, 64, 64, generator=g) for k in model.config.guidance_types},
        ref_latents=torch.randn(2, 4, 8, 8, generator=g),
        ref_clip=torch.randn(2, 1, 32, generator=g),
        ref_index=torch.tensor([[0, 1]]),
        ref_video=torch.tensor([0, 0]),
        num_ras=2,
    )


class Recorder:
    """Forward hooks recording each call's batch size and the bank it received."""

    def __init__(self, module, with_kwargs=False):
        self.calls: list[tuple] = []
        module.register_forward_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs, output):
        self.calls.append((args, kwargs, output))


def test_shared_bank_and_call_counts(tiny):
    lcd = ReferenceLCM(tiny, DistillConfig())
    ref = Recorder(tiny.reference_unet)
    guid = Recorder(tiny.guidance_encoders)
    teacher, target, student = Recorder(lcd.teacher), Recorder(lcd.target), Recorder(lcd.student)
    batch = frame_batch(tiny)
    losses = lcd.phase1_step(batch)
    assert set(losses) == set(LOSS_KEYS)
    # the reference UNet runs once, on the 5 distinct references (ref 2 is used by both groups)
    assert len(ref.calls) == 1 and ref.calls[0][0][0].shape[0] == 5
    assert len(guid.calls) == 1
    bank = ref.calls[0][2]
    # student: all 2x3 (group, ref) items; teacher: cond on 2x2 RAS items + uncond once per group; target: RAS
    assert [c[0][0].shape[0] for c in student.calls] == [6]
    assert [c[0][0].shape[0] for c in teacher.calls] == [4, 2]
    assert [c[0][0].shape[0] for c in target.calls] == [4]
    assert teacher.calls[1][0][4] is None  # unconditional branch: no bank, CLIP zeroed
    assert torch.count_nonzero(teacher.calls[1][0][2]) == 0

    def rows(call, index):  # the bank rows a D-UNet call received must be the reference pass's own tensors
        got = call[0][4]
        for block, full in zip(got.tensors, bank.tensors, strict=True):
            torch.testing.assert_close(block, full[index], rtol=0, atol=0)

    # batch refs (0,1,2 | 3,4,2) are distinct indices 0..4 here (unique sorts them)
    rows(student.calls[0], torch.tensor([0, 1, 2, 3, 4, 2]))
    rows(teacher.calls[0], torch.tensor([0, 1, 3, 4]))
    rows(target.calls[0], torch.tensor([0, 1, 3, 4]))


def test_without_cons_ers_references_are_not_run(tiny):
    lcd = ReferenceLCM(tiny, DistillConfig(phase1=Phase1Config(cons_weight=0.0)))
    ref, student = Recorder(tiny.reference_unet), Recorder(lcd.student)
    losses = lcd.phase1_step(frame_batch(tiny))
    assert ref.calls[0][0][0].shape[0] == 4 and student.calls[0][0][0].shape[0] == 4
    assert losses["loss_cons"].item() == 0.0 and losses["loss_tmp"].item() == 0.0


def test_gradients_reach_the_student_only_and_ema_formula(tiny):
    lcd = ReferenceLCM(tiny, DistillConfig(lr=1e-3))
    optimizer = lcd.make_optimizer(1)
    before_target = {n: p.detach().clone() for n, p in lcd.target.named_parameters()}
    before_teacher = {n: p.detach().clone() for n, p in lcd.teacher.named_parameters()}
    losses = lcd.phase1_step(frame_batch(tiny))
    assert losses["loss_eta"].item() > 0 and losses["loss_cons"].item() < 0
    losses["loss"].backward()
    assert all(p.grad is not None for p in lcd.student.parameters() if p.requires_grad)
    assert any(p.grad.abs().sum() > 0 for p in lcd.student.parameters())
    frozen = [
        tiny.reference_unet,
        tiny.guidance_encoders,
        tiny.image_encoder,
        tiny.vae,
        lcd.teacher,
        lcd.target,
    ]
    assert all(p.grad is None and not p.requires_grad for m in frozen for p in m.parameters())
    optimizer.step()
    student_now = {n: p.detach().clone() for n, p in lcd.student.named_parameters()}
    lcd.update_ema()
    for name, p in lcd.target.named_parameters():
        expected = 0.95 * before_target[name] + 0.05 * student_now[name]
        torch.testing.assert_close(p, expected, rtol=1e-6, atol=1e-7)
    assert any(not torch.equal(before_target[n], p) for n, p in lcd.target.named_parameters())
    assert all(torch.equal(before_teacher[n], p) for n, p in lcd.teacher.named_parameters())


def test_sample_ema_is_a_separate_slow_average_that_is_shipped(tiny):
    plain = ReferenceLCM(tiny, DistillConfig(lr=1e-3))
    assert plain.average is None and plain.shipped() is plain.student
    assert set(plain.train_state()) == {"student", "target"}

    lcd = ReferenceLCM(tiny, DistillConfig(lr=1e-3, sample_ema_decay=0.9))
    assert lcd.shipped() is lcd.average and set(lcd.train_state()) == {"student", "target", "average"}
    assert not any(p.requires_grad for p in lcd.average.parameters())
    optimizer = lcd.make_optimizer(1)
    start = {n: p.detach().clone() for n, p in lcd.student.named_parameters()}
    for seed in (3, 4):
        losses = lcd.phase1_step(frame_batch(tiny), torch.Generator().manual_seed(seed))
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        if seed == 3:
            first = {n: p.detach().clone() for n, p in lcd.student.named_parameters()}
        lcd.update_ema()
    now = dict(lcd.student.named_parameters())
    for name, p in lcd.average.named_parameters():  # two updates of decay 0.9 from the initial weights
        expected = 0.9 * (0.9 * start[name] + 0.1 * first[name]) + 0.1 * now[name].detach()
        torch.testing.assert_close(p, expected, rtol=1e-6, atol=1e-7)
    for name, p in lcd.target.named_parameters():  # the target keeps its own (faster) decay
        expected = 0.95 * (0.95 * start[name] + 0.05 * first[name]) + 0.05 * now[name].detach()
        torch.testing.assert_close(p, expected, rtol=1e-6, atol=1e-7)
    assert any(not torch.equal(p, now[n]) for n, p in lcd.average.named_parameters())
    with pytest.raises(ValueError, match="sample_ema_decay"):
        DistillConfig(sample_ema_decay=1.0)


def test_sample_ema_survives_resume(tiny, tmp_path):
    from cosec.train.loop import TrainConfig, train

    def run(max_steps: int) -> ReferenceLCM:
        lcd = ReferenceLCM(tiny, DistillConfig(lr=1e-3, sample_ema_decay=0.9))
        batches = (frame_batch(tiny) for _ in range(10))
        config = TrainConfig(
            max_steps=max_steps,
            out_dir=str(tmp_path),
            lr=1e-3,
            checkpoint_every=1,
            progress=False,
            mixed_precision="no",
        )
        train(
            lambda b: (lcd.phase1_step(b)["loss"], {}),
            batches,
            lcd.trainable_parameters(1),
            config,
            state=lcd.train_state(),
            callbacks=[lambda _step, _logs: lcd.update_ema()],
        )
        return lcd

    trained = run(2)
    resumed = run(2)  # finds the step-2 checkpoint: nothing to train, the average comes from the checkpoint
    fresh = ReferenceLCM(tiny, DistillConfig(sample_ema_decay=0.9))
    for (name, a), b in zip(trained.average.named_parameters(), resumed.average.parameters(), strict=True):
        assert torch.equal(a, b), name
    pairs = zip(resumed.average.parameters(), fresh.average.parameters(), strict=True)
    assert any(not torch.equal(a, c) for a, c in pairs)


def test_eta_vanishes_with_identical_references_and_l2_option(tiny):
    lcd = ReferenceLCM(tiny, DistillConfig(distance="l2", phase1=Phase1Config(cons_weight=0.0)))
    batch = frame_batch(tiny)
    batch.ref_index = torch.tensor([[0, 0], [3, 3]])  # the "two" RAS references are one image
    losses = lcd.phase1_step(batch)
    assert losses["loss_eta"].item() == 0.0 and losses["loss_cd"].item() > 0


def test_cons_margin_bounds_the_negative_term(tiny):
    free = ReferenceLCM(tiny, DistillConfig(phase1=Phase1Config(cons_weight=1.0)))
    guarded = ReferenceLCM(tiny, DistillConfig(phase1=Phase1Config(cons_weight=1.0), cons_margin=1e-4))
    batch = frame_batch(tiny)
    a = free.phase1_step(batch, torch.Generator().manual_seed(5))["loss_cons"].item()
    b = guarded.phase1_step(batch, torch.Generator().manual_seed(5))["loss_cons"].item()
    assert a < -1e-4 and b == pytest.approx(-1e-4)


def test_nonfinite_loss_raises_before_any_update(tiny):
    lcd = ReferenceLCM(tiny, DistillConfig(lr=1e-3))
    optimizer = lcd.make_optimizer(1)
    batch = frame_batch(tiny)
    batch.latents[0, 0, 0, 0] = float("nan")
    before = [p.detach().clone() for p in lcd.student.parameters()]
    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        lcd.train_step(batch, optimizer, 1)
    assert all(torch.equal(a, p) for a, p in zip(before, lcd.student.parameters(), strict=True))


def test_batch_validation_errors(tiny):
    lcd = ReferenceLCM(tiny, DistillConfig())
    batch = frame_batch(tiny)
    batch.ref_video = torch.tensor([0, 1, 1, 2, 2])  # group 0's RAS refs from two videos
    with pytest.raises(ValueError, match="RAS references of a group"):
        lcd.phase1_step(batch)
    with pytest.raises(ValueError, match="needs clips"):
        lcd.phase2_step(frame_batch(tiny))
    single = frame_batch(tiny)
    single.num_ras = 1
    single.ref_index = single.ref_index[:, [0, 2]]
    with pytest.raises(ValueError, match=">= 2 RAS"):
        lcd.phase1_step(single)


def test_phase2_temporal_term_and_motion_only_training(tiny_video):
    config = DistillConfig(lr=1e-3, phase2=Phase2Config(trainable="motion", eta_weight=0.1))
    lcd = ReferenceLCM(tiny_video, config)
    optimizer = lcd.make_optimizer(2)
    trainable = {n for n, p in lcd.student.named_parameters() if p.requires_grad}
    assert trainable and all(".motion_modules." in n for n in trainable)
    spatial_before = {n: p.detach().clone() for n, p in lcd.student.named_parameters() if n not in trainable}
    losses = lcd.train_step(clip_batch(tiny_video), optimizer, 2)
    assert losses["loss_tmp"].item() > 0 and losses["loss_eta"].item() > 0 and losses["loss_cons"].item() == 0
    total = losses["loss_cd"] + losses["loss_eta"] + losses["loss_cons"] + losses["loss_tmp"]
    torch.testing.assert_close(losses["loss"], total)
    assert all(
        torch.equal(spatial_before[n], p) for n, p in lcd.student.named_parameters() if n not in trainable
    )


def test_phase2_student_init_from_phase1_weights(tiny, tiny_video):
    phase1 = ReferenceLCM(tiny, DistillConfig())
    with torch.no_grad():
        for p in phase1.student.parameters():
            p.add_(0.01)
    lcd = ReferenceLCM(tiny_video, DistillConfig(), student_init=phase1.student.state_dict())
    name, p = next(iter(phase1.student.named_parameters()))
    torch.testing.assert_close(dict(lcd.student.named_parameters())[name], p)
    torch.testing.assert_close(dict(lcd.target.named_parameters())[name], p)
    with pytest.raises(ValueError, match="does not fit"):
        ReferenceLCM(tiny_video, DistillConfig(), student_init={"nonsense.weight": torch.zeros(1)})


def test_low_precision_runs_teacher_in_bf16(tiny):
    model = ChampModel.build("tiny")
    model.load_state_dict(tiny.state_dict())
    exact = ReferenceLCM(tiny, DistillConfig())
    low = ReferenceLCM(model, DistillConfig(low_precision=True))
    assert next(low.teacher.parameters()).dtype == torch.bfloat16
    assert next(low.target.parameters()).dtype == torch.float32  # EMA master weights stay fp32
    batch = frame_batch(tiny)
    a = exact.phase1_step(batch, torch.Generator().manual_seed(3))["loss_cd"].item()
    b = low.phase1_step(batch, torch.Generator().manual_seed(3))["loss_cd"].item()
    assert b == pytest.approx(a, rel=0.2) and a != b


def test_sampler_matches_manual_lcm_loop(tiny):
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        bank = tiny.reference_unet(torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 1, 32, generator=g))
        feats = tiny.guidance_encoders(
            {k: torch.rand(2, 3, 64, 64, generator=g) for k in tiny.config.guidance_types}
        )
    cond = Conditioning(torch.randn(2, 1, 32, generator=g), bank, feats)
    unet = tiny.denoising_unet
    for steps in (1, 2, 4):
        ours = sample_student(tiny, unet, cond, (2, 4, 8, 8), steps, torch.Generator().manual_seed(9))
        scheduler = NoiseSchedule().lcm()
        scheduler.set_timesteps(steps)
        expected_ts = {1: [999], 2: [999, 499], 4: [999, 759, 499, 259]}[steps]
        assert scheduler.timesteps.tolist() == expected_ts
        gen = torch.Generator().manual_seed(9)
        x = torch.randn(2, 4, 8, 8, generator=gen)
        for t in scheduler.timesteps:
            with torch.no_grad():
                v = unet(x, torch.full((2,), int(t)), cond.clip_embeds, cond.guidance_features, cond.bank)
            x = scheduler.step(v, t, x, generator=gen).prev_sample
        torch.testing.assert_close(ours, x, rtol=0, atol=0)


def test_shared_renoise_uses_one_noise_image_per_clip(tiny_video):
    g = torch.Generator().manual_seed(4)
    frames = 3
    with torch.no_grad():
        bank = tiny_video.reference_unet(
            torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 1, 32, generator=g)
        )
        guidance = {
            k: torch.rand(1, 3, frames, 64, 64, generator=g) for k in tiny_video.config.guidance_types
        }
        feats = tiny_video.guidance_encoders(guidance)
    cond = Conditioning(torch.randn(1, 1, 32, generator=g), bank, feats)
    unet = tiny_video.denoising_unet
    shape = (1, 4, frames, 8, 8)
    start = torch.randn(shape, generator=g)
    state = torch.get_rng_state()
    ours = sample_student(
        tiny_video, unet, cond, shape, 2, torch.Generator().manual_seed(9), latents=start, renoise="shared"
    )
    assert torch.equal(torch.get_rng_state(), state)  # no global draws
    # by hand: x0 at t=999, re-noised to t=499 with one (1,4,1,8,8) image broadcast over frames, x0 at t=499
    scheduler = NoiseSchedule().lcm()
    scheduler.set_timesteps(2)
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        v = tiny_video.predict(unet, start, torch.full((1,), 999), cond)
        x0 = scheduler.step(v, 999, start, generator=torch.Generator().manual_seed(1)).denoised
        noise = torch.randn(1, 4, 1, 8, 8, generator=gen).expand(shape)
        abar = scheduler.alphas_cumprod[499]
        x = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        v = tiny_video.predict(unet, x, torch.full((1,), 499), cond)
        expected = scheduler.step(v, 499, x).prev_sample
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    independent = sample_student(
        tiny_video, unet, cond, shape, 2, torch.Generator().manual_seed(9), latents=start
    )
    assert not torch.equal(ours, independent)
    with pytest.raises(ValueError, match="clip latents"):
        sample_student(tiny_video, unet, cond, (1, 4, 8, 8), 2, renoise="shared")
    with pytest.raises(ValueError, match="renoise must be"):
        sample_student(tiny_video, unet, cond, shape, 2, renoise="per-pixel")


def test_prepare_batch_encodes_each_distinct_image_once(tiny):
    g = torch.Generator().manual_seed(6)
    img = {name: torch.rand(3, 64, 64, generator=g) * 2 - 1 for name in ["a0", "a1", "a2", "b0", "b1", "c0"]}
    pose = {k: torch.rand(3, 64, 64, generator=g) for k in tiny.config.guidance_types}
    groups = [
        {"video": "a", "target": img["a0"], "target_keys": ["a0"], "guidance": pose,
         "refs": [img["a1"], img["a2"], img["b0"]], "ref_keys": ["a1", "a2", "b0"],
         "ref_videos": ["a", "a", "b"], "num_ras": 2},
        {"video": "b", "target": img["b1"], "target_keys": ["b1"], "guidance": pose,
         "refs": [img["b0"], img["b1"], img["a1"]], "ref_keys": ["b0", "b1", "a1"],
         "ref_videos": ["b", "b", "a"], "num_ras": 2},
    ]  # fmt: skip
    vae, clip = Recorder(tiny.vae.encoder), Recorder(tiny.image_encoder)
    batch = prepare_batch(tiny, groups)
    # distinct images: a0, a1, a2, b0, b1 (b1 is group 1's target and its own RAS ref) -> one VAE pass of 5
    assert len(vae.calls) == 1 and vae.calls[0][0][0].shape[0] == 5
    assert len(clip.calls) == 1 and clip.calls[0][1]["pixel_values"].shape[0] == 4  # refs a1, a2, b0, b1
    assert batch.ref_index.tolist() == [[0, 1, 2], [2, 3, 0]]
    assert batch.group_videos().tolist() == [[0, 0, 1], [1, 1, 0]]
    torch.testing.assert_close(batch.latents[1], batch.ref_latents[3])  # the shared b1 encode
    with torch.no_grad():
        torch.testing.assert_close(batch.ref_latents[0:1], tiny.encode_latents(img["a1"][None]))
    bad = [dict(groups[0], ref_videos=["a", "b", "b"])]
    with pytest.raises(ValueError, match="group 0: reference 1"):
        prepare_batch(tiny, bad)


def test_phase1_trains_every_weight_that_reaches_the_loss_and_no_motion_module(tiny_video):
    """Frames never run the motion modules: phase 1 leaves them out (a DDP student would refuse them), and
    every weight it does train gets a gradient; phase 2 trains them again."""
    lcd = ReferenceLCM(tiny_video, DistillConfig(lr=1e-3))
    names = {n for n, p in lcd.student.named_parameters() if p in set(lcd.trainable_parameters(1))}
    motion = {n for n, _ in lcd.student.named_parameters() if ".motion_modules." in n}
    assert motion and names and not names & motion
    lcd.student.zero_grad(set_to_none=True)
    lcd.phase1_step(frame_batch(tiny_video))["loss"].backward()
    without_grad = [n for n, p in lcd.student.named_parameters() if n in names and p.grad is None]
    assert not without_grad, without_grad[:5]
    assert motion <= {n for n, p in lcd.student.named_parameters() if p in set(lcd.trainable_parameters(2))}
    motion_only = ReferenceLCM(tiny_video, DistillConfig(phase1=Phase1Config(trainable="motion")))
    with pytest.raises(ValueError, match="no trainable"):
        motion_only.trainable_parameters(1)
