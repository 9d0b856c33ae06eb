"""LoRA students through the stages: phase 1 with distill.student: lora ships a merged Champ folder with its
adapter beside it, phase 2 starts from that adapter, an adapter-only phase 2 output loads in evaluation
(lora.load_student) and in cosec animate (load_model) as the same merged student."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tiny_project import write_tiny_split

from cosec.distill import lora
from cosec.models import ChampModel, ModelSize
from cosec.pipeline.distill import distill
from cosec.pipeline.params import load_params
from cosec.train.tracking import NullTracker


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """3 videos of 2 sources x 6 frames (32 px noise), their index and a tiny teacher with motion modules."""
    base = tmp_path_factory.mktemp("lora_stages")
    write_tiny_split(base)
    torch.manual_seed(0)
    teacher = ChampModel.build(ModelSize(resolution=32).build_config(), motion_modules=True)
    with torch.no_grad():  # zero-initialised motion outputs would make the temporal path a no-op
        for p in teacher.denoising_unet.motion_parameters():
            p.add_(0.02 * torch.randn_like(p))
    teacher.save_pretrained(base / "teacher")
    return base


def params(tmp_path, data, ship: str):
    run = {"mixed_precision": "no", "progress": False, "checkpoint_every": 10}
    teacher = str(data / "teacher")
    doc = {
        "common": {"data_root": str(data / "prepared"), "index": str(data / "index.parquet"), "run": run},
        "distill": {"lr": 1.0e-2, "seed": 3, "student": "lora", "lora": {"rank": 2, "ship": ship}},
        "phase1": {
            "loss": {"steps": 1, "w": 1.5},
            "data": {"batch_size": 2, "k_ras": 2, "m_ers": 1, "window": 4},
            "teacher": teacher,
            "out": str(tmp_path / "phase1"),
        },
        "phase2": {
            "loss": {"steps": 1, "w": 1.5, "tmp_weight": 0.5},
            "data": {"batch_size": 1, "num_frames": 3},
            "teacher": teacher,
            "init": str(tmp_path / "phase1"),
            "out": str(tmp_path / "student"),
        },
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_params(path)


def unet_state(model: ChampModel) -> dict[str, torch.Tensor]:
    return model.denoising_unet.state_dict()


@pytest.mark.slow
def test_phase2_starts_from_phase1_adapter_and_adapter_only_output_loads(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the stages' runs/ folder
    p = params(tmp_path, data, ship="merged")
    distill(p, 1, NullTracker())
    phase1 = tmp_path / "phase1"
    assert lora.is_adapter_folder(phase1) and (phase1 / "model.safetensors").is_file()
    adapter1 = load_file(str(phase1 / lora.ADAPTER_WEIGHTS))
    assert any(v.abs().sum() > 0 for k, v in adapter1.items() if ".lora_B." in k)  # phase 1 trained B
    # the merged folder is the adapter merged into the teacher (what evaluation loads as it is)
    merged = ChampModel.from_pretrained(phase1)
    assert merged.role == "student"
    via_adapter = lora.load_lora_student(phase1, base_dir=data / "teacher")
    for k, v in unet_state(merged).items():
        torch.testing.assert_close(v, unet_state(via_adapter)[k], rtol=0, atol=1e-6)

    # phase 2's LoRA student starts from phase 1's adapter (what the worker hands ReferenceLCM)
    import cosec.distill.recipe as recipe

    started = {}
    original = recipe.run_phase

    def run_phase(**kwargs):
        started.update(kwargs["student_init"])
        return original(**kwargs)

    monkeypatch.setattr(recipe, "run_phase", run_phase)
    distill(p, 2, NullTracker())
    assert set(started) == set(adapter1) and all(torch.equal(started[k], v) for k, v in adapter1.items())
    adapter2 = load_file(str(tmp_path / "student" / lora.ADAPTER_WEIGHTS))
    assert set(adapter2) == set(adapter1) and any(
        not torch.equal(adapter2[k], v) for k, v in adapter1.items()
    )

    # adapter-only shipping: no Champ files, loads in evaluation and cosec animate as the merged student
    p = params(tmp_path, data, ship="adapter")
    distill(p, 2, NullTracker(), out=str(tmp_path / "adapter_only"))
    out = tmp_path / "adapter_only"
    assert sorted(f.name for f in out.iterdir()) == sorted([lora.ADAPTER_CONFIG, lora.ADAPTER_WEIGHTS])
    base = json.loads((out / lora.ADAPTER_CONFIG).read_text())["base_model"]
    assert not Path(base).is_absolute() and (out / base).resolve() == (data / "teacher").resolve()
    adapter3 = load_file(str(out / lora.ADAPTER_WEIGHTS))
    assert set(adapter3) == set(adapter2)
    student = lora.load_student(out)  # base from the adapter's own record (relative to its folder)
    expected = lora.load_lora_student(out, base_dir=data / "teacher")
    assert student.role == "student"
    for k, v in unet_state(expected).items():
        assert torch.equal(unet_state(student)[k], v), k
    from cosec.pipeline.evaluate import load_students

    (evaluated,) = load_students({"student": str(out)}).values()  # what the evaluate stage scores
    for k, v in expected.denoising_unet.state_dict().items():
        assert torch.equal(evaluated.state_dict()[k], v), k
    from cosec.animate.run import load_model

    loaded = load_model(out)
    assert loaded.role == "student" and loaded.kind == "LoRA adapter"
    for k, v in unet_state(expected).items():
        assert torch.equal(unet_state(loaded.model)[k], v), k


def test_lora_phase2_from_a_full_phase1_folder_is_refused(data, tmp_path):
    from cosec.distill.config import DistillConfig
    from cosec.distill.recipe import student_init_state

    with pytest.raises(ValueError, match="starts from phase 1's LoRA adapter"):
        student_init_state(str(data / "teacher"), str(data / "teacher"), DistillConfig(student="lora"))
