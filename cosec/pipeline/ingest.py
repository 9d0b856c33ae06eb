"""Stage 'ingest' (real/dvc.yaml): real data in: a benchmark's videos (tiktok, ubc, wild_tiktok) or any folder of
videos or frames with SMPL fits, or of Champ-layout folders.

Settings: cosec.data.config; see docs/data.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .stage import Stage

if TYPE_CHECKING:
    from .params import Params


def run(params: Params) -> None:
    import torch

    from cosec.data.ingest import run_ingest

    torch.set_num_threads(1)  # small tensors: intra-op threads only add contention (30x slower on 2 cores)
    run_ingest(params.ingest)


STAGE = Stage("ingest", ("ingest",), run)
