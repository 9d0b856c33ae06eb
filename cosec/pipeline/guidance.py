"""Stage 'guidance': body parameters -> depth, normal, semantic map, skeleton and mask in Champ's layout.

Settings: cosec.data.config; see docs/data.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .stage import Stage

if TYPE_CHECKING:
    from .params import Params


def run(params: Params) -> None:
    import torch

    from cosec.data.guidance import run_guidance

    torch.set_num_threads(1)  # small tensors: intra-op threads only add contention (30x slower on 2 cores)
    run_guidance(params.guidance)


STAGE = Stage("guidance", ("guidance",), run)
