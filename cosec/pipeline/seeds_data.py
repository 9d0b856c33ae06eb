"""Stage 'seeds_data' of the seeds study (seeds/dvc.yaml): one seed's synthetic data.

The main graph's data settings (synth -> frames -> guidance -> index, the same library calls as its data
stages) with synth.seed = the seed and every path under <seeds.data>/<seed>.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .stage import Stage

if TYPE_CHECKING:
    from cosec.data.config import FramesConfig, GuidanceConfig, IndexConfig, SynthConfig

    from .params import Params


def data_configs(params: Params, seed: int) -> tuple[SynthConfig, FramesConfig, GuidanceConfig, IndexConfig]:
    """The data sections with synth.seed = seed and every path under <seeds.data>/<seed>."""
    root = params.seeds.data_root(seed)
    synth = dataclasses.replace(params.synth, seed=seed, out=str(root / "raw"))
    frames = dataclasses.replace(params.frames, raw=synth.out, out=str(root / "frames"))
    guidance = dataclasses.replace(
        params.guidance,
        frames=frames.out,
        out=str(root / "prepared"),
        contact_sheets=str(root / "contact_sheets"),
    )
    index = dataclasses.replace(params.index, root=guidance.out, out=str(root / "index.parquet"))
    return synth, frames, guidance, index


def run(params: Params, variant: str) -> None:
    import torch

    from cosec.data.frames import run_frames
    from cosec.data.guidance import run_guidance
    from cosec.data.index import build_index
    from cosec.synth.dataset import write_synthetic_data

    seed = params.seeds.seed(variant)
    synth, frames, guidance, index = data_configs(params, seed)
    torch.set_num_threads(1)  # small tensors: intra-op threads only add contention (as in the data stages)
    write_synthetic_data(synth)
    run_frames(frames)
    run_guidance(guidance)
    build_index(index)
    print(f"seed {seed}: data written to {params.seeds.data_root(seed)}")


STAGE = Stage("seeds_data", ("synth", "frames", "guidance", "index", "seeds"), run, variant_arg="seed")
