"""LoRA students (peft): one frozen base D-UNet shared by teacher, student and target.

``ReferenceLCM`` with ``student: lora`` injects peft LoRA layers (adapter ``"student"``) into the teacher's
own D-UNet, which becomes the shared base:

* student = base + the live adapters (the base's default state: plain calls run the student, so gradient
  checkpointing recomputes the student's forward in backward);
* target = base + the EMA of the adapters, swapped in for one call with ``torch.func.functional_call``;
* teacher = base with the adapters switched off for one call.

The shipped student is either the adapter alone (``save_adapter``; ``load_lora_student`` merges it into a
base Champ folder on load) or merged into the base (``merge_adapter``; the stages' merged folder is a plain
Champ folder that ``ChampModel.from_pretrained`` loads). Adapter tensors are named
``<D-UNet module path>.lora_A.weight`` / ``.lora_B.weight`` (peft's saved form, no adapter name).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cosec.atomic import atomic_write
from cosec.models.checkpoint import ChampCheckpointError, short_list, write_json

if TYPE_CHECKING:
    from cosec.models import ChampModel, DenoisingUNet

ADAPTER = "student"  # the peft adapter name inside the shared base
FORMAT = "cosec-lora/1"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def _peft_name(name: str, adapter: str = ADAPTER) -> str:
    """``x.lora_A.weight`` -> peft's in-model name ``x.lora_A.<adapter>.weight``."""
    head, _, tail = name.rpartition(".")
    return f"{head}.{adapter}.{tail}"


def _plain_name(peft_name: str, adapter: str = ADAPTER) -> str:
    return peft_name.replace(f".{adapter}.", ".")


def add_lora(unet: DenoisingUNet, rank: int, alpha: float, target_modules, seed: int = 0) -> None:
    """Inject plain LoRA adapters (B = 0, so the model is unchanged) into ``unet`` in place.

    Adapter A matrices are drawn from a private RNG seeded with ``seed`` (the global stream is untouched);
    adapters are fp32 whatever the base dtype. Only the adapters require grad afterwards.
    """
    from peft import LoraConfig, inject_adapter_in_model  # peft is only needed for LoRA students

    config = LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=list(target_modules), lora_dropout=0.0, bias="none"
    )
    devices = [unet.unet.conv_in.weight.device] if unet.unet.conv_in.weight.is_cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        try:
            inject_adapter_in_model(config, unet, adapter_name=ADAPTER)
        except ValueError as err:
            raise ValueError(
                f"LoRA: target modules {list(target_modules)} do not fit the D-UNet ({err})"
            ) from err
    for name, p in unet.named_parameters():
        if ".lora_" in name:
            p.data = p.data.float()


def is_adapted(unet: nn.Module) -> bool:
    return any(".lora_" in name for name, _ in unet.named_parameters())


def adapter_parameters(unet: nn.Module) -> dict[str, nn.Parameter]:
    """The live adapter parameters of an adapted D-UNet, by saved name (``....lora_A.weight``)."""
    return {_plain_name(n): p for n, p in unet.named_parameters() if ".lora_" in n}


def base_state_dict(unet: nn.Module) -> dict[str, torch.Tensor]:
    """An adapted D-UNet's base weights under the plain D-UNet's names (adapters left out)."""
    return {k.replace(".base_layer.", "."): v for k, v in unet.state_dict().items() if ".lora_" not in k}


def _tuner_layers(unet: nn.Module) -> list[nn.Module]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in unet.modules() if isinstance(m, BaseTunerLayer)]


@contextlib.contextmanager
def adapters_disabled(unet: nn.Module) -> Iterator[None]:
    """Run ``unet`` as its base (adapters off) inside the block; requires_grad flags are left as they were."""
    layers = _tuner_layers(unet)
    flags = [(p, p.requires_grad) for n, p in unet.named_parameters() if ".lora_" in n]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)
        for p, flag in flags:
            p.requires_grad_(flag)


