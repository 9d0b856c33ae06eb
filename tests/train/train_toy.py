"""A small deterministic regression task shared by the training-loop tests and their subprocesses."""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import torch
from torch import nn

from cosec.train import TrainConfig, train

TRUE_W = torch.tensor([[1.5], [-2.0], [0.5], [3.0]])


def make_model() -> nn.Module:
    torch.manual_seed(123)
    # Dropout makes the run depend on the global RNG, so resume must restore RNG states.
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 1))


class Ema:
    """Extra state beside the model (like the distillation target network)."""

    def __init__(self, model: nn.Module, decay: float = 0.9):
        self.model, self.decay = model, decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def update(self, step: int, logs: dict) -> None:
        for k, v in self.model.state_dict().items():
            self.shadow[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)

    def state_dict(self) -> dict:
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict) -> None:
        self.shadow = {k: v.clone() for k, v in state.items()}


def batches(start_step: int, micro: int = 8, accum: int = 1):
    """Micro-batches as a pure function of their index, so a resumed run sees the same data."""
    for index in itertools.count(start_step * accum):
        g = torch.Generator().manual_seed(10_000 + index)
        x = torch.randn(micro, 4, generator=g)
        yield x, x @ TRUE_W


def step_fn_for(model: nn.Module):
    def step_fn(batch):
        x, y = batch
        noise = 0.01 * torch.randn_like(y)  # global RNG on purpose
        loss = nn.functional.mse_loss(model(x), y + noise)
        return loss, {"loss_mse": loss.detach()}

    return step_fn


def run(out_dir: Path, max_steps: int, hang_after: int | None = None, marker: Path | None = None):
    model = make_model()
    ema = Ema(model)
    callbacks = [ema.update]
    if hang_after is not None:

        def hang(step: int, logs: dict) -> None:
            if step == hang_after:
                marker.write_text(str(step))
                time.sleep(120)  # the test kills us here with SIGKILL

        callbacks.append(hang)
    config = TrainConfig(
        max_steps=max_steps,
        out_dir=str(out_dir),
        lr=0.05,
        checkpoint_every=5,
        keep_last=2,
        clip_grad_norm=10.0,
        progress=False,
        seed=7,
    )
    result = train(
        step_fn_for(model),
        batches,
        model.parameters(),
        config,
        state={"model": model, "ema": ema},
        callbacks=callbacks,
    )
    return model, ema, result


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]), hang_after=int(sys.argv[3]), marker=Path(sys.argv[4]))
