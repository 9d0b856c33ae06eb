"""Stage 'frames': videos -> numbered PNG frames (decord).

Settings: cosec.data.config; see docs/data.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .stage import Stage

if TYPE_CHECKING:
    from .params import Params


def run(params: Params) -> None:
    import torch

    from cosec.data.frames import run_frames

    torch.set_num_threads(1)  # small tensors: intra-op threads only add contention (30x slower on 2 cores)
    run_frames(params.frames)


STAGE = Stage("frames", ("frames",), run)
