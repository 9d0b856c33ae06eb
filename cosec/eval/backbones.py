"""Pretrained feature networks of the DisCo protocol, loaded only from files the user supplies.

No weights are downloaded and no stand-in network is ever used: when a file is missing the metric is
reported as missing (None) with the reason. The networks are written here from their published
architectures so that the official state dicts load with strict key matching.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cosec.eval.state_dicts import (
    KeyMatch,
    WeightsRejected,
    _load_state,
    _load_strict,
    _one_line,
)

# Files each metric needs inside the user's weights folder.
METRIC_FILES: dict[str, tuple[str, ...]] = {
    # torchvision's ImageNet VGG16 + the LPIPS v0.1 linear heads (lpips/weights/v0.1/vgg.pth, renamed).
    "lpips": ("vgg16-397923af.pth", "lpips_vgg_v0.1.pth"),
    "fid": ("pt_inception-2015-12-05-6726825d.pth",),
    "fid_vid": ("resnet-50-kinetics.pth",),
    "fvd": ("i3d_pretrained_400.pt",),
}
# Metrics whose feature network this package builds (all four: LPIPS, FID here, FID-VID / FVD in video_backbones).
IMPLEMENTED = frozenset({"lpips", "fid", "fid_vid", "fvd"})


@dataclass(frozen=True)
class BackboneWeights:
    """The user's weights folder (None: no folder given) and the per-metric file lookup."""

    folder: Path | None = None

    def paths(self, metric: str) -> tuple[Path, ...]:
        if metric not in METRIC_FILES:
            raise KeyError(f"unknown backbone metric {metric!r}; known: {sorted(METRIC_FILES)}")
        base = Path(self.folder) if self.folder is not None else Path()
        return tuple(base / name for name in METRIC_FILES[metric])

    def missing_reason(self, metric: str) -> str | None:
        """None when every file of the metric is present, else why not (reported beside the null value).

        A present file can still be rejected when it is loaded: `load` reports that reason.
        """
        paths = self.paths(metric)
        if self.folder is None:
            return f"no weights folder given ({metric} needs {', '.join(p.name for p in paths)})"
        absent = [p.name for p in paths if not p.is_file()]
        if absent:
            return f"weights file not found: {', '.join(absent)} not in {self.folder}"
        if metric not in IMPLEMENTED:
            return f"{metric} feature network is not implemented in cosec (weights present but unused)"
        return None

    def load(self, metric: str, device: torch.device | str = "cpu") -> tuple[nn.Module | None, str | None]:
        """(network in eval mode on device, None), or (None, the true reason): no folder, file absent, or
        file rejected (unreadable, or its keys / shapes do not match the network, naming a few)."""
        reason = self.missing_reason(metric)
        if reason is not None:
            return None, reason
        paths = self.paths(metric)
        try:
            if metric == "lpips":
                net: nn.Module = LPIPSVGG.from_files(*paths)
            elif metric == "fid":
                net = FIDInceptionV3.from_file(*paths)
            else:
                from cosec.eval.video_backbones import I3D, R3D50

                net = (R3D50 if metric == "fid_vid" else I3D).from_file(*paths)
        except ValueError as err:
            return None, f"weights file rejected: {_one_line(err)}"
        return net.to(device), None


# ---------------------------------------------------------------- LPIPS (VGG)

# (in, out) of VGG16's 13 convolutions, with the torchvision `features` index of each and where it pools.
_VGG16_CONVS = [
    (3, 64),
    (64, 64),
    "M",
    (64, 128),
    (128, 128),
    "M",
    (128, 256),
    (256, 256),
    (256, 256),
    "M",
    (256, 512),
    (512, 512),
    (512, 512),
    "M",
    (512, 512),
    (512, 512),
    (512, 512),
]
# features indices after which LPIPS taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
_LPIPS_TAPS = (3, 8, 15, 22, 29)
_LPIPS_CHANNELS = (64, 128, 256, 512, 512)


