import torch

from cosec.diffusion.schedule import NoiseSchedule
from cosec.models import ChampModel
from cosec.teacher import TeacherStage1, TeacherStage2, VAETrainer, calibrate_scaling_factor, denoising_loss


def _batch(b=2, f=None, res=64):
    g = torch.Generator().manual_seed(1)
    shape = (b, 3, res, res) if f is None else (b, 3, f, res, res)
    guid = {k: torch.rand(shape, generator=g) for k in ("depth", "normal", "semantic_map", "dwpose")}
    return {
        "pixel_values": torch.rand(shape, generator=g) * 2 - 1,
        "ref_pixels": torch.rand((b, 3, res, res), generator=g) * 2 - 1,
        "guidance": guid,
    }


def test_denoising_loss_is_mse_to_the_v_target():
    model = ChampModel.build("tiny")
    sched = NoiseSchedule()
    latents = torch.randn(2, 4, 8, 8)
    cond = model.condition(torch.rand(2, 3, 64, 64) * 2 - 1, _batch()["guidance"])
    loss = denoising_loss(model, latents, cond, sched, torch.Generator().manual_seed(3))
    # redraw the same t and noise, compute v = alpha*eps - sigma*x0 independently
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, 1000, (2,), generator=g)
    eps = torch.randn(latents.shape, generator=g)
    abar = sched.alphas_cumprod()[t].view(-1, 1, 1, 1)
    noisy = abar.sqrt() * latents + (1 - abar).sqrt() * eps
    v = abar.sqrt() * eps - (1 - abar).sqrt() * latents
    pred = model.predict(model.denoising_unet, noisy, t, cond)
    assert torch.allclose(loss, (pred - v).pow(2).mean(), atol=1e-6)


