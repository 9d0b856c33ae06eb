"""The evaluation runner on the tiny prepared data: deterministic whatever the global RNG does."""

import copy

import torch

from cosec.eval.runner import EvalProtocol, run_evaluation
from cosec.models import ChampModel


def test_eval_runner_is_deterministic_and_fills_every_entry(tiny_data):
    torch.manual_seed(0)
    teacher = ChampModel.build("tiny", motion_modules=True)
    student = copy.deepcopy(teacher.denoising_unet)
    with torch.no_grad():
        for p in student.parameters():  # a different network than the teacher's
            p.add_(0.01 * torch.randn_like(p))
    cfg = EvalProtocol(
        splits=sorted(set(tiny_data["index"]["split"]) - {"train"})[:1],
        teacher_steps=[2],
        teacher_nocfg_steps=[2],
        student_steps=[2],
        max_videos=1,
        max_frames=2,
    )
    runs = []
    for seed in (1, 2):
        torch.manual_seed(seed)  # the global RNG must not leak into any sample
        table, grids = run_evaluation(
            teacher, {"student": student}, tiny_data["root"], tiny_data["index"], cfg, progress=False
        )
        runs.append(table.values)
    assert runs[0] == runs[1]
    (split,) = runs[0]
    assert set(runs[0][split]) == {"reference@0", "teacher@2", "teacher_nocfg@2", "student@2"}
    assert runs[0][split]["student@2"]["psnr"] != runs[0][split]["teacher@2"]["psnr"]
    assert list(grids[split][0]) == ["reference", "pose", "ground truth", "teacher", "student"]


def test_student_renoise_setting_reaches_the_sampler(tiny_data):
    import pytest

    with pytest.raises(ValueError, match="student_renoise"):
        EvalProtocol(student_renoise="per-pixel")
    torch.manual_seed(0)
    teacher = ChampModel.build("tiny", motion_modules=True)
    split = sorted(set(tiny_data["index"]["split"]) - {"train"})[0]
    values = {}
    for mode in ("independent", "shared"):
        cfg = EvalProtocol(
            splits=[split],
            teacher_steps=[],
            teacher_nocfg_steps=[],
            student_steps=[1, 2],
            max_videos=1,
            max_frames=2,
            student_renoise=mode,
        )
        table, _ = run_evaluation(
            teacher,
            {"student": teacher.denoising_unet},
            tiny_data["root"],
            tiny_data["index"],
            cfg,
            progress=False,
        )
        values[mode] = table.values[split]
    assert values["shared"]["student@1"] == values["independent"]["student@1"]  # one step: no re-noising
    assert values["shared"]["student@2"] != values["independent"]["student@2"]