class _LinHead(nn.Module):
    """LPIPS's per-layer 1x1 weighting (a dropout then a bias-free conv: key `model.1.weight`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


class LPIPSVGG(nn.Module):
    """LPIPS v0.1 with the VGG16 trunk (Zhang et al. 2018), in eval mode."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        for spec in _VGG16_CONVS:
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(spec[0], spec[1], 3, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        for i, c in enumerate(_LPIPS_CHANNELS):
            self.add_module(f"lin{i}", _LinHead(c))
        self.register_buffer(
            "shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.eval()

    @classmethod
    def from_files(cls, vgg_path: Path, lin_path: Path) -> LPIPSVGG:
        net = cls()
        net.load_vgg(_load_state(vgg_path), vgg_path)
        _load_strict(net.heads(), _load_state(lin_path), lin_path, name="LPIPS v0.1 heads")
        return net.requires_grad_(False)

    def heads(self) -> nn.ModuleDict:
        """The five linear heads, keyed as in the LPIPS v0.1 file (`lin0.model.1.weight`, ...)."""
        return nn.ModuleDict({f"lin{i}": getattr(self, f"lin{i}") for i in range(5)})

    def load_vgg(self, state: dict[str, torch.Tensor], path: Path) -> KeyMatch:
        """Load torchvision's VGG16 file into `features` strictly; its `classifier.*` keys are not used."""
        ignored = [k for k in state if k.startswith("classifier.")]
        holder = nn.Module()  # compares the file's own names (`features.0.weight`, ...) with the trunk's
        holder.features = self.features
        used = {k: v for k, v in state.items() if k not in ignored}
        return _load_strict(holder, used, path, ignored, name="torchvision VGG16 features")

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _LPIPS_TAPS:
                out.append(x)
        return out

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) images -> (B,) distances. Inputs go to the scaling layer as given: DisCo feeds [0,1]
        images where LPIPS expects [-1,1]; callers reproduce that by passing [0,1]."""
        fa, fb = self._taps((a - self.shift) / self.scale), self._taps((b - self.shift) / self.scale)
        total = torch.zeros(a.shape[0], device=a.device)
        for i, (xa, xb) in enumerate(zip(fa, fb, strict=True)):
            xa = xa / (xa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            xb = xb / (xb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total += getattr(self, f"lin{i}").model((xa - xb) ** 2).mean(dim=(1, 2, 3))
        return total


# ---------------------------------------------------------------- InceptionV3 pool3 (pytorch-fid)


class _Conv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg3(x):
    # The FID Inception (TF graph) averages without counting padding.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):
    def __init__(self, cin: int, pool: int):
        super().__init__()
        self.branch1x1 = _Conv(cin, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = _Conv(cin, 48, 1), _Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2, self.branch3x3dbl_3 = _Conv(64, 96, 3, padding=1), _Conv(96, 96, 3, padding=1)
        self.branch_pool = _Conv(cin, pool, 1)

    def forward(self, x):
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(_avg3(x)),
            ],
            1,
        )


class _BlockB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = _Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2, self.branch3x3dbl_3 = _Conv(64, 96, 3, padding=1), _Conv(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat(
            [
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                F.max_pool2d(x, 3, stride=2),
            ],
            1,
        )


class _BlockC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.branch1x1 = _Conv(cin, 192, 1)
        self.branch7x7_1, self.branch7x7_2, self.branch7x7_3 = (
            _Conv(cin, c7, 1),
            _Conv(c7, c7, **row),
            _Conv(c7, 192, **col),
        )
        self.branch7x7dbl_1 = _Conv(cin, c7, 1)
        self.branch7x7dbl_2, self.branch7x7dbl_3 = _Conv(c7, c7, **col), _Conv(c7, c7, **row)
        self.branch7x7dbl_4, self.branch7x7dbl_5 = _Conv(c7, c7, **col), _Conv(c7, 192, **row)
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x):
        dbl = x
        for i in range(1, 6):
            dbl = getattr(self, f"branch7x7dbl_{i}")(dbl)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
                dbl,
                self.branch_pool(_avg3(x)),
            ],
            1,
        )


class _BlockD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = _Conv(cin, 192, 1), _Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _Conv(cin, 192, 1)
        self.branch7x7x3_2 = _Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, 3, stride=2)

    def forward(self, x):
        b = x
        for i in range(1, 5):
            b = getattr(self, f"branch7x7x3_{i}")(b)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b, F.max_pool2d(x, 3, stride=2)], 1)


class _BlockE(nn.Module):
    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool  # the last block (Mixed_7c) of the FID graph max-pools its pool branch
        self.branch1x1 = _Conv(cin, 320, 1)
        self.branch3x3_1 = _Conv(cin, 384, 1)
        self.branch3x3_2a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1, self.branch3x3dbl_2 = _Conv(cin, 448, 1), _Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        d3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(b3),
                self.branch3x3_2b(b3),
                self.branch3x3dbl_3a(d3),
                self.branch3x3dbl_3b(d3),
                self.branch_pool(pooled),
            ],
            1,
        )


class FIDInceptionV3(nn.Module):
    """The FID variant of InceptionV3 (pytorch-fid's port of the TF 2015-12-05 graph), up to pool3."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = _BlockA(192, 32), _BlockA(256, 64), _BlockA(288, 64)
        self.Mixed_6a = _BlockB(288)
        self.Mixed_6b, self.Mixed_6c = _BlockC(768, 128), _BlockC(768, 160)
        self.Mixed_6d, self.Mixed_6e = _BlockC(768, 160), _BlockC(768, 192)
        self.Mixed_7a = _BlockD(768)
        self.Mixed_7b, self.Mixed_7c = _BlockE(1280, max_pool=False), _BlockE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)  # 1008-way TF classifier: only loaded (strict keys), never used
        self.eval()

    @classmethod
    def from_file(cls, path: Path) -> FIDInceptionV3:
        net = cls()
        _load_strict(net, _load_state(path), path)
        return net.requires_grad_(False)

    @torch.no_grad()
    def forward(self, images01: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) RGB in [0,1] -> (B,2048) pool3 features (bilinear resize to 299, scale to [-1,1])."""
        x = F.interpolate(images01, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def to_tensor01(frames, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N,H,W,3) numpy frames -> float (N,3,H,W) in [0,1] (torchvision ToTensor's scaling)."""
    t = torch.as_tensor(frames)
    if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (N,H,W,3), got {t.dtype} {tuple(t.shape)}")
    return t.to(device).permute(0, 3, 1, 2).float().div(255.0)


# Every backbone file, in the order `cosec eval check-weights` reports them.
BACKBONE_FILES = tuple(name for files in METRIC_FILES.values() for name in files)


def check_file(path: Path) -> KeyMatch:
    """Load one backbone file (named as in METRIC_FILES) into its network with strict matching.

    Returns the key match, fully loaded or not; raises ValueError when the file cannot be read as a state
    dict and KeyError for a file name that is not a backbone file.
    """
    path = Path(path)
    state = _load_state(path)
    name = path.name
    try:
        if name == "vgg16-397923af.pth":
            return LPIPSVGG().load_vgg(state, path)
        if name == "lpips_vgg_v0.1.pth":
            return _load_strict(LPIPSVGG().heads(), state, path, name="LPIPS v0.1 heads")
        if name == "pt_inception-2015-12-05-6726825d.pth":
            return _load_strict(FIDInceptionV3(), state, path)
        from cosec.eval.video_backbones import I3D, R3D50

        if name == "resnet-50-kinetics.pth":
            return _load_strict(R3D50(), state, path)
        if name == "i3d_pretrained_400.pt":
            return _load_strict(I3D(), state, path)
    except WeightsRejected as err:
        return err.match
    raise KeyError(f"{name} is not a backbone file; known: {', '.join(BACKBONE_FILES)}")
