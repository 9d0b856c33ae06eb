"""No silent wrong numbers at model load: NaN/inf weights are refused (project folders and Champ folders),
and a Champ folder without motion_module.pth is an error unless an image-only model is asked for."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from cosec.cli import main as cosec_main
from cosec.models import ChampModel
from cosec.models.champ_release import ChampCheckpointError, export_champ, load_champ
from cosec.models.checkpoint import WEIGHTS_NAME


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_from_pretrained_refuses_nonfinite_weights(tiny, tmp_path, bad):
    folder = tiny.save_pretrained(tmp_path / "m")
    weights = folder / WEIGHTS_NAME
    state = load_file(str(weights))
    keys = sorted(k for k in state if k.startswith("denoising_unet.") and k.endswith(".weight"))[:2]
    for k in keys:
        state[k].view(-1)[0] = bad
    save_file(state, str(weights), metadata={"format": "cosec-champ/1"})
    with pytest.raises(ChampCheckpointError) as err:
        ChampModel.from_pretrained(folder)
    msg = str(err.value)
    assert str(weights) in msg and "NaN or inf" in msg and "2 tensor(s)" in msg
    assert all(k in msg for k in keys)


def test_from_pretrained_refuses_weights_that_overflow_the_requested_dtype(tiny, tmp_path):
    folder = tiny.save_pretrained(tmp_path / "m")
    weights = folder / WEIGHTS_NAME
    state = load_file(str(weights))
    key = next(k for k in state if k.startswith("vae.") and k.endswith(".weight"))
    state[key].view(-1)[0] = 1e6  # finite in fp32, inf in fp16
    save_file(state, str(weights), metadata={"format": "cosec-champ/1"})
    ChampModel.from_pretrained(folder)  # fp32: fine
    with pytest.raises(ChampCheckpointError) as err:
        ChampModel.from_pretrained(folder, dtype=torch.float16)
    assert key in str(err.value) and "after the cast to float16" in str(err.value)


def test_load_champ_refuses_nonfinite_weights_naming_file_and_keys(tiny, tmp_path, capsys):
    folder = export_champ(tiny, tmp_path / "champ")
    path = folder / "reference_unet.pth"
    sd = torch.load(path, weights_only=True)
    key = "conv_in.weight"
    sd[key] = sd[key].clone()
    sd[key].view(-1)[3] = float("nan")
    torch.save(sd, path)
    with pytest.raises(ChampCheckpointError) as err:
        load_champ(folder, "tiny")
    assert str(path) in str(err.value) and key in str(err.value) and "NaN or inf" in str(err.value)
    out = tmp_path / "out"
    assert cosec_main(["champ", "import", str(folder), str(out), "--config", "tiny"]) == 2
    captured = capsys.readouterr()
    assert "reference_unet.pth" in captured.err and "Traceback" not in captured.err
    assert not out.exists()


def test_missing_motion_module_is_an_error_unless_asked(tiny, tmp_path, capsys):
    folder = export_champ(tiny, tmp_path / "champ")
    (folder / "motion_module.pth").unlink()
    # the default (and what the teacher recipe asks: motion_modules=True) needs the file
    for kwargs in ({}, {"motion_modules": True}):
        with pytest.raises(ChampCheckpointError, match=r"motion_module\.pth.*motion_modules=False"):
            load_champ(folder, "tiny", **kwargs)
    out = tmp_path / "out"
    assert cosec_main(["champ", "import", str(folder), str(out), "--config", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "motion_module.pth" in err and "--motion no" in err and not out.exists()
    # explicitly image-only: imports, no motion modules, no warning needed
    assert cosec_main(["champ", "import", str(folder), str(out), "--config", "tiny", "--motion", "no"]) == 0
    assert not ChampModel.from_pretrained(out).denoising_unet.has_motion_modules
    # auto: imports without, but says so
    with pytest.warns(UserWarning, match="no motion_module.pth"):
        model = load_champ(folder, "tiny", motion_modules=None)
    assert not model.denoising_unet.has_motion_modules
    assert cosec_main(["champ", "import", str(folder), str(tmp_path / "o2"), "--config", "tiny", "--motion",
                       "auto"]) == 0  # fmt: skip
    assert "warning:" in capsys.readouterr().err


def test_teacher_from_a_champ_folder_without_motion_module_is_an_error(tiny, tmp_path):
    """The teacher stage's import (champ_dir) needs motion modules for phase 2."""
    from cosec.models import ModelSize
    from cosec.teacher.config import TeacherConfig
    from cosec.teacher.recipe import load_or_train_teacher
    from cosec.train.config import RunConfig

    folder = export_champ(tiny, tmp_path / "champ")
    (folder / "motion_module.pth").unlink()
    cfg = TeacherConfig(champ_dir=str(folder))
    with pytest.raises(ChampCheckpointError, match=r"motion_module\.pth"):
        load_or_train_teacher(cfg, ModelSize(), RunConfig(), tmp_path, None, tmp_path / "work")
