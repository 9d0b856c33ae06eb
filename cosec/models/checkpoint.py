"""Checkpoints: Champ's released files <-> this project's modules, and the project's own safetensors format.

Champ's files hold plain state dicts with diffusers SD1.5 names (no prefix). The project keeps
those names under a component prefix, so the mapping is a prefix plus three tolerated variants
listed in the Champ manifest README: a reference UNet saved with ``conv_norm_out`` / ``conv_out``
(dropped), CLIP ``position_ids`` (a non-persistent buffer here; ignored on load) and the legacy
VAE mid-block attention names (``query``/``key``/``value``/``proj_attn``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .champ import ChampModel
from .config import GUIDANCE_TYPES, ModelConfig, model_config

FORMAT = "cosec-champ/1"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"

_LEGACY_VAE = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
_LEGACY_VAE_RE = re.compile(
    r"^(encoder|decoder)\.mid_block\.attentions\.0\.(query|key|value|proj_attn)\.(weight|bias)$"
)
_REF_HEAD = ("conv_norm_out.weight", "conv_norm_out.bias", "conv_out.weight", "conv_out.bias")


class ChampCheckpointError(ValueError):
    """A Champ or project checkpoint file does not fit the model; the message names the file and the keys."""


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


def _short(keys, limit: int = 12) -> str:
    keys = list(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


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
            out.append(f"unexpected keys ({len(self.unknown)}): {_short(self.unknown)}")
        if self.shape_mismatch:
            out.append(f"shape mismatches ({len(self.shape_mismatch)}): {_short(self.shape_mismatch)}")
        if self.uncovered:
            out.append(f"missing keys ({len(self.uncovered)}): {_short(self.uncovered)}")
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


# ---------------------------------------------------------------------------------------------- reading files


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
        raise ChampCheckpointError(f"{path}: cannot read state dict ({type(err).__name__}: {err})") from err
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
        raise ChampCheckpointError(f"{folder}: missing Champ files: {', '.join(missing)}")
    return paths


def load_champ(
    folder: str | os.PathLike,
    config: str | ModelConfig = "sd15",
    dtype: torch.dtype = torch.float32,
    motion_modules: bool | None = None,
    device: str | torch.device = "cpu",
) -> ChampModel:
    """Load a released Champ folder (7 .pth files, image_encoder/, sd-vae-ft-mse/, unet/config.json).

    Files may be fp32 or fp16; tensors are cast to ``dtype``. ``motion_modules=None`` loads the
    motion modules when ``motion_module.pth`` is present. Any missing, unexpected or mis-shaped
    key raises ChampCheckpointError naming the file and the keys.
    """
    folder = Path(folder)
    cfg = model_config(config) if isinstance(config, str) else config
    if motion_modules is None:
        motion_modules = (folder / "motion_module.pth").is_file()
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
        for key, tensor in sd.items():
            target = spec.to_project(key)
            if target is None or target not in persistent:
                continue  # tolerated variant, or a non-persistent buffer (CLIP position_ids)
            if not (tensor.is_floating_point() or tensor.dtype == torch.int64):
                raise ChampCheckpointError(
                    f"{path}: key {key} has dtype {tensor.dtype}, expected a float tensor"
                )
            full[f"{spec.component}.{target}"] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    _assign(model, full, source=str(folder))
    return model.to(device).eval()


def _assign(model: ChampModel, state: dict[str, torch.Tensor], source: str) -> None:
    """Load into a meta-built model without a second copy, then rebuild non-persistent buffers."""
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise ChampCheckpointError(f"{source}: {err}") from err
    emb = model.image_encoder.vision_model.embeddings
    if emb.position_ids.is_meta:
        emb.position_ids = torch.arange(emb.num_positions).expand((1, -1))
    leftover = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover:
        raise ChampCheckpointError(f"{source}: tensors left unloaded: {_short(leftover)}")


# ---------------------------------------------------------------------------------------------- writing files


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_json(path: Path, data: dict) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1, sort_keys=True)))


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
        _atomic_write(path, lambda tmp, sd=sd: torch.save(sd, tmp))
    _write_json(folder / "unet" / "config.json", {"_class_name": "UNet2DConditionModel", **cfg.unet})
    clip = model.image_encoder.config.to_dict()
    _write_json(
        folder / "image_encoder" / "config.json", {**clip, "architectures": ["CLIPVisionModelWithProjection"]}
    )
    _write_json(folder / "sd-vae-ft-mse" / "config.json", {"_class_name": "AutoencoderKL", **cfg.vae})
    return folder


def save_pretrained(model: ChampModel, directory: str | os.PathLike) -> Path:
    """The project's checkpoint: ``config.json`` (model config + motion flag) and ``model.safetensors``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": FORMAT}))
    meta = {
        "format": FORMAT,
        "model_config": model.config.to_dict(),
        "motion_modules": model.denoising_unet.has_motion_modules,
        "dtype": str(model.dtype).removeprefix("torch."),
    }
    _write_json(directory / CONFIG_NAME, meta)
    return directory


def from_pretrained(
    directory: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> ChampModel:
    """Load a checkpoint written by ``save_pretrained``."""
    directory = Path(directory)
    cfg_path, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not cfg_path.is_file() or not weights.is_file():
        raise ChampCheckpointError(
            f"{directory}: not a cosec checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    try:
        meta = json.loads(cfg_path.read_text())
        cfg = ModelConfig.from_dict(meta["model_config"])
        motion = bool(meta["motion_modules"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ChampCheckpointError(f"{cfg_path}: invalid checkpoint config ({err})") from err
    try:
        state = load_file(str(weights))
    except Exception as err:
        raise ChampCheckpointError(f"{weights}: cannot read ({type(err).__name__}: {err})") from err
    model = ChampModel.build(cfg, motion_modules=motion, device="meta")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatch = [
        f"{k}: {list(state[k].shape)} vs {list(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatch:
        parts = [
            f"{label} ({len(v)}): {_short(v)}"
            for label, v in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", mismatch),
            )
            if v
        ]
        raise ChampCheckpointError(f"{weights}: " + "; ".join(parts))
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    _assign(model, state, source=str(weights))
    return model.to(device).eval()
