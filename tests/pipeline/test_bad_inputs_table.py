"""The bad-input table (issue 15): every fault a careless or unlucky user makes, at the entry point the user
runs (a stage script, a `cosec` command), on one tiny project. Each case asserts the exit code, that the
message names the file or key, that no traceback is printed, and that no earlier output changed.

The library-level details of the data faults (every problem listed, skip mode, rejects files) are in
tests/data/test_bad_inputs.py and tests/data/test_skip.py; the model-load ones in
tests/models/test_model_safety.py; the params parser's in tests/pipeline/test_stage_runs.py. Here each fault
is seen as the user sees it. docs/errors.md lists the same cases with the messages.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import hashlib
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from cosec.cli import main as cosec_main
from cosec.pipeline.entry import main as stage_main
from cosec.pipeline.stages import STAGES

REPO = Path(__file__).resolve().parents[2]
FRAMES, SIZE = 10, 64  # the tiny model's resolution
MARKER = "pickle-ran.txt"  # what the planted checkpoint would write if it ran
NAN_KEY = "denoising_unet.unet.conv_in.weight"  # the tensor a NaN is planted in

# Small enough for one CPU step; the committed params.yaml otherwise (its paths are relative).
TINY = {
    "common": {"threads": 1, "run": {"checkpoint_every": 1, "log_every": 1, "progress": False}},
    "frames": {"resolution": SIZE},
    "phase1": {"loss": {"steps": 1}, "data": {"batch_size": 1, "k_ras": 2, "m_ers": 1, "window": 4}},
}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) and key in base else value
    return out


def _video(folder: Path, seed: int) -> None:
    """A Champ-layout video of random maps (the index and training stages only need readable PNGs)."""
    rng = np.random.default_rng(seed)
    for m in ("images", "depth", "normal", "semantic_map", "dwpose", "mask"):
        (folder / m).mkdir(parents=True)
        for k in range(FRAMES):
            shape = (SIZE, SIZE) if m == "mask" else (SIZE, SIZE, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / m / f"{k:04d}.png")


def _run(argv: list[str], entry: str | None = None) -> tuple[int, str, str]:
    """One entry point in process: a stage script (`entry`=stage name) or the `cosec` command."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = stage_main(STAGES[entry], argv) if entry else cosec_main(argv)
        except SystemExit as exit_:  # argparse
            rc = exit_.code
    return rc, out.getvalue(), err.getvalue()


def _snapshot(root: Path) -> dict[str, str]:
    """Every file of the project but the MLflow store (each run records itself there), by content hash."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("mlflow.db")
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project with every output a user has after a good run: prepared data, index, a teacher, a
    phase-1 student and its run folder with a checkpoint. Built once; each case works on a copy of params."""
    from cosec.models import ChampModel

    root = tmp_path_factory.mktemp("bad-inputs")
    doc = _merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for i in range(2):
        _video(root / "data" / "prepared" / "train" / f"video_{i}", seed=i)
    old = os.getcwd()
    os.chdir(root)
    try:
        torch.manual_seed(0)
        ChampModel.build("tiny", motion_modules=True).save_pretrained(
            root / "models" / "teacher", role="teacher"
        )
        for name in ("index", "phase1"):
            rc, out, err = _run(["--params", "params.yaml"], name)
            assert rc == 0, f"{name} failed in the fixture:\n{out[-2000:]}\n{err[-2000:]}"
    finally:
        os.chdir(old)
    assert (root / "models" / "phase1" / "model.safetensors").is_file()
    pristine = tmp_path_factory.mktemp("pristine") / "project"
    shutil.copytree(root, pristine)
    return root, pristine


def _restore(root: Path, pristine: Path) -> None:
    """Undo a case: files it changed or removed come back from the pristine copy, files it added go."""
    want, have = _snapshot(pristine), _snapshot(root)
    for name in have.keys() - want.keys():
        (root / name).unlink()
    for name, digest in want.items():
        if have.get(name) != digest:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(pristine / name, root / name)
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not (pristine / d.relative_to(root)).exists():
            shutil.rmtree(d)


