"""A pipeline stage: its name, the params sections it reads, and what it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]  # dvc.yaml's `params:` for the stage must be exactly these
    run: Callable  # run(params) or, with a variant argument, run(params, variant)
    variants: tuple[str, ...] = ()  # a positional argument of the stage script (the ablation rungs)
    variant_arg: str | None = None  # or a free positional argument of this name (the seeds study's seed)

    @property
    def takes_variant(self) -> bool:
        return bool(self.variants) or self.variant_arg is not None
