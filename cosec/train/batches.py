"""Deterministic, resumable batch streams for the training loop.

Batch i of a stream depends only on (seed, i), so a run resumed at step s draws exactly the
batches an uninterrupted run would have drawn from step s on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import Dataset, default_collate


def batch_stream(
    dataset: Dataset, batch_size: int, seed: int = 0, collate: Callable = default_collate
) -> Callable[[int], Iterator]:
    """A callable ``start_step -> iterator of batches`` (the loop's resumable data form).

    Items are drawn with replacement, batch by batch, from a generator seeded with (seed, step).
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("batch_stream: the dataset is empty")

    def stream(start_step: int) -> Iterator:
        step = start_step
        while True:
            g = torch.Generator().manual_seed(seed * 1_000_003 + step)
            idx = torch.randint(0, n, (batch_size,), generator=g).tolist()
            yield collate([dataset[i] for i in idx])
            step += 1

    return stream


def to_device(batch, device: torch.device | str):
    """Move every tensor of a (nested dict / list / tuple) batch to ``device``."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