@dataclass
class Case:
    argv: list[str]  # arguments of the entry point ({params} is the case's params file)
    expect: list[str]  # every one must be in the first stderr line ({root} is the project folder)
    stage: str | None = None  # a stage script; None: the `cosec` command
    code: int = 1
    params: Callable[[dict], None] | None = None  # edits a copy of the project's params
    setup: Callable[[Path], None] | None = None  # plants the fault in the project (undone afterwards)
    lines: int = 1  # stderr lines (a data stage lists every problem, one per line)
    stdout: list[str] = field(default_factory=list)  # also in stdout (check-weights reports per file)
    inject: str | None = None  # "enospc": writes fail as on a full disk
    prefix: str | None = None  # how the line starts (default: `<stage>: error: `, a command's `error: `)


def _rename(doc, old, new):
    doc[new] = doc.pop(old)


def _nan_teacher(root: Path) -> None:
    from safetensors.torch import load_file, save_file

    dst = root / "models" / "teacher_nan"
    shutil.copytree(root / "models" / "teacher", dst)
    state = load_file(str(dst / "model.safetensors"))
    key = NAN_KEY
    state[key].view(-1)[0] = float("nan")
    save_file(state, str(dst / "model.safetensors"), metadata={"format": "cosec-champ/1"})


def _champ_folder(root: Path, drop: str | None = None, text: str | None = None) -> Path:
    from cosec.models import ChampModel
    from cosec.models.champ_release import export_champ

    folder = export_champ(ChampModel.from_pretrained(root / "models" / "teacher"), root / "champ")
    if drop:
        (folder / drop).unlink()
    if text:
        (folder / text).write_text("this is a text file, not weights\n")
    return folder


class _Planted:
    """A pickle whose loading would run code (writes MARKER): the attack torch.load(weights_only=False) allows."""

    def __reduce__(self):
        return (Path.write_text, (Path(MARKER), "ran"))


def _plant_pickle(root: Path) -> None:
    found = sorted((root / "runs").rglob("ckpt-*.pt"))
    assert len(found) == 1, f"expected the phase-1 run's one checkpoint, found {found}"
    (ckpt,) = found
    torch.save({"step": 1, "state": _Planted()}, ckpt)


def _garbage_index(root: Path) -> None:
    (root / "data" / "index.parquet").write_bytes(b"PAR1 this is not a parquet file")


def _corrupt_video(root: Path) -> None:
    (root / "data" / "raw" / "train" / "clip").mkdir(parents=True)
    (root / "data" / "raw" / "train" / "clip" / "video.mp4").write_bytes(
        b"\x00\x00\x00\x18ftypmp42 truncated"
    )


def _drop_frame(root: Path) -> None:
    (root / "data" / "prepared" / "train" / "video_1" / "depth" / "0004.png").unlink()


def _drop_folder(root: Path) -> None:
    shutil.rmtree(root / "data" / "prepared" / "train" / "video_0" / "dwpose")


def _text_backbone(root: Path) -> None:
    (root / "weights").mkdir()
    (root / "weights" / "i3d_pretrained_400.pt").write_text("not weights\n")


def _release(root: Path, corrupt: bool = False) -> None:
    """A released teacher (the tiny 8x model and its manifest), its weights changed by one byte if `corrupt`."""
    from cosec.models import ChampModel
    from cosec.teacher.release import write_manifest

    ChampModel.build("tiny", motion_modules=True).save_pretrained(root / "release", role="teacher")
    write_manifest(root / "release", settings={}, command="test", metrics={})
    if corrupt:
        weights = root / "release" / "model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-3] ^= 0xFF
        weights.write_bytes(bytes(data))


def _bad_reference(root: Path) -> None:
    (root / "ref.png").write_text("not an image\n")


