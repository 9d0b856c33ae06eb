"""Champ's released checkpoint files <-> this project's modules (import, export, manifest checks).

Champ's files hold plain state dicts with diffusers SD1.5 names (no prefix). The project keeps
those names under a component prefix, so the mapping is a prefix plus three tolerated variants
listed in the Champ manifest README: a reference UNet saved with ``conv_norm_out`` / ``conv_out``
(dropped), CLIP ``position_ids`` (a non-persistent buffer here; ignored on load) and the legacy
VAE mid-block attention names (``query``/``key``/``value``/``proj_attn``).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from cosec.atomic import atomic_write

from .champ import ChampModel, check_finite
from .checkpoint import ChampCheckpointError, assign_state, short_list, write_json
from .config import GUIDANCE_TYPES, ModelConfig, model_config

__all__ = [
    "ChampCheckpointError",
    "ChampFile",
    "FileCheck",
    "champ_files",
    "champ_paths",
    "champ_state_dicts",
    "check_keys",
    "check_manifest",
    "export_champ",
    "load_champ",
    "read_state_dict",
]

_LEGACY_VAE = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
_LEGACY_VAE_RE = re.compile(
    r"^(encoder|decoder)\.mid_block\.attentions\.0\.(query|key|value|proj_attn)\.(weight|bias)$"
)
_REF_HEAD = ("conv_norm_out.weight", "conv_norm_out.bias", "conv_out.weight", "conv_out.bias")


def _is_motion(key: str) -> bool:
    return ".motion_modules." in key or key.startswith("motion_modules.")


@dataclass(frozen=True)
class ChampFile:
    """One Champ state dict: which ChampModel component it fills and under which key prefix."""

    name: str  # file stem: denoising_unet, motion_module, reference_unet, guidance_encoder_<type>, image_encoder, vae
    component: str  # ChampModel attribute
    prefix: str  # prepended to Champ's keys inside the component
    owns: Callable[[str], bool]  # which component keys (prefix included) this file must provide

    def to_project(self, key: str) -> str | None:
        """Champ key -> component key; None for a tolerated key that is dropped."""
        if self.name == "reference_unet" and key in _REF_HEAD:
            return None
        if self.name == "vae":
            m = _LEGACY_VAE_RE.match(key)
            if m:
                key = f"{m.group(1)}.mid_block.attentions.0.{_LEGACY_VAE[m.group(2)]}.{m.group(3)}"
        return self.prefix + key

    def to_champ(self, key: str, legacy_vae_names: bool = False) -> str:
        key = key[len(self.prefix) :]
        if legacy_vae_names and self.name == "vae":
            for old, new in _LEGACY_VAE.items():
                key = re.sub(
                    rf"^((?:en|de)coder\.mid_block\.attentions\.0)\.{re.escape(new)}\.", rf"\1.{old}.", key
                )
        return key


def champ_files(guidance_types: tuple[str, ...] = GUIDANCE_TYPES) -> dict[str, ChampFile]:
    files = [
        ChampFile("denoising_unet", "denoising_unet", "unet.", lambda k: not _is_motion(k)),
        ChampFile("motion_module", "denoising_unet", "unet.", _is_motion),
        ChampFile("reference_unet", "reference_unet", "unet.", lambda k: True),
        ChampFile("image_encoder", "image_encoder", "", lambda k: True),
        ChampFile("vae", "vae", "", lambda k: True),
    ]
    for t in guidance_types:
        prefix = f"encoders.{t}."
        files.append(
            ChampFile(
                f"guidance_encoder_{t}", "guidance_encoders", prefix, lambda k, p=prefix: k.startswith(p)
            )
        )
    return {f.name: f for f in files}


def _tensors_of(module: nn.Module) -> dict[str, torch.Size]:
    """Shapes of every parameter and buffer, persistent or not."""
    shapes = {n: p.shape for n, p in module.named_parameters()}
    shapes.update({n: b.shape for n, b in module.named_buffers()})
    return shapes


@dataclass
class FileCheck:
    name: str
    total: int
    matched: int
    tolerated: list[str]
    unknown: list[str]  # file keys with no project tensor
    shape_mismatch: list[str]  # "key: file [..] vs project [..]"
    uncovered: list[str]  # project keys this file should provide but does not

    @property
    def ok(self) -> bool:
        return not (self.unknown or self.shape_mismatch or self.uncovered)

    def problems(self) -> list[str]:
        out = []
        if self.unknown:
            out.append(f"unexpected keys ({len(self.unknown)}): {short_list(self.unknown)}")
        if self.shape_mismatch:
            out.append(f"shape mismatches ({len(self.shape_mismatch)}): {short_list(self.shape_mismatch)}")
        if self.uncovered:
            out.append(f"missing keys ({len(self.uncovered)}): {short_list(self.uncovered)}")
        return out


def check_keys(model: ChampModel, spec: ChampFile, shapes: dict[str, tuple[int, ...]]) -> FileCheck:
    """Compare a Champ file's {key: shape} with the model's tensors through the key mapping."""
    component = getattr(model, spec.component)
    project = _tensors_of(component)
    persistent = set(component.state_dict().keys())
    tolerated, unknown, mismatch, covered = [], [], [], set()
    for key, shape in shapes.items():
        target = spec.to_project(key)
        if target is None:
            tolerated.append(key)
        elif target not in project:
            unknown.append(key)
        elif tuple(project[target]) != tuple(shape):
            mismatch.append(f"{key}: file {list(shape)} vs project {list(project[target])}")
        else:
            covered.add(target)
    uncovered = [k for k in persistent if spec.owns(k) and k not in covered]
    matched = len(shapes) - len(unknown) - len(mismatch)
    return FileCheck(spec.name, len(shapes), matched, tolerated, unknown, mismatch, sorted(uncovered))


def check_manifest(directory: str | os.PathLike, config: str | ModelConfig = "sd15") -> list[FileCheck]:
    """Check every ``<file>.json`` manifest in ``directory`` against the model built on the meta device."""
    directory = Path(directory)
    cfg = model_config(config) if isinstance(config, str) else config
    files = champ_files(cfg.guidance_types)
    manifests = sorted(p for p in directory.glob("*.json") if p.stem in files)
    if not manifests:
        raise ChampCheckpointError(f"{directory}: no Champ manifest files ({', '.join(sorted(files))}.json)")
    model = ChampModel.build(cfg, motion_modules=True, device="meta")
    results = []
    for path in manifests:
        try:
            data = json.loads(path.read_text())
            shapes = {k: tuple(v["shape"]) for k, v in data.items()}
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ChampCheckpointError(f"{path}: not a key/shape manifest ({err})") from err
        results.append(check_keys(model, files[path.stem], shapes))
    return results


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:200]


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A plain state dict from .pth/.bin (``weights_only=True``) or .safetensors; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ChampCheckpointError(f"{path}: file not found")
    try:
        if path.suffix == ".safetensors":
            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle with code, wrong format: report which file
        if isinstance(err, pickle.UnpicklingError) and "weights_only" in str(err):
            why = (
                "it holds Python objects besides tensors (a pickle that could run code); refused, nothing ran"
            )
        else:  # torch's own message for a text file is "KeyError: 101" (the byte 'e'): say what it means
            why = f"not a PyTorch or safetensors weights file ({type(err).__name__}: {_first_line(err)})"
        raise ChampCheckpointError(f"{path}: cannot read state dict: {why}; replace the file") from err
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ChampCheckpointError(f"{path}: expected a dict of tensors (a plain state dict)")
    return sd


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise ChampCheckpointError(f"{folder}: none of {', '.join(names)} found")


def _check_config(path: Path, expected: dict, keys: tuple[str, ...]) -> None:
    if not path.is_file():
        raise ChampCheckpointError(f"{path}: file not found")
    try:
        found = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ChampCheckpointError(f"{path}: invalid JSON ({err})") from err
    bad = [
        f"{k}={found.get(k)!r} (expected {expected[k]!r})"
        for k in keys
        if k in expected and found.get(k) != expected[k]
    ]
    if bad:
        raise ChampCheckpointError(f"{path}: config does not match the model: {', '.join(bad)}")


def champ_paths(folder: Path, cfg: ModelConfig, motion_modules: bool) -> dict[str, Path]:
    """The file holding each Champ state dict in a released Champ folder."""
    paths = {name: folder / f"{name}.pth" for name in champ_files(cfg.guidance_types)}
    paths["image_encoder"] = _first_existing(
        folder / "image_encoder", ("model.safetensors", "pytorch_model.bin")
    )
    paths["vae"] = _first_existing(
        folder / "sd-vae-ft-mse", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
    )
    if not motion_modules:
        del paths["motion_module"]
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        hint = ""
        if "motion_module" in paths and not paths["motion_module"].is_file():
            hint = (
                "; motion_module.pth is needed for video (stage-2 / phase-2) models: for an image-only model "
                "pass motion_modules=False (cosec champ import --motion no)"
            )
        raise ChampCheckpointError(f"{folder}: missing Champ files: {', '.join(missing)}{hint}")
    return paths


def load_champ(
    folder: str | os.PathLike,
    config: str | ModelConfig = "sd15",
    dtype: torch.dtype = torch.float32,
    motion_modules: bool | None = True,
    device: str | torch.device = "cpu",
) -> ChampModel:
    """Load a released Champ folder (7 .pth files, image_encoder/, sd-vae-ft-mse/, unet/config.json).

    Files may be fp32 or fp16; tensors are cast to ``dtype``. ``motion_modules=True`` (the default)
    needs ``motion_module.pth``; ``False`` builds an image-only model; ``None`` loads the motion modules
    when the file is present and warns when it is not. Any missing, unexpected or mis-shaped key, and
    any NaN/inf weight, raises ChampCheckpointError naming the file and the keys.
    """
    folder = Path(folder)
    cfg = model_config(config) if isinstance(config, str) else config
    if motion_modules is None:
        motion_modules = (folder / "motion_module.pth").is_file()
        if not motion_modules:
            warnings.warn(
                f"{folder}: no motion_module.pth: loading an image-only model (no motion modules)",
                stacklevel=2,
            )
    _check_config(
        folder / "unet" / "config.json",
        cfg.unet,
        (
            "block_out_channels",
            "cross_attention_dim",
            "layers_per_block",
            "attention_head_dim",
            "down_block_types",
        ),
    )
    _check_config(
        folder / "image_encoder" / "config.json",
        cfg.clip,
        ("hidden_size", "num_hidden_layers", "projection_dim", "patch_size", "image_size"),
    )
    _check_config(
        folder / "sd-vae-ft-mse" / "config.json", cfg.vae, ("block_out_channels", "latent_channels")
    )
    paths = champ_paths(folder, cfg, motion_modules)
    model = ChampModel.build(cfg, motion_modules=motion_modules, device="meta")
    files = champ_files(cfg.guidance_types)
    full: dict[str, torch.Tensor] = {}
    for name, path in paths.items():
        spec = files[name]
        sd = read_state_dict(path)
        check = check_keys(model, spec, {k: tuple(v.shape) for k, v in sd.items()})
        if not check.ok:
            raise ChampCheckpointError(
                f"{path}: does not fit the {cfg.name} model: " + "; ".join(check.problems())
            )
        persistent = set(getattr(model, spec.component).state_dict().keys())
        check_finite(sd, str(path))
        cast = {}
        for key, tensor in sd.items():
            target = spec.to_project(key)
            if target is None or target not in persistent:
                continue  # tolerated variant, or a non-persistent buffer (CLIP position_ids)
            if not (tensor.is_floating_point() or tensor.dtype == torch.int64):
                raise ChampCheckpointError(
                    f"{path}: key {key} has dtype {tensor.dtype}, expected a float tensor"
                )
            cast[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
            full[f"{spec.component}.{target}"] = cast[key]
        if any(t.dtype != sd[k].dtype for k, t in cast.items()):  # finite in the file, may overflow in fp16
            check_finite(cast, str(path), dtype)
    assign_state(model, full, source=str(folder))
    return model.to(device).eval()


def champ_state_dicts(
    model: ChampModel, legacy_vae_names: bool = False
) -> dict[str, dict[str, torch.Tensor]]:
    """The inverse mapping: Champ file stem -> state dict with Champ's key names."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name, spec in champ_files(model.config.guidance_types).items():
        sd = getattr(model, spec.component).state_dict()
        part = {spec.to_champ(k, legacy_vae_names): v for k, v in sd.items() if spec.owns(k)}
        if part:
            out[name] = part
    return out


def export_champ(model: ChampModel, folder: str | os.PathLike, legacy_vae_names: bool = False) -> Path:
    """Write ``model`` as a Champ folder (.pth state dicts + image_encoder/, sd-vae-ft-mse/, unet/ configs)."""
    folder = Path(folder)
    cfg = model.config
    for name, sd in champ_state_dicts(model, legacy_vae_names).items():
        sd = {k: v.detach().cpu().contiguous() for k, v in sd.items()}
        if name == "image_encoder":
            path = folder / "image_encoder" / "pytorch_model.bin"
        elif name == "vae":
            path = folder / "sd-vae-ft-mse" / "diffusion_pytorch_model.bin"
        else:
            path = folder / f"{name}.pth"
        atomic_write(path, lambda tmp, sd=sd: torch.save(sd, tmp))
    write_json(folder / "unet" / "config.json", {"_class_name": "UNet2DConditionModel", **cfg.unet})
    clip = model.image_encoder.config.to_dict()
    write_json(
        folder / "image_encoder" / "config.json", {**clip, "architectures": ["CLIPVisionModelWithProjection"]}
    )
    write_json(folder / "sd-vae-ft-mse" / "config.json", {"_class_name": "AutoencoderKL", **cfg.vae})
    return folder