def lora_delta(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """The weight change ``scale * B A`` of one plain LoRA pair (Linear: (out,r)(r,in); Conv2d: k x k A, 1 x 1 B)."""
    a, b = a.float(), b.float()
    if a.ndim == 2:
        return scale * (b @ a)
    if a.ndim == 4 and b.ndim == 4 and b.shape[2:] == (1, 1):
        return scale * torch.einsum("or,rikl->oikl", b[:, :, 0, 0], a)
    raise ValueError(f"LoRA: unsupported adapter shapes A {tuple(a.shape)}, B {tuple(b.shape)}")


def _pairs(adapter: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{module path: (A, B)}; every A needs its B and nothing else may be in the adapter."""
    heads = {k.removesuffix(".lora_A.weight") for k in adapter if k.endswith(".lora_A.weight")}
    expected = {f"{h}.lora_{x}.weight" for h in heads for x in "AB"}
    if expected != set(adapter):
        odd = sorted(set(adapter) ^ expected)
        raise ChampCheckpointError(f"LoRA adapter: unpaired or foreign keys: {short_list(odd)}")
    return {h: (adapter[f"{h}.lora_A.weight"], adapter[f"{h}.lora_B.weight"]) for h in sorted(heads)}


def merge_adapter(
    state: dict[str, torch.Tensor], adapter: dict[str, torch.Tensor], scale: float, source: str = "adapter"
) -> dict[str, torch.Tensor]:
    """A plain D-UNet state dict with ``W + scale * B A`` for every adapted module (a new dict, fp32 sums)."""
    merged = dict(state)
    bad = []
    for head, (a, b) in _pairs(adapter).items():
        key = f"{head}.weight"
        if key not in state:
            bad.append(key)
            continue
        delta = lora_delta(a, b, scale)
        if delta.shape != state[key].shape:
            bad.append(f"{key}: {list(delta.shape)} vs {list(state[key].shape)}")
            continue
        w = state[key]
        merged[key] = (w.float() + delta.to(w.device)).to(w.dtype)
    if bad:
        raise ChampCheckpointError(f"{source}: adapter does not fit the D-UNet: {short_list(bad)}")
    return merged


def merged_unet(base: nn.Module, adapter: dict[str, torch.Tensor], scale: float) -> DenoisingUNet:
    """A new plain (peft-free) fp32 DenoisingUNet: the adapted ``base``'s weights with ``adapter`` merged."""
    from cosec.models import DenoisingUNet
    from cosec.models.checkpoint import assign_state, check_state

    state = {k: v.detach().float() for k, v in base_state_dict(base).items()}
    state = merge_adapter(state, {k: v.detach() for k, v in adapter.items()}, scale)
    device = next(iter(state.values())).device
    with torch.device("meta"):
        plain = DenoisingUNet(base.config, motion_modules=base.has_motion_modules)
    check_state(plain.state_dict(), state, "merged LoRA student")
    assign_state(plain, state, source="merged LoRA student")
    plain.motion_enabled = base.motion_enabled
    return plain.to(device).eval()


class AdapterWeights(nn.Module):
    """A set of adapter tensors keyed by their saved names (``.`` -> ``/`` in the module's own keys).

    The student's set holds the base's live parameters (same objects); a target / average holds its own
    frozen fp32 copies.
    """

    def __init__(self, tensors: dict[str, torch.Tensor], share: bool):
        super().__init__()
        self.names = list(tensors)
        self.weights = nn.ParameterDict(
            {
                k.replace(".", "/"): v
                if share
                else nn.Parameter(v.detach().clone().float(), requires_grad=False)
                for k, v in tensors.items()
            }
        )

    def items(self) -> list[tuple[str, nn.Parameter]]:
        return [(k, self.weights[k.replace(".", "/")]) for k in self.names]

    def as_dict(self) -> dict[str, nn.Parameter]:
        return dict(self.items())


class AdapterView(nn.Module):
    """Teacher, student or target as a D-UNet-like callable over the shared adapted base.

    ``parameters()`` / ``state_dict()`` are the view's adapter weights only (none for the teacher); the base
    is held outside the module tree, so it is never saved or optimised through a view.
    """

    def __init__(
        self, base: nn.Module, weights: AdapterWeights | None, role: str, low_precision: bool = False
    ):
        super().__init__()
        if role not in ("teacher", "student", "target"):
            raise ValueError(f"AdapterView: unknown role {role!r}")
        object.__setattr__(self, "_base", base)
        self.role = role
        self.adapter = weights
        self.low_precision = low_precision

    @property
    def base(self) -> nn.Module:
        return self._base

    def named_adapter_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [] if self.adapter is None else self.adapter.items()

    def forward(self, sample, timestep, clip_embeds, guidance_features=None, bank=None) -> torch.Tensor:
        args = (sample, timestep, clip_embeds, guidance_features, bank)
        with contextlib.ExitStack() as stack:
            if self.low_precision:  # a bf16 base needs autocast for every forward, the student's included
                stack.enter_context(torch.autocast(device_type=sample.device.type, dtype=torch.bfloat16))
            if self.role == "student":
                return self._base(*args)
            if self.role == "teacher":
                stack.enter_context(adapters_disabled(self._base))
                return self._base(*args)
            swap = {_peft_name(k): v for k, v in self.adapter.items()}
            return torch.func.functional_call(self._base, swap, args, strict=False)


def save_adapter(
    directory: str | os.PathLike,
    adapter: dict[str, torch.Tensor],
    rank: int,
    alpha: float,
    target_modules,
    motion_modules: bool,
    base_model: str | os.PathLike | None = None,
) -> Path:
    """Write ``adapter_model.safetensors`` and ``adapter_config.json`` (rank, alpha, targets, base folder)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().float().contiguous() for k, v in adapter.items()}
    atomic_write(
        directory / ADAPTER_WEIGHTS, lambda tmp: save_file(state, str(tmp), metadata={"format": FORMAT})
    )
    meta = {
        "format": FORMAT,
        "rank": int(rank),
        "alpha": float(alpha),
        "target_modules": list(target_modules),
        "motion_modules": bool(motion_modules),
        # relative to the adapter folder, so a copied or cloned tree (adapter beside its base) still loads
        "base_model": None
        if base_model is None
        else os.path.relpath(Path(base_model).resolve(), directory.resolve()),
    }
    write_json(directory / ADAPTER_CONFIG, meta)
    return directory


def is_adapter_folder(directory: str | os.PathLike) -> bool:
    return (Path(directory) / ADAPTER_CONFIG).is_file()


def load_adapter(directory: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """(adapter_config.json as a dict, the adapter tensors) of a folder written by ``save_adapter``."""
    directory = Path(directory)
    cfg_path, weights = directory / ADAPTER_CONFIG, directory / ADAPTER_WEIGHTS
    if not cfg_path.is_file() or not weights.is_file():
        raise ChampCheckpointError(
            f"{directory}: not a LoRA adapter folder (needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS})"
        )
    try:
        meta = json.loads(cfg_path.read_text())
        if meta.get("format") != FORMAT:
            raise KeyError(f"format {meta.get('format')!r} is not {FORMAT!r}")
        meta["rank"], meta["alpha"] = int(meta["rank"]), float(meta["alpha"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ChampCheckpointError(f"{cfg_path}: invalid adapter config ({err})") from err
    return meta, load_file(str(weights))


def load_lora_student(
    adapter_dir: str | os.PathLike,
    base_dir: str | os.PathLike | None = None,
    device="cpu",
    dtype: torch.dtype | None = None,
) -> ChampModel:
    """A plain ChampModel: the base Champ folder (``base_dir``, else the one the adapter records, relative to
    the adapter folder) with the adapter merged into its D-UNet on load. Its ``role`` is "student"."""
    from cosec.models import ChampModel

    meta, adapter = load_adapter(adapter_dir)
    if base_dir is None:
        if meta.get("base_model") is None:
            raise ChampCheckpointError(f"{adapter_dir}: the adapter records no base model; pass base_dir")
        base_dir = Path(adapter_dir) / meta["base_model"]  # relative to the adapter folder (absolute: as is)
    model = ChampModel.from_pretrained(base_dir)
    unet = model.denoising_unet
    if meta["motion_modules"] and not unet.has_motion_modules:
        raise ChampCheckpointError(
            f"{adapter_dir}: adapter has motion-module layers, base {base_dir} has none"
        )
    source = str(Path(adapter_dir) / ADAPTER_WEIGHTS)
    merged = merge_adapter(unet.state_dict(), adapter, meta["alpha"] / meta["rank"], source=source)
    with torch.no_grad():
        unet.load_state_dict(merged, strict=True)
    model = model.to(device)
    model.role = "student"
    return (model.to(dtype) if dtype is not None else model).eval()


def load_student(folder: str | os.PathLike, device="cpu", dtype: torch.dtype | None = None) -> ChampModel:
    """A distilled student folder of either kind: a Champ folder (a full or merged LoRA student, loaded as it
    is), or a LoRA adapter folder alone (merged into the base it records)."""
    from cosec.models import ChampModel
    from cosec.models.checkpoint import CONFIG_NAME

    folder = Path(folder)
    if is_adapter_folder(folder) and not (folder / CONFIG_NAME).is_file():
        return load_lora_student(folder, device=device, dtype=dtype)
    return ChampModel.from_pretrained(folder, device=device, dtype=dtype)