P = "{params}"
CASES: dict[str, Case] = {
    # configuration: strict params, before any work (every stage parses the whole file)
    "misspelled section": Case(
        ["--params", P], ["{params}", "phase_1"], "phase1", params=lambda d: _rename(d, "phase1", "phase_1")
    ),
    "unknown key": Case(
        ["--params", P],
        ["{params}", "teacher.vae: unknown key(s) ['stepz']"],
        "teacher",
        params=lambda d: d["teacher"]["vae"].update(stepz=3),
    ),
    "wrong type": Case(
        ["--params", P],
        ["{params}", "phase1.loss", "steps"],
        "phase1",
        params=lambda d: d["phase1"]["loss"].update(steps="many"),
    ),
    "NaN learning rate": Case(
        ["--params", P],
        ["{params}", "distill.lr: expected a finite number"],
        "phase1",
        params=lambda d: d["distill"].update(lr=float("nan")),
    ),
    "negative learning rate": Case(
        ["--params", P],
        ["{params}", "teacher.stage1.lr: must be > 0"],
        "teacher",
        params=lambda d: d["teacher"]["stage1"].update(lr=-1.0),
    ),
    "negative size": Case(
        ["--params", P],
        ["{params}", "frames.max_frames: must be >= 0"],
        "frames",
        params=lambda d: d["frames"].update(max_frames=-3),
    ),
    "zero stride": Case(
        ["--params", P],
        ["{params}", "frames.stride: must be >= 1"],
        "frames",
        params=lambda d: d["frames"].update(stride=0),
    ),
    "steps < 1": Case(
        ["--params", P],
        ["{params}", "phase1.loss", "steps"],
        "phase1",
        params=lambda d: d["phase1"]["loss"].update(steps=0),
    ),
    "zero batch size": Case(
        ["--params", P],
        ["{params}", "phase1.data.batch_size: must be >= 1"],
        "phase1",
        params=lambda d: d["phase1"]["data"].update(batch_size=0),
    ),
    "missing section": Case(
        ["--params", P], ["{params}", "common"], "phase1", params=lambda d: d.pop("common")
    ),
    "missing params file": Case(["--params", "nope.yaml"], ["nope.yaml: params file not found"], "index"),
    # data
    "garbage index.parquet": Case(
        ["--params", P],
        ["data/index.parquet: not a readable index", "rerun the index stage"],
        "phase1",
        setup=_garbage_index,
    ),
    "corrupt video": Case(
        ["--params", P],
        ["data/raw/train/clip/video.mp4: unreadable or truncated video"],
        "frames",
        setup=_corrupt_video,
        lines=2,
    ),
    "missing frames": Case(
        ["--params", P],
        ["data/prepared/train/video_1: folders have different frame counts", "'depth': 9"],
        "index",
        setup=_drop_frame,
        lines=2,
    ),
    "mismatched folders": Case(
        ["--params", P],
        ["data/prepared/train/video_0: missing guidance folder(s) ['dwpose']"],
        "index",
        setup=_drop_folder,
        lines=2,
    ),
    "disk full": Case(
        ["--params", P],
        ["data/index.rejects.json: No space left on device", "free disk space"],
        "index",
        inject="enospc",
    ),
    # models and checkpoints
    "NaN teacher weights": Case(
        ["--params", P],
        ["models/teacher_nan/model.safetensors", "NaN or inf", NAN_KEY],
        "phase1",
        params=lambda d: d["phase1"].update(teacher="models/teacher_nan"),
        setup=_nan_teacher,
    ),
    "planted pickle ckpt-*.pt": Case(
        ["--params", P],
        ["checkpoints/ckpt-00000001.pt: refused", "runs no code"],
        "phase1",
        setup=_plant_pickle,
    ),
    "Champ folder without motion_module.pth (teacher stage)": Case(
        ["--params", P],
        ["champ/motion_module.pth"],
        "teacher",
        params=lambda d: (
            d["teacher"].update(champ_dir="champ", out="models/teacher_champ"),
            d["common"]["model"].update(vae_channels=None),  # the tiny Champ folder's 8x VAE
        ),
        setup=lambda r: _champ_folder(r, drop="motion_module.pth"),
    ),
    "released teacher changed on disk": Case(
        ["--params", P],
        ["release/model.safetensors: sha256", "does not match teacher.json", "git checkout"],
        "teacher",
        params=lambda d: d["teacher"].update(import_dir="release", out="models/teacher_release"),
        setup=lambda r: _release(r, corrupt=True),
    ),
    "released teacher of other shapes than common.model": Case(
        ["--params", P],
        ["release: the released teacher's model does not match common.model", "vae.block_out_channels"],
        "teacher",
        params=lambda d: d["teacher"].update(import_dir="release", out="models/teacher_release"),
        setup=_release,
    ),
    "text file renamed .pth (cosec champ import)": Case(
        ["champ", "import", "champ", "models/imported", "--config", "tiny"],
        ["champ/denoising_unet.pth: cannot read state dict: not a PyTorch or safetensors weights file"],
        code=2,
        setup=lambda r: _champ_folder(r, text="denoising_unet.pth"),
    ),
    # every `cosec` command's user errors
    "cosec stage: bad params": Case(
        ["stage", "frames", "--params", P],
        ["{params}", "frames.stride: must be >= 1"],
        params=lambda d: d["frames"].update(stride=0),
        prefix="frames: error: ",
    ),
    "cosec data: missing params": Case(
        ["data", "index", "--params", "nope.yaml"],
        ["nope.yaml: params file not found"],
        prefix="index: error: ",
    ),
    "cosec champ check-manifest: no folder": Case(
        ["champ", "check-manifest", "no_such_dir"], ["no_such_dir: no Champ manifest files"], code=2
    ),
    "cosec champ import: no folder": Case(
        ["champ", "import", "no_such_dir", "models/x", "--config", "tiny"],
        ["no_such_dir/unet/config.json: file not found"],
        code=2,
    ),
    "cosec eval check-weights: no folder": Case(
        ["eval", "check-weights", "no_such_dir"], ["no_such_dir is not a folder"], code=2, prefix="cosec eval"
    ),
    "cosec eval check-weights: text file renamed .pt": Case(
        ["eval", "check-weights", "weights"],
        ["1 of 1 files in weights do not load"],
        setup=_text_backbone,
        stdout=["i3d_pretrained_400.pt: REJECTED"],
        prefix="cosec eval check-weights: ",
    ),
    "cosec animate: no model": Case(
        ["animate", "--model", "no_such_dir", "--reference", "ref.png", "--motion", "x", "--out", "o.mp4"],
        ["no_such_dir: model folder not found"],
        code=2,
    ),
    "cosec animate: NaN model": Case(
        [
            "animate",
            "--model",
            "models/teacher_nan",
            "--reference",
            "ref.png",
            "--motion",
            "x",
            "--out",
            "o.mp4",
        ],
        ["models/teacher_nan/model.safetensors", "NaN or inf"],
        code=2,
        setup=_nan_teacher,
    ),
    "cosec animate: reference not an image": Case(
        ["animate", "--model", "models/teacher", "--reference", "ref.png", "--motion", "x", "--out", "o.mp4"],
        ["ref.png: not an image file"],
        code=2,
        setup=_bad_reference,
    ),
    "cosec bench: no weights folder": Case(
        ["bench", "--weights", "no_such_dir", "--frames", "2"],
        ["no_such_dir: model folder not found"],
        code=2,
    ),
    "cosec bench: unknown model": Case(
        ["bench", "--model", "sd16"], ["--model 'sd16': choose tiny or sd15"], code=2
    ),
}


