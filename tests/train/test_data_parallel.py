"""common.run.data_parallel on 2 Ray workers (CPU, gloo, loopback-only namespace): teacher stage 1 and a
phase-1 student train inside DDP (Ray Train's prepare_model), the loop's own averaging is never called,
both ranks end with the same weights, the phase resumes under FSDP from the DDP checkpoint, and the saved
student and the checkpoints have a one-worker run's keys (no ``module.`` prefix)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from tiny_project import write_tiny_split

from cosec.train.checkpoint import list_checkpoints, load_checkpoint

REPO = Path(__file__).resolve().parents[2]

JOB = textwrap.dedent("""
    import hashlib, json, sys
    from pathlib import Path
    import pandas as pd
    import torch
    import torch.distributed as dist
    from cosec.train import distributed
    from cosec.train.config import RunConfig

    def digest(tensors):
        h = hashlib.sha1()
        for t in tensors:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def same_on_every_rank(tensors):
        everyone = [None] * distributed.world_size()
        dist.all_gather_object(everyone, digest(tensors))
        return len(set(everyone)) == 1

    def worker(payload, tracker):
        import ray.train.torch
        import cosec.train.loop as loop
        from cosec.distill.config import DistillConfig, Phase1Config
        from cosec.distill.recipe import run_phase
        from cosec.models import ChampModel, ModelSize
        from cosec.teacher.config import Stage1Part, Stage2Part, TeacherConfig, VAEPart
        from cosec.teacher.recipe import train_teacher

        def no_loop_averaging(self):
            raise AssertionError("the loop averaged gradients: no DDP")
        loop.Trainer._average_gradients = no_loop_averaging
        wrapped = []
        prepare = ray.train.torch.prepare_model
        def spy(module, **kw):
            out = prepare(module, **kw)
            find = kw["parallel_strategy_kwargs"]["find_unused_parameters"]
            wrapped.append([type(module).__name__, find, type(out).__name__])
            return out
        ray.train.torch.prepare_model = spy

        root, index, work = payload["root"], pd.read_parquet(payload["index"]), Path(payload["work"])
        run = RunConfig(num_workers=2, checkpoint_every=2, keep_last=2, mixed_precision="no", progress=False)
        tcfg = TeacherConfig(vae=VAEPart(steps=0), stage1=Stage1Part(steps=2, batch_size=2, uncond_prob=0.5),
                             stage2=Stage2Part(steps=0, num_frames=4))
        model = train_teacher(tcfg, ModelSize(resolution=32), run, root, index, work / "teacher")
        # what stage 1 trained (stage 2's new motion modules, 0 steps here, are each rank's own draw)
        stage1 = [p for n, p in model.named_parameters() if ".motion_modules." not in n]
        out = {"teacher_in_sync": same_on_every_rank(stage1)}

        kw = dict(phase=1, data_root=root, index=index, work_dir=str(work / "phase1"), batch_size=2,
                  train_config=run.loop_settings(), k_ras=2, m_ers=1, window=4)
        for steps, mode in ((2, "ddp"), (4, "fsdp")):  # the second resumes the first's checkpoint
            cfg = DistillConfig(lr=1e-3, seed=5, ema_decay=0.9,
                                phase1=Phase1Config(steps=steps, w=1.5, eta_weight=0.5, cons_weight=0.1))
            teacher = ChampModel.from_pretrained(payload["teacher"])
            lcd = run_phase(teacher=teacher, cfg=cfg, data_parallel=mode, **kw)
            out[mode] = {"mode": lcd.train_result.data_parallel, "resumed_from": lcd.train_result.resumed_from,
                         "student_in_sync": same_on_every_rank(lcd.student.parameters()),
                         "target_in_sync": same_on_every_rank(lcd.target.parameters())}
        if distributed.rank() == 0:
            torch.save(lcd.shipped().state_dict(), work / "student.pt")
        out["wrapped"] = wrapped
        return out

    if __name__ == "__main__":
        base = Path(sys.argv[1])
        payload = {"root": str(base / "prepared"), "index": str(base / "index.parquet"),
                   "teacher": str(base / "teacher"), "work": str(base / "work")}
        out = distributed.launch(worker, payload, RunConfig(num_workers=2), base / "work", "dp-test")
        print("RESULT " + json.dumps(out))
""")


@pytest.mark.ray
@pytest.mark.slow
def test_two_workers_train_in_ddp_and_fsdp_with_one_worker_keys(tmp_path, loopback_namespace):
    from cosec.distill.config import DistillConfig, Phase1Config
    from cosec.distill.recipe import run_phase
    from cosec.models import ChampModel, ModelSize

    write_tiny_split(tmp_path)
    torch.manual_seed(0)
    ChampModel.build(ModelSize(resolution=32).build_config()).save_pretrained(tmp_path / "teacher")
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = f'ip link set lo up && exec "{sys.executable}" "{script}" "{tmp_path}"'
    proc = subprocess.run([*loopback_namespace, cmd], env=env, capture_output=True, text=True, timeout=480)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = json.loads(lines[-1].removeprefix("RESULT "))

    # DDP through prepare_model: find_unused_parameters for teacher stage 1 only
    assert out["wrapped"] == [
        ["TeacherStage1", True, "DistributedDataParallel"],
        ["DenoisingUNet", False, "DistributedDataParallel"],
    ]
    assert out["teacher_in_sync"]
    assert out["ddp"] == {"mode": "ddp", "resumed_from": 0, "student_in_sync": True, "target_in_sync": True}
    assert out["fsdp"] == {"mode": "fsdp", "resumed_from": 2, "student_in_sync": True, "target_in_sync": True}

    # a one-worker run of the same phase: same keys in the shipped student and in the checkpoints
    import pandas as pd

    cfg = DistillConfig(lr=1e-3, seed=5, ema_decay=0.9, phase1=Phase1Config(steps=1, w=1.5, eta_weight=0.5,
                                                                              cons_weight=0.1))  # fmt: skip
    index = pd.read_parquet(tmp_path / "index.parquet")

    def one_worker(work: Path):
        teacher = ChampModel.from_pretrained(tmp_path / "teacher")
        return run_phase(1, teacher, cfg, tmp_path / "prepared", index, work, 2, {"progress": False},
                         k_ras=2, m_ers=1, window=4)  # fmt: skip

    single = one_worker(tmp_path / "single")
    keys = set(single.shipped().state_dict())
    assert set(torch.load(tmp_path / "work" / "student.pt", weights_only=True)) == keys
    folder = tmp_path / "work" / "phase1" / "checkpoints"
    blob = load_checkpoint(list_checkpoints(folder)[-1][1])
    assert blob["step"] == 4 and blob["world_size"] == 2
    assert set(blob["state"]["student"]) == set(blob["state"]["target"]) == keys
    one = load_checkpoint(list_checkpoints(tmp_path / "single" / "checkpoints")[-1][1])
    assert blob["optimizer"]["param_groups"][0]["params"] == one["optimizer"]["param_groups"][0]["params"]
    assert set(blob["optimizer"]["state"]) == set(one["optimizer"]["state"])

    # the FSDP run's checkpoint resumes on one worker
    cfg.phase1.steps = 5
    resumed = one_worker(tmp_path / "work" / "phase1")
    assert resumed.train_result.resumed_from == 4 and resumed.train_result.data_parallel == "none"
