"""DVC stage 'teacher': import Champ weights (teacher.champ_dir) or train a Champ-architecture teacher."""

from _common import parse_args, read_index, setup, tracked, work_dir

from cosec.config import load_section, to_dict
from cosec.teacher.recipe import TeacherConfig, load_or_train_teacher


def main() -> None:
    args = parse_args("teacher")
    common = setup(args.params)
    cfg = load_section(args.params, "teacher", TeacherConfig)
    with tracked(common, "teacher", {"teacher": to_dict(cfg)}) as run:
        work = work_dir("teacher", {"teacher": to_dict(cfg), "common": to_dict(common)}, [common.index])
        model = load_or_train_teacher(cfg, common.model, common.run, common.data_root, read_index(common),
                                      work_dir=work, tracker=run)
        model.save_pretrained(cfg.out)
    print(f"teacher written to {cfg.out}")


if __name__ == "__main__":
    main()
