"""One short training run of a real training path, for the kill-and-resume tests (run as a subprocess).

    resume_worker.py PATH WORK OUT [HANG_DESC HANG_STEP MARKER]

PATH: teacher (VAE -> stage 1 -> stage 2) | phase1 | phase2 | phase1-lora; WORK: checkpoint folder;
OUT: where the final weights go (teacher: a ChampModel folder; phases: student.safetensors). With
HANG_*, the run writes MARKER and sleeps when the part named HANG_DESC is about to compute step
HANG_STEP + 1 (steps after its last checkpoint have been computed and are lost when the test kills it).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pandas as pd
import torch

import cosec.train.loop as loop

ROOT_NAME, INDEX_NAME, TEACHER_NAME = "prepared", "index.parquet", "teacher"
RESOLUTION = 32


def _hang_at(desc: str, step: int, marker: Path) -> None:
    original = loop.Trainer._one_step

    def one_step(self, batches):
        if self.config.desc == desc and self.step == step:
            marker.write_text(str(step))
            time.sleep(600)  # the test kills us here with SIGKILL
        return original(self, batches)

    loop.Trainer._one_step = one_step


def run(path: str, data: Path, work: Path, out: Path) -> None:
    from cosec.models import ChampModel, ModelSize
    from cosec.train.config import RunConfig

    torch.set_num_threads(1)
    index = pd.read_parquet(data / INDEX_NAME)
    root = data / ROOT_NAME
    keep_last = int(os.environ.get("RESUME_KEEP_LAST", "2"))
    run_cfg = RunConfig(
        checkpoint_every=2, keep_last=keep_last, log_every=1, mixed_precision="no", progress=False
    )
    if path == "teacher":
        from cosec.teacher.config import Stage1Part, Stage2Part, TeacherConfig, VAEPart
        from cosec.teacher.recipe import train_teacher

        cfg = TeacherConfig(
            seed=3,
            vae=VAEPart(
                steps=5, lr=1e-3, batch_size=2, mse_weight=1.0, flip=True, permute_prob=0.5
            ),  # posterior noise, augment
            stage1=Stage1Part(steps=5, lr=1e-3, batch_size=2, uncond_prob=0.5),  # reference drops, noise
            stage2=Stage2Part(steps=5, lr=1e-3, batch_size=1, num_frames=3, uncond_prob=0.5),
        )
        model = train_teacher(cfg, ModelSize(resolution=RESOLUTION), run_cfg, root, index, work)
        model.save_pretrained(out)
        return
    from safetensors.torch import save_file

    from cosec.distill.config import DistillConfig, LoraSettings, Phase1Config, Phase2Config
    from cosec.distill.recipe import run_phase

    phase = 2 if path == "phase2" else 1
    extra = {"student": "lora", "lora": LoraSettings(rank=2)} if path == "phase1-lora" else {}
    cfg = DistillConfig(
        lr=1e-3,
        seed=5,
        ema_decay=0.9,
        sample_ema_decay=0.8,  # the shipped slow average must resume too
        phase1=Phase1Config(steps=5, eta_weight=0.5, cons_weight=0.1, w=1.5),
        phase2=Phase2Config(steps=5, tmp_weight=0.5, w=1.5),
        **extra,
    )
    teacher = ChampModel.from_pretrained(data / TEACHER_NAME)
    lcd = run_phase(phase, teacher, cfg, root, index, work, batch_size=2, train_config=run_cfg.loop_settings(),
                    k_ras=2, m_ers=1, window=4, num_frames=3)  # fmt: skip
    state = {k: v.detach().cpu().contiguous() for k, v in lcd.shipped().state_dict().items()}
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "student.safetensors"))


if __name__ == "__main__":
    kind, data, work, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    if len(sys.argv) > 5:
        _hang_at(sys.argv[5], int(sys.argv[6]), Path(sys.argv[7]))
    run(kind, data, work, out)
