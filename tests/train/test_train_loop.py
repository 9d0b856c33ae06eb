from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import train_toy
from torch import nn

from cosec.train import NonFiniteLossError, TrainConfig, Trainer, train
from cosec.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint

REPO = Path(__file__).resolve().parents[2]


def test_loss_decreases_and_checkpoints_are_pruned(tmp_path):
    model, _, result = train_toy.run(tmp_path, max_steps=40)
    losses = [logs["loss"] for _, logs in result.history]
    assert len(losses) == 40 and result.step == 40 and result.resumed_from == 0
    assert sum(losses[-5:]) / 5 < 0.3 * sum(losses[:5]) / 5
    assert {"loss", "loss_mse", "grad_norm", "lr"} <= set(result.last_logs)
    # keep_last=2: only the newest two remain, and no temp files are left behind
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [35, 40]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "ckpt-00000035.pt",
        "ckpt-00000040.pt",
    ]


def test_finished_run_resumes_as_noop(tmp_path):
    train_toy.run(tmp_path, max_steps=10)
    model, _, result = train_toy.run(tmp_path, max_steps=10)
    assert result.resumed_from == 10 and result.history == []


def test_a_longer_run_continues_and_equals_one_trained_that_long(tmp_path):
    train_toy.run(tmp_path / "extended", max_steps=10)
    model_e, ema_e, result = train_toy.run(tmp_path / "extended", max_steps=20)
    assert result.resumed_from == 10 and result.step == 20
    model_c, ema_c, _ = train_toy.run(tmp_path / "clean", max_steps=20)
    for (k, a), b in zip(model_e.state_dict().items(), model_c.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # a shorter run never loads a checkpoint from beyond its end (checkpoints kept: 15 and 20)
    _, _, short = train_toy.run(tmp_path / "extended", max_steps=17)
    assert short.resumed_from == 15 and short.step == 17
    _, _, shorter = train_toy.run(tmp_path / "clean", max_steps=3)
    assert shorter.resumed_from == 0 and shorter.step == 3


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)])}
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "train_toy.py"), str(killed), "20", "12", str(marker)],
        env=env,
    )
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None, "training subprocess exited before reaching step 12"
            assert time.monotonic() < deadline, "training subprocess did not reach step 12"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert latest_checkpoint(killed / "checkpoints").name == "ckpt-00000010.pt"

    model_r, ema_r, result_r = train_toy.run(killed, max_steps=20)
    assert result_r.resumed_from == 10 and result_r.step == 20
    model_c, ema_c, _ = train_toy.run(clean, max_steps=20)
    for (k, a), b in zip(model_r.state_dict().items(), model_c.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    for k, v in ema_r.shadow.items():
        assert torch.equal(v, ema_c.shadow[k]), k


def test_nan_loss_raises_and_keeps_last_good_checkpoint(tmp_path):
    model = train_toy.make_model()
    base = train_toy.step_fn_for(model)
    calls = {"n": 0}

    def step_fn(batch):
        calls["n"] += 1
        loss, parts = base(batch)
        return (loss * float("nan"), parts) if calls["n"] == 8 else (loss, parts)

    config = TrainConfig(max_steps=20, out_dir=str(tmp_path), lr=0.01, checkpoint_every=5, progress=False)
    with pytest.raises(NonFiniteLossError, match="step 8"):
        train(step_fn, train_toy.batches, model.parameters(), config, state={"model": model})
    path = latest_checkpoint(tmp_path / "checkpoints")
    assert path.name == "ckpt-00000005.pt"
    blob = load_checkpoint(path)
    assert blob["step"] == 5
    assert all(torch.isfinite(v).all() for v in blob["state"]["model"].values())
    # and training resumes from it once the cause is gone
    fresh = train_toy.make_model()
    result = train(
        train_toy.step_fn_for(fresh),
        train_toy.batches,
        fresh.parameters(),
        TrainConfig(max_steps=7, out_dir=str(tmp_path), lr=0.01, checkpoint_every=5, progress=False),
        state={"model": fresh},
    )
    assert result.resumed_from == 5 and result.step == 7


def test_gradient_accumulation_matches_large_batch(tmp_path):
    def run(micro: int, accum: int) -> nn.Module:
        torch.manual_seed(0)
        model = nn.Linear(4, 1).double()

        def step_fn(batch):
            x, y = batch
            return nn.functional.mse_loss(model(x.double()), y.double())

        def data(start):
            # the same 16 samples per optimiser step, split into `accum` micro-batches
            for step in range(start, 10**6):
                g = torch.Generator().manual_seed(step)
                x = torch.randn(16, 4, generator=g)
                for chunk in range(accum):
                    xs = x[chunk * micro : (chunk + 1) * micro]
                    yield xs, xs @ train_toy.TRUE_W

        cfg = TrainConfig(
            max_steps=6,
            out_dir=str(tmp_path / f"m{micro}a{accum}"),
            lr=0.05,
            grad_accum=accum,
            clip_grad_norm=None,
            progress=False,
        )
        train(step_fn, data, model.parameters(), cfg, state={"model": model})
        return model

    big, small = run(16, 1), run(4, 4)
    assert torch.allclose(big.weight, small.weight, atol=1e-10) and torch.allclose(
        big.bias, small.bias, atol=1e-10
    )
    assert not torch.allclose(big.weight, run(4, 1).weight, atol=1e-4)  # a smaller batch really differs


def test_iterable_data_is_skipped_on_resume(tmp_path):
    def data():
        return (b for i, b in zip(range(30), train_toy.batches(0), strict=False))

    def run(out, steps):
        model = train_toy.make_model()
        train(
            train_toy.step_fn_for(model),
            data(),
            model.parameters(),
            TrainConfig(
                max_steps=steps, out_dir=str(out), lr=0.01, checkpoint_every=3, progress=False, seed=1
            ),
            state={"model": model},
        )
        return model

    run(tmp_path / "r", 6)
    resumed, clean = run(tmp_path / "r", 9), run(tmp_path / "c", 9)
    assert all(torch.equal(a, b) for a, b in zip(resumed.parameters(), clean.parameters(), strict=True))


def test_config_and_state_errors(tmp_path):
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainConfig(max_steps=1, out_dir=str(tmp_path), mixed_precision="fp16")
    with pytest.raises(ValueError, match=">= 1"):
        TrainConfig(max_steps=0, out_dir=str(tmp_path))
    model = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="no parameters"):
        Trainer(TrainConfig(max_steps=1, out_dir=str(tmp_path)), lambda b: b, [])
    data = functools.partial(train_toy.batches, micro=2)
    with pytest.raises(RuntimeError, match="ran out"):
        train(
            lambda b: model(b[0][:, :2]).mean(),
            lambda s: iter([next(data(s))]),
            model.parameters(),
            TrainConfig(max_steps=3, out_dir=str(tmp_path / "x"), progress=False),
        )
    # a checkpoint without the requested state names the file and the missing key
    train(
        lambda b: model(b[0][:, :2]).mean(),
        data,
        model.parameters(),
        TrainConfig(max_steps=1, out_dir=str(tmp_path / "y"), progress=False),
        state={"model": model},
    )
    with pytest.raises(ValueError, match="no state for \\['other'\\]"):
        train(
            lambda b: model(b[0][:, :2]).mean(),
            data,
            model.parameters(),
            TrainConfig(max_steps=2, out_dir=str(tmp_path / "y"), progress=False),
            state={"model": model, "other": nn.Linear(1, 1)},
        )


