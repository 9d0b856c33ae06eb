"""Stage 'teacher': import Champ's released weights (teacher.champ_dir) or train a Champ-architecture teacher."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cosec.config import to_dict
from cosec.teacher.config import PARTS, TeacherConfig
from cosec.teacher.recipe import load_or_train_teacher

from .common import read_index, tracked, work_dir
from .stage import Stage

if TYPE_CHECKING:
    from .params import Params

Config = TeacherConfig


def run(params: Params) -> None:
    common, cfg = params.common, params.teacher
    with tracked(common, "teacher", {"teacher": to_dict(cfg)}) as tracker:
        # the sub-stages key their own folders (cosec.teacher.recipe.part_dir): a longer stage 1 continues
        settings = {k: v for k, v in to_dict(cfg).items() if k not in PARTS}
        keyed = {
            **to_dict(common),
            "run": common.run.identity(),
        }  # where it runs does not change what is trained
        work = work_dir("teacher", {"teacher": settings, "common": keyed}, [common.index])
        model = load_or_train_teacher(
            cfg,
            common.model,
            common.run,
            common.data_root,
            read_index(common),
            work_dir=work,
            tracker=tracker,
        )
        model.save_pretrained(cfg.out, role="teacher")
    print(f"teacher written to {cfg.out}")


STAGE = Stage("teacher", ("common", "teacher"), run)