def _enospc(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what a write on a full disk raises: no file name


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(project, tmp_path, monkeypatch, name):
    case = CASES[name]
    root, pristine = project
    params = root / "params.yaml"
    if case.params:
        doc = copy.deepcopy(yaml.safe_load(params.read_text()))
        case.params(doc)
        params = tmp_path / "params.yaml"
        params.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.chdir(root)
    monkeypatch.delenv("COSEC_DEBUG", raising=False)
    try:
        if case.setup:
            case.setup(root)
        before = _snapshot(root)
        if case.inject == "enospc":
            monkeypatch.setattr(os, "fsync", _enospc)
        argv = [a.replace(P, str(params)) for a in case.argv]
        rc, out, err = _run(argv, case.stage)
        monkeypatch.undo()
        after = _snapshot(root)
    finally:
        _restore(root, pristine)  # the next case starts from the good run again
    lines = err.strip().splitlines()
    assert rc == case.code, f"exit code {rc}, stderr:\n{err}"
    assert "Traceback" not in err and "Traceback" not in out, err
    # the first line says what failed; a data stage lists its problems, one per line, below it
    assert lines and all(e.format(params=params, root=root) in err for e in case.expect), err
    assert len(lines) == case.lines, err
    assert lines[0].startswith(case.prefix or (f"{case.stage}: error: " if case.stage else "error: ")), err
    for text in case.stdout:
        assert text in out, out
    # nothing that was there before changed or vanished; nothing but a stage's temp files may appear
    # (a data stage's rejects file is its report of this very run, rewritten on purpose)
    changed = [p for p in before if after.get(p) != before[p] and "rejects" not in Path(p).name]
    assert not changed, f"earlier outputs changed: {changed}"
    assert not (root / MARKER).exists() and not (Path(os.getcwd()) / MARKER).exists()


def test_errors_doc_lists_every_case():
    """docs/errors.md is the user's copy of this table: a case added here must be documented there."""
    doc = (REPO / "docs" / "errors.md").read_text()
    missing = [name for name in CASES if f"| {name} |" not in doc]
    assert not missing, f"docs/errors.md has no row for {missing}"
