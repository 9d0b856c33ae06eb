"""DVC stage 'teacher': import Champ weights (teacher.champ_dir) or train a Champ-architecture teacher."""

from _common import parse_args, read_index, setup, tracked, work_dir

from cosec.config import load_section, to_dict
from cosec.teacher.recipe import PARTS, TeacherConfig, load_or_train_teacher


def main() -> None:
    args = parse_args("teacher")
    common = setup(args.params)
    cfg = load_section(args.params, "teacher", TeacherConfig)
    with tracked(common, "teacher", {"teacher": to_dict(cfg)}) as run:
        # the sub-stages key their own folders (cosec.teacher.recipe.part_dir): a longer stage 1 continues
        settings = {k: v for k, v in to_dict(cfg).items() if k not in PARTS}
        work = work_dir("teacher", {"teacher": settings, "common": to_dict(common)}, [common.index])
        model = load_or_train_teacher(
            cfg, common.model, common.run, common.data_root, read_index(common), work_dir=work, tracker=run
        )
        model.save_pretrained(cfg.out)
    print(f"teacher written to {cfg.out}")


if __name__ == "__main__":
    main()
