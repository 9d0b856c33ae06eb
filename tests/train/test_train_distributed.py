from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from cosec.train import TrainConfig, distributed, train

REPO = Path(__file__).resolve().parents[2]


def _loop(config: dict) -> dict:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    net = model.to(distributed.device())

    def step_fn(batch):
        return (net(batch) - 1).pow(2).mean()

    result = train(
        step_fn,
        lambda start: iter(lambda: torch.ones(4, 3), None),
        model.parameters(),
        TrainConfig(max_steps=config["steps"], out_dir=config["out"], lr=0.1, progress=False),
        state={"model": model},
    )
    return {
        "step": result.step,
        "rank": distributed.rank(),
        "world_size": distributed.world_size(),
        "loss": result.last_logs["loss"],
    }


def test_single_worker_runs_in_process(tmp_path):
    out = distributed.run(_loop, {"steps": 5, "out": str(tmp_path)}, num_workers=1, use_gpu=False)
    assert out["step"] == 5 and out["rank"] == 0 and out["world_size"] == 1
    assert (tmp_path / "checkpoints" / "ckpt-00000005.pt").is_file()
    with pytest.raises(ValueError, match="num_workers"):
        distributed.run(_loop, {}, num_workers=0)


RAY_JOB = textwrap.dedent("""
    import json, sys, time
    import torch
    import torch.distributed as dist
    from torch import nn
    from cosec.train import TrainConfig, train, distributed

    def loop(config):
        torch.manual_seed(0)
        model = nn.Linear(4, 1)
        net = model.to(distributed.device())
        rank = distributed.rank()
        w = torch.tensor([[1.0], [2.0], [-1.0], [0.5]])

        def data(start):
            for i in range(start, 10**6):  # each rank draws different samples
                x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1000 * i + rank))
                yield x, x @ w

        def step_fn(batch):
            x, y = batch
            return nn.functional.mse_loss(net(x), y)

        res = train(step_fn, data, model.parameters(),
                    TrainConfig(max_steps=10, out_dir=config["out"], lr=0.05, checkpoint_every=5, progress=False),
                    state={"model": model})
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        everyone = [torch.zeros_like(flat) for _ in range(distributed.world_size())]
        dist.all_gather(everyone, flat)
        # a second part in the same Ray run (as the teacher's stage 1 after its VAE): Ray's last reported
        # checkpoint is the first part's, and must not be taken for this one's (Ray records a report in a
        # thread of its own: the pause lets it land, as the teacher's VAE calibration does)
        time.sleep(3)
        other = nn.Linear(4, 2).to(distributed.device())
        second = train(lambda b: other(b[0]).pow(2).mean(), data, other.parameters(),
                       TrainConfig(max_steps=12, out_dir=config["out"] + "-second", lr=0.05,
                                   checkpoint_every=6, progress=False),
                       state={"other": other})
        return {"world_size": distributed.world_size(), "rank": rank, "step": res.step,
                "in_sync": int(all(torch.equal(everyone[0], f) for f in everyone)),
                "second": [second.resumed_from, second.step]}

    if __name__ == "__main__":
        out = distributed.run(loop, {"out": sys.argv[1]}, num_workers=2, storage_path=sys.argv[2])
        print("RESULT " + json.dumps(out))
""")


@pytest.mark.ray
@pytest.mark.slow
def test_two_worker_ray_run_in_loopback_namespace(tmp_path, loopback_namespace):
    script = tmp_path / "ray_job.py"
    script.write_text(RAY_JOB)
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = f'ip link set lo up && exec "{sys.executable}" "{script}" "{tmp_path / "run"}" "{tmp_path / "ray"}"'
    proc = subprocess.run([*loopback_namespace, cmd], env=env, capture_output=True, text=True, timeout=240)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = json.loads(lines[-1].removeprefix("RESULT "))
    assert out == {"world_size": 2, "rank": 0, "step": 10, "in_sync": 1, "second": [0, 12]}
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == [
        "ckpt-00000005.pt",
        "ckpt-00000005.rank1.rng.pt",
        "ckpt-00000010.pt",
        "ckpt-00000010.rank1.rng.pt",
    ]
