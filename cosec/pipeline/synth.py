"""Stage 'synth': the embedded synthetic data (anny bodies dancing; videos + body parameters).

Settings: cosec.data.config; see docs/data.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .stage import Stage

if TYPE_CHECKING:
    from .params import Params


def run(params: Params) -> None:
    import torch

    from cosec.synth.dataset import write_synthetic_data

    torch.set_num_threads(1)  # small tensors: intra-op threads only add contention (30x slower on 2 cores)
    write_synthetic_data(params.synth)


STAGE = Stage("synth", ("synth",), run)
