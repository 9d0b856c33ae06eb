"""The released teacher: the committed shipped/teacher loads with the recorded checksum and the default run's
model shapes, and the teacher stage imports a release (or refuses a corrupt or mismatched one, naming it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from cosec.models import ChampModel, ModelSize
from cosec.pipeline import teacher as teacher_stage
from cosec.pipeline.params import load_params
from cosec.teacher.recipe import _curve, _record_curve
from cosec.teacher.release import MANIFEST, ReleaseError, load_release, sha256_file, verify, write_manifest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "shipped" / "teacher"


def _default_model() -> ModelSize:
    model = yaml.safe_load((REPO / "params.yaml").read_text())["common"]["model"]
    return ModelSize(**model)


def test_the_shipped_teacher_loads_and_matches_its_recorded_checksum():
    manifest = json.loads((SHIPPED / MANIFEST).read_text())
    assert sha256_file(SHIPPED / "model.safetensors") == manifest["sha256"]["model.safetensors"]
    model = load_release(SHIPPED, expected=_default_model().build_config().to_dict())
    assert model.role == "teacher" and model.denoising_unet.has_motion_modules
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # the committed configuration is the one that trained it, and every part ran its steps in one go
    shipped = yaml.safe_load((REPO / "shipped/params.yaml").read_text())
    assert manifest["settings"]["teacher"]["vae"] == {
        **manifest["settings"]["teacher"]["vae"],
        **shipped["teacher"]["vae"],
    }
    for part in ("vae", "stage1", "stage2"):
        assert manifest["metrics"][part]["steps"] == shipped["teacher"][part]["steps"], part
        assert manifest["metrics"][part]["curve"], part


@pytest.fixture
def release(tmp_path) -> Path:
    torch.manual_seed(0)
    model = ChampModel.build(ModelSize(resolution=32).build_config(), motion_modules=True)
    folder = tmp_path / "release"
    model.save_pretrained(folder, role="teacher")
    write_manifest(folder, settings={"note": "test"}, command="test", metrics={"stage1": {"steps": 1}})
    return folder


def _params(tmp_path: Path, release: Path, **model) -> Path:
    doc = {
        "common": {
            "experiment": "release-test",
            "mlflow_db": str(tmp_path / "mlflow.db"),
            "threads": 1,
            "model": {"base": "tiny", "resolution": 32, **model},
            "run": {"progress": False},
        },
        "teacher": {"import_dir": str(release), "out": str(tmp_path / "out")},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_teacher_stage_imports_a_release_byte_for_byte(tmp_path, release, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    teacher_stage.run(load_params(_params(tmp_path, release)))
    out = tmp_path / "out"
    assert sha256_file(out / "model.safetensors") == sha256_file(release / "model.safetensors")
    manifest = verify(out)
    assert manifest["metrics"] == {"stage1": {"steps": 1}} and manifest["command"] == "test"


def test_a_changed_release_is_refused_naming_the_file(tmp_path, release, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    weights = release / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match=r"model\.safetensors: sha256 .* does not match teacher\.json"):
        teacher_stage.run(load_params(_params(tmp_path, release)))
    assert not (tmp_path / "out").exists()


def test_a_release_without_its_manifest_is_refused(tmp_path, release):
    (release / MANIFEST).unlink()
    with pytest.raises(ReleaseError, match="teacher.json: missing"):
        load_release(release)


def test_a_release_of_other_shapes_is_refused_naming_the_difference(tmp_path, release, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(
        ReleaseError,
        match=r"does not match common.model .*vae.block_out_channels: released \[8, 16, 32, 32\], this run \[16, 32\]",
    ):
        teacher_stage.run(load_params(_params(tmp_path, release, vae_channels=[16, 32])))
    other = tmp_path / "copy"
    shutil.copytree(release, other)
    assert load_release(other, expected=ModelSize(resolution=32).build_config().to_dict()) is not None


def test_the_training_curve_is_window_means():
    history = [(s, {"loss": float(s)}) for s in range(1, 21)]
    curve = _curve(history, points=4)
    assert [c["step"] for c in curve] == [5, 10, 15, 20]
    assert [c["loss"] for c in curve] == [3.0, 8.0, 13.0, 18.0]
    assert _curve([]) == []


def test_the_curve_survives_resuming(tmp_path):
    path = tmp_path / "curve.json"
    first = _record_curve(path, 0, [(s, {"loss": 1.0}) for s in range(1, 11)])
    assert [c["step"] for c in first] == list(range(1, 11)) and path.is_file()
    # a later process resumed from step 6 (the checkpoint), re-ran 7..12: the earlier windows after 6 go
    second = _record_curve(path, 6, [(s, {"loss": 2.0}) for s in range(7, 13)])
    assert [c["step"] for c in second] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert [c["loss"] for c in second] == [1.0] * 6 + [2.0] * 6
    # a process that ran no step (the part was finished) keeps the file and returns it
    assert _record_curve(path, 12, []) == second
