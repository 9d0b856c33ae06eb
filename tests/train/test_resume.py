"""Exact resume of every training path: a run killed with SIGKILL (or stopped at a checkpoint) and rerun
ends bit-identical to an uninterrupted run (same safetensors bytes); checkpoints never run code."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import resume_worker as worker
import torch
from PIL import Image

from cosec.data.config import IndexConfig
from cosec.data.index import build_index
from cosec.data.io import MAP_FOLDERS
from cosec.train.checkpoint import (
    TrainCheckpointError,
    atomic_save,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    rng_state,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)]), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A tiny Champ-layout root (3 videos of 2 sources x 6 frames, 32 px noise images), its index and a
    saved tiny teacher with motion modules."""
    from cosec.models import ChampModel, ModelSize

    base = tmp_path_factory.mktemp("resume")
    rng = np.random.default_rng(0)
    root = base / worker.ROOT_NAME
    for v, source in (("vid_a", "src_a"), ("vid_b", "src_b"), ("vid_c", "src_a")):
        folder = root / "train" / v
        for m in MAP_FOLDERS:
            (folder / m).mkdir(parents=True)
            for k in range(6):
                shape = (worker.RESOLUTION, worker.RESOLUTION) + (() if m == "mask" else (3,))
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / m / f"{k:04d}.png")
        (folder / "meta.json").write_text(json.dumps({"source_video": source}))
    build_index(IndexConfig(root=str(root), out=str(base / worker.INDEX_NAME)), log=lambda *_: None)
    torch.manual_seed(0)
    teacher = ChampModel.build(ModelSize(resolution=worker.RESOLUTION).build_config(), motion_modules=True)
    with torch.no_grad():  # zero-initialised motion outputs would make the temporal path a no-op
        for p in teacher.denoising_unet.motion_parameters():
            p.add_(0.02 * torch.randn_like(p))
    teacher.save_pretrained(base / worker.TEACHER_NAME)
    return base


def _run(path: str, data: Path, work: Path, out: Path, hang: tuple[str, int] | None = None, timeout=600,
         env: dict | None = None):  # fmt: skip
    """The worker in a subprocess; with `hang`, SIGKILL it once it is stuck at that (part, step)."""
    args = [sys.executable, str(HERE / "resume_worker.py"), path, str(data), str(work), str(out)]
    if hang is None:
        subprocess.run(args, env={**ENV, **(env or {})}, check=True, timeout=timeout)
        return
    marker = work.parent / f"{work.name}.marker"
    proc = subprocess.Popen([*args, hang[0], str(hang[1]), str(marker)], env=ENV)
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert proc.poll() is None, f"worker exited (rc {proc.returncode}) before reaching {hang}"
            assert time.monotonic() < deadline, f"worker did not reach {hang}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.safetensors"))}


def _part_checkpoints(work: Path, part: str) -> list[int]:
    (folder,) = [d for d in work.iterdir() if d.name.startswith(f"{part}-")]
    return [s for s, _ in list_checkpoints(folder / "checkpoints")]