def test_corrupt_checkpoint_is_named(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    bad = tmp_path / "checkpoints" / "ckpt-00000003.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="ckpt-00000003.pt"):
        load_checkpoint(bad)


def test_checkpoint_of_another_model_is_refused_in_one_line(tmp_path):
    """A run folder holding another model's checkpoint (same state name, other keys) is a user error naming
    the file, not torch's list of every key."""
    from cosec.train.checkpoint import TrainCheckpointError

    def fit(model, steps):
        return train(
            lambda batch: model(batch).pow(2).mean(),
            lambda start: iter(lambda: torch.ones(2, 3), None),
            model.parameters(),
            TrainConfig(max_steps=steps, out_dir=str(tmp_path), progress=False),
            state={"model": model},
        )

    fit(nn.Linear(3, 1), 2)
    with pytest.raises(TrainCheckpointError) as err:
        fit(nn.Sequential(nn.Linear(3, 2)), 4)
    message = str(err.value)
    assert "ckpt-00000002.pt: its state 'model' does not fit" in message
    assert len(message) < 400 and "\n" not in message


def test_checkpoint_of_another_parameter_set_is_refused_in_one_line(tmp_path):
    """Same model, but the training now optimises fewer of its weights (e.g. a trainable set changed): the
    optimiser state does not fit; one line naming the file and the folder to delete, not torch's ValueError."""
    from cosec.train.checkpoint import TrainCheckpointError

    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))

    def fit(params, steps):
        return train(
            lambda batch: model(batch).pow(2).mean(),
            lambda start: iter(lambda: torch.ones(2, 3), None),
            params,
            TrainConfig(max_steps=steps, out_dir=str(tmp_path), progress=False),
            state={"model": model},
        )

    fit(list(model.parameters()), 2)
    with pytest.raises(TrainCheckpointError) as err:
        fit(list(model[1].parameters()), 4)
    message = str(err.value)
    assert "ckpt-00000002.pt: its optimiser state does not fit" in message
    assert f"delete {tmp_path}" in message
    assert len(message) < 500 and "\n" not in message
