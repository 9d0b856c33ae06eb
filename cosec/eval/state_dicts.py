"""Reading a backbone's weight file and matching it to a network strictly (names and shapes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


def _one_line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class WeightsRejected(ValueError):
    """A state dict whose keys or shapes do not match the network; `match` says how."""

    def __init__(self, message: str, match: KeyMatch):
        super().__init__(message)
        self.match = match


@dataclass
class KeyMatch:
    """How a file's state dict meets a network's: matched keys out of the network's, and what differs."""

    total: int
    missing: list[str]
    unexpected: list[str]
    misshaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # key, file shape, network shape
    ignored: list[str]  # keys of the file the metric does not use (torchvision VGG16's classifier)

    @property
    def loaded(self) -> int:
        return self.total - len(self.missing) - len(self.misshaped)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.misshaped)

    def describe(self, few: int = 3) -> str:
        parts = [f"loaded {self.loaded}/{self.total} keys"]
        for label, keys in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("wrong shape", [f"{k} (file {list(a)}, network {list(b)})" for k, a, b in self.misshaped]),
        ):
            if keys:
                more = f" and {len(keys) - few} more" if len(keys) > few else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:few])}{more}")
        if self.ignored:
            parts.append(f"{len(self.ignored)} keys not used by the metric ({self.ignored[0]}, ...)")
        return "; ".join(parts)


def match_state(
    module: nn.Module, state: dict[str, torch.Tensor], ignored: list[str] | None = None
) -> KeyMatch:
    """Compare a state dict with a module's, names and shapes (BatchNorm step counters may be absent)."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    misshaped = []
    for k, v in state.items():
        if k in expected:
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else ()
            if not isinstance(v, torch.Tensor) or shape != tuple(expected[k].shape):
                misshaped.append((k, shape, tuple(expected[k].shape)))
    total = sum(1 for k in expected if not k.endswith("num_batches_tracked"))
    return KeyMatch(total, missing, unexpected, misshaped, list(ignored or []))


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: cannot read as a torch state dict ({_one_line(err, 200)})") from err
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def _load_strict(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    path: Path,
    ignored: list[str] | None = None,
    name: str | None = None,
) -> KeyMatch:
    match = match_state(module, state, ignored)
    if not match.ok:
        raise WeightsRejected(
            f"{path}: keys do not match the {name or type(module).__name__} layout ({match.describe(5)})",
            match,
        )
    module.load_state_dict(state, strict=False)  # strictness checked above; step counters may be absent
    return match