@pytest.fixture(scope="module")
def teacher_clean(data, tmp_path_factory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("teacher_clean")
    _run("teacher", data, base / "work", base / "out")
    return _digest(base / "out")


@pytest.mark.slow
@pytest.mark.parametrize("part", ["vae", "stage1", "stage2"])
def test_teacher_sigkill_then_resume_is_bit_identical(part, data, teacher_clean, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    _run("teacher", data, work, out, hang=(part, 3))  # killed computing step 4; last checkpoint: step 2
    assert _part_checkpoints(work, part) == [2]
    assert not out.exists()
    _run("teacher", data, work, out)
    assert _digest(out) == teacher_clean and teacher_clean


@pytest.fixture(scope="module")
def phase_clean(data, tmp_path_factory):
    cache: dict[str, dict[str, str]] = {}

    def clean(path: str) -> dict[str, str]:
        if path not in cache:
            base = tmp_path_factory.mktemp(f"{path}_clean")
            _run(path, data, base / "work", base / "out")
            cache[path] = _digest(base / "out")
        return cache[path]

    return clean


@pytest.mark.slow
@pytest.mark.parametrize("path", ["phase1", "phase2", "phase1-lora"])
def test_phase_sigkill_then_resume_is_bit_identical(path, data, phase_clean, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    _run(path, data, work, out, hang=(path[:6], 3))
    assert [s for s, _ in list_checkpoints(work / "checkpoints")] == [2]
    _run(path, data, work, out)
    assert _digest(out) == phase_clean(path) and _digest(out)


@pytest.mark.slow
def test_resuming_a_finished_run_from_an_earlier_checkpoint_is_bit_identical(data, phase_clean, tmp_path):
    """The issue's second case: no kill, just a rerun from an intermediate checkpoint (ckpt-2 of 5)."""
    work, out = tmp_path / "work", tmp_path / "out"
    keep = {"RESUME_KEEP_LAST": "10"}
    _run("phase1", data, work, out, env=keep)
    assert _digest(out) == phase_clean("phase1")
    assert [s for s, _ in list_checkpoints(work / "checkpoints")] == [2, 4, 5]
    for step, p in list_checkpoints(work / "checkpoints"):
        if step > 2:
            p.unlink()
    (out / "student.safetensors").unlink()
    _run("phase1", data, work, out, env=keep)
    assert latest_checkpoint(work / "checkpoints").name == "ckpt-00000005.pt"
    assert _digest(out) == phase_clean("phase1")


class _Exploit:
    """Unpickling this calls os.system: a planted checkpoint that would run code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_planted_pickle_checkpoint_is_refused_without_running_its_code(tmp_path):
    from cosec.train import TrainConfig, train

    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    planted = folder / "ckpt-00000004.pt"
    torch.save({"step": 4, "state": {}, "payload": _Exploit(marker)}, planted)
    with pytest.raises(TrainCheckpointError) as err:
        load_checkpoint(planted)
    assert str(planted) in str(err.value) and "refused" in str(err.value) and "system" in str(err.value)
    assert not marker.exists()
    # and the loop's resume refuses it the same way
    model = torch.nn.Linear(2, 1)
    config = TrainConfig(max_steps=6, out_dir=str(tmp_path / "run"), checkpoint_every=2, progress=False)
    with pytest.raises(TrainCheckpointError, match="ckpt-00000004.pt: refused"):
        train(lambda b: model(b).pow(2).mean(), lambda s: iter(lambda: torch.ones(1, 2), None), model.parameters(),
              config, state={"model": model})  # fmt: skip
    assert not marker.exists()
    # a planted per-rank RNG file is read the same way
    from cosec.train.checkpoint import safe_load

    rng_file = folder / "ckpt-00000004.rank1.rng.pt"
    torch.save({"torch": _Exploit(marker)}, rng_file)
    with pytest.raises(TrainCheckpointError, match="rank1.rng.pt: refused"):
        safe_load(rng_file, "RNG state")
    assert not marker.exists()


def test_checkpoint_rng_state_is_plain_tensors(tmp_path):
    gen = torch.Generator().manual_seed(1)
    path = atomic_save({"rng": rng_state({"step": gen})}, tmp_path / "r.pt")
    torch.load(path, weights_only=True)  # no numpy or other globals needed
    assert not torch.serialization.get_unsafe_globals_in_checkpoint(path)


def test_old_checkpoint_with_numpy_rng_still_resumes(tmp_path):
    """Checkpoints of the previous format (numpy's RNG state as an ndarray) load without unpickling code."""
    import random

    from cosec.train import TrainConfig, train

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.AdamW(model.parameters())
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    old_rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    blob = {"step": 3, "state": {"model": model.state_dict()}, "optimizer": opt.state_dict(), "rng": old_rng,
            "config": {}, "world_size": 1}  # fmt: skip
    torch.save(blob, folder / "ckpt-00000003.pt")
    assert load_checkpoint(folder / "ckpt-00000003.pt")["step"] == 3
    config = TrainConfig(max_steps=3, out_dir=str(tmp_path), progress=False)
    result = train(lambda b: model(b).pow(2).mean(), lambda s: iter(()), model.parameters(), config,
                   state={"model": model})  # fmt: skip
    assert result.resumed_from == 3
