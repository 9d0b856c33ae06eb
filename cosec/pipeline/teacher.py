"""Stage 'teacher': import Champ's released weights (teacher.champ_dir) or this project's released teacher
(teacher.import_dir, the default: shipped/teacher), or train a Champ-architecture teacher. A trained teacher is
written with its manifest (teacher.json: checksum, settings, command, training metrics), so any trained
folder can itself be released."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cosec.config import to_dict
from cosec.teacher.config import PARTS, TeacherConfig
from cosec.teacher.recipe import load_or_train_teacher
from cosec.teacher.release import MANIFEST, load_release, read_manifest, write_manifest

from .common import read_index, tracked, work_dir
from .stage import Stage

if TYPE_CHECKING:
    from .params import Params

Config = TeacherConfig


def run(params: Params) -> None:
    common, cfg = params.common, params.teacher
    with tracked(common, "teacher", {"teacher": to_dict(cfg)}) as tracker:
        if cfg.import_dir and not cfg.champ_dir:
            _import(cfg, common, tracker)
            return
        # the sub-stages key their own folders (cosec.teacher.recipe.part_dir): a longer stage 1 continues
        settings = {k: v for k, v in to_dict(cfg).items() if k not in PARTS}
        keyed = {
            **to_dict(common),
            "run": common.run.identity(),
        }  # where it runs does not change what is trained
        summary: dict = {}
        work = work_dir("teacher", {"teacher": settings, "common": keyed}, [common.index])
        model = load_or_train_teacher(
            cfg,
            common.model,
            common.run,
            common.data_root,
            read_index(common),
            work_dir=work,
            tracker=tracker,
            summary=summary,
        )
        model.save_pretrained(cfg.out, role="teacher")
        if not cfg.champ_dir:
            settings = {"teacher": to_dict(cfg), "common": {"model": to_dict(common.model)}}
            command = f"python stages/teacher.py --params {params.source}" if params.source else None
            write_manifest(cfg.out, settings=settings, command=command, metrics=summary)
    print(f"teacher written to {cfg.out}")


def _import(cfg, common, tracker) -> None:
    """Copy the released teacher (checksum and model shapes checked) to teacher.out, its manifest with it."""
    model = load_release(cfg.import_dir, expected=common.model.build_config().to_dict())  # checksum checked
    manifest = read_manifest(cfg.import_dir)
    model.save_pretrained(cfg.out, role="teacher")
    write_manifest(cfg.out, settings=manifest.get("settings", {}), command=manifest.get("command"),
                   metrics=manifest.get("metrics", {}))  # fmt: skip
    tracker.log_params({"teacher_release": {"import_dir": cfg.import_dir, "sha256": manifest["sha256"]}})
    print(f"teacher imported from {cfg.import_dir} ({MANIFEST} checked) to {cfg.out}")


STAGE = Stage("teacher", ("common", "teacher"), run)
