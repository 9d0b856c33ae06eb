"""DVC stages 'phase1' and 'phase2': ReferenceLCM + CoSeC distillation of the teacher.

python stages/distill_phase.py 1 --params params.yaml   # frames, ETA + CoNS -> models/phase1
python stages/distill_phase.py 2 --params params.yaml   # clips, temporal ETA -> models/student
"""

import argparse
import dataclasses
from dataclasses import dataclass, field

from _common import read_index, setup, tracked, work_dir

from cosec.config import from_dict, load_section, to_dict
from cosec.distill.config import DistillConfig, Phase1Config, Phase2Config
from cosec.distill.recipe import run_phase, run_phase_on_workers
from cosec.models import ChampModel


@dataclass
class PhaseData:
    batch_size: int = 2  # groups (phase 1) or clips (phase 2) per step
    k_ras: int = 2  # phase 1: intra-source references per group (>= 2 for ETA)
    m_ers: int = 2  # phase 1: inter-source references per group (CoNS)
    window: int = 8  # phase 1: RAS references within this many frames of the target
    num_frames: int = 8  # phase 2: frames per clip


@dataclass
class PhaseStage:
    loss: dict = field(default_factory=dict)  # Phase1Config / Phase2Config fields
    data: PhaseData = field(default_factory=PhaseData)
    teacher: str = "models/teacher"
    init: str | None = None  # phase 2: the phase-1 checkpoint whose student starts phase 2
    out: str = "models/phase1"


def distill(
    phase: int,
    params: str,
    loss_overrides: dict | None = None,
    out: str | None = None,
    init: str | None = None,
    variant: str = "student",
) -> str:
    """Run one distillation phase from the params file (with optional loss overrides); returns the out folder."""
    name = f"phase{phase}"
    common = setup(params)
    stage = load_section(params, name, PhaseStage)
    shared = load_section(params, "distill", DistillConfig)
    phase_cls = Phase1Config if phase == 1 else Phase2Config
    loss = from_dict(phase_cls, {**stage.loss, **(loss_overrides or {})}, f"{params}:{name}.loss")
    cfg = dataclasses.replace(shared, **{name: loss})
    out = out or stage.out
    init = init if init is not None else stage.init
    with tracked(
        common, name, {"distill": to_dict(cfg), name: to_dict(stage)}, {"cosec.variant": variant}
    ) as run:
        inputs = [p for p in (stage.teacher, init, common.index) if p]
        work = work_dir(
            f"{variant}/{name}",
            {"distill": to_dict(cfg), "stage": to_dict(stage), "common": to_dict(common)},
            inputs,
        )
        r = common.run
        kwargs = {
            "phase": phase,
            "cfg": cfg,
            "data_root": common.data_root,
            "index": read_index(common),
            "work_dir": work,
            "batch_size": stage.data.batch_size,
            "k_ras": stage.data.k_ras,
            "m_ers": stage.data.m_ers,
            "window": stage.data.window,
            "num_frames": stage.data.num_frames,
            "train_config": {
                "checkpoint_every": r.checkpoint_every,
                "keep_last": r.keep_last,
                "log_every": r.log_every,
                "mixed_precision": r.mixed_precision,
                "progress": r.progress,
            },
        }
        if r.num_workers > 1 or r.use_gpu:
            state = run_phase_on_workers(r.num_workers, r.use_gpu, stage.teacher, init, run, **kwargs)
        else:
            teacher = ChampModel.from_pretrained(stage.teacher)
            init_state = ChampModel.from_pretrained(init).denoising_unet.state_dict() if init else None
            lcd = run_phase(teacher=teacher, student_init=init_state, tracker=run, **kwargs)
            state = lcd.shipped().state_dict()
        student = ChampModel.from_pretrained(stage.teacher)  # fresh fp32 copy of the frozen parts
        student.denoising_unet.load_state_dict(state)
        student.save_pretrained(out)
    print(f"{name} ({variant}) written to {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("phase", type=int, choices=(1, 2))
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    distill(args.phase, args.params)


if __name__ == "__main__":
    main()