def test_stage1_learns_a_fixed_batch_and_drops_the_reference_as_champ():
    torch.manual_seed(0)
    model = ChampModel.build("tiny").train()
    stage = TeacherStage1(model, NoiseSchedule(), uncond_prob=0.0, seed=0)
    opt = torch.optim.AdamW(stage.trainable(), lr=1e-3)
    batch = _batch()
    first = []
    for _ in range(25):
        stage.generator.manual_seed(7)  # same t and noise every step: a pure fitting problem
        loss, parts = stage(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first.append(loss.item())
    assert first[-1] < 0.7 * first[0]
    calls = []
    handle = model.reference_unet.register_forward_hook(lambda *a: calls.append(1))
    always_drop = TeacherStage1(model, NoiseSchedule(), uncond_prob=1.0, seed=0)
    always_drop(batch)
    handle.remove()
    assert calls == []  # unconditional batches never run the reference UNet


def test_stage2_trains_motion_modules_only():
    model = ChampModel.build("tiny", motion_modules=True).train()
    stage = TeacherStage2(model, NoiseSchedule(), uncond_prob=0.0, seed=0)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in stage.trainable():
        p.requires_grad_(True)
    loss, _ = stage(_batch(b=1, f=3))
    loss.backward()
    motion = {id(p) for p in model.denoising_unet.motion_parameters()}
    assert motion and all(p.grad is not None for p in stage.trainable())
    assert all(p.grad is None for p in model.parameters() if id(p) not in motion)


def test_vae_trainer_reduces_reconstruction_and_calibration_gives_unit_std():
    torch.manual_seed(0)
    model = ChampModel.build("tiny")
    trainer = VAETrainer(model.vae)
    opt = torch.optim.Adam(trainer.trainable(), lr=2e-3)
    # smooth images (upsampled 8x8 noise): compressible, unlike white noise
    x = torch.nn.functional.interpolate(torch.rand(4, 3, 8, 8) * 2 - 1, size=64, mode="bilinear")
    losses = []
    for _ in range(30):
        loss, parts = trainer({"pixel_values": x})
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(parts["loss_l1"])
    assert losses[-1] < 0.8 * losses[0]
    scale = calibrate_scaling_factor(model.vae, [x[:2], x[2:]])
    with torch.no_grad():
        z = model.vae.encode(x).latent_dist.mean * scale
    assert abs(z.std().item() - 1.0) < 0.05


def test_vae_trainer_weights_its_terms_and_can_decode_the_posterior_mean():
    torch.manual_seed(0)
    model = ChampModel.build("tiny")
    x = {
        "pixel_values": torch.nn.functional.interpolate(
            torch.rand(2, 3, 8, 8) * 2 - 1, size=64, mode="bilinear"
        )
    }
    mean_only = VAETrainer(
        model.vae, kl_weight=0.0, grad_weight=0.5, l1_weight=0.5, mse_weight=4.0, sample_posterior=False
    )
    with torch.no_grad():
        loss, parts = mean_only(x)
        again, _ = mean_only(x)
    assert torch.equal(loss, again)  # no posterior sample: deterministic
    expected = 0.5 * parts["loss_l1"] + 4.0 * parts["loss_mse"] + 0.5 * parts["loss_grad"]
    assert abs(float(loss) - expected) < 1e-5
    sampled = VAETrainer(model.vae, kl_weight=0.0, seed=1)
    with torch.no_grad():
        assert not torch.equal(sampled(x)[0], sampled(x)[0])


def test_vae_augmentation_permutes_the_given_share_of_images_and_flips_only():
    x = torch.rand(400, 3, 4, 4)
    perms = [list(p) for p in __import__("itertools").permutations(range(3))]
    for prob, flip in ((0.0, True), (0.5, True), (1.0, False)):
        y = VAETrainer(ChampModel.build("tiny").vae, flip=flip, permute_prob=prob, seed=3)._augment(x)
        permuted = flipped = 0
        for a, b in zip(x, y, strict=True):
            match = [
                (p, f) for p in perms for f in (False, True) if torch.equal(b, (a.flip(-1) if f else a)[p])
            ]
            assert match  # every output is a channel permutation of its input, maybe mirrored
            p, f = match[0]
            permuted += p != [0, 1, 2]
            flipped += f
        # a drawn permutation is the identity 1 time in 6
        assert abs(permuted / len(x) - prob * 5 / 6) < 0.08, (prob, permuted)
        assert (abs(flipped / len(x) - 0.5) < 0.08) if flip else flipped == 0
    off = VAETrainer(ChampModel.build("tiny").vae, seed=3)._augment(x)
    assert torch.equal(off, x)  # the defaults leave images alone


def test_teacher_part_folders_continue_a_longer_part_and_restart_what_follows(tmp_path):
    from dataclasses import replace

    from cosec.teacher.recipe import TeacherConfig, part_dir

    base = TeacherConfig()
    longer = replace(base, stage1=replace(base.stage1, steps=base.stage1.steps * 2))
    faster = replace(base, stage1=replace(base.stage1, lr=base.stage1.lr * 2))
    dirs = {
        name: {
            cfg: part_dir(tmp_path, c, name)
            for cfg, c in (("base", base), ("longer", longer), ("faster", faster))
        }
        for name in ("vae", "stage1", "stage2")
    }
    assert len(set(dirs["vae"].values())) == 1  # nothing before the VAE changed
    assert dirs["stage1"]["longer"] == dirs["stage1"]["base"] != dirs["stage1"]["faster"]
    assert len(set(dirs["stage2"].values())) == 3  # stage 2 follows any change of stage 1
    assert dirs["stage1"]["base"].parent == tmp_path and dirs["stage1"]["base"].name.startswith("stage1-")


def test_stage1_snr_gamma_from_params_reaches_the_loss():
    from cosec.config import from_dict
    from cosec.teacher.config import TeacherConfig

    cfg = from_dict(TeacherConfig, {"stage1": {"snr_gamma": 0.5}})
    assert cfg.stage1.snr_gamma == 0.5
    model = ChampModel.build("tiny")
    batch = _batch()
    plain = TeacherStage1(model, NoiseSchedule(), uncond_prob=0.0, seed=0)
    weighted = TeacherStage1(model, NoiseSchedule(), uncond_prob=0.0, seed=0, snr_gamma=cfg.stage1.snr_gamma)
    with torch.no_grad():
        a, _ = plain(batch)
        b, _ = weighted(batch)
    assert not torch.allclose(a, b)  # same t and noise (same seed), Min-SNR weights change the loss
