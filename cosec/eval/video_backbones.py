"""The video feature networks of DisCo's FID-VID and FVD, and the 16-frame segments they are fed.

Both networks are written here from their published architectures, with the module names of the
PyTorch ports whose released files DisCo loads (`tool/metrics/resnet3d.py`, `tool/metrics/inception3d.py`),
so that those files load with strict key matching:

- FID-VID: the 3D ResNet-50 of Hara et al. (CVPR 2018; kenshohara/3D-ResNets-PyTorch), Kinetics-400,
  shortcut type B, 16 x 112 x 112 input with the Kinetics pixel mean subtracted (0-255 scale, no
  scaling); the feature is the 2048-d average pool before the classifier.
- FVD: I3D (Carreira and Zisserman 2017; piergiaj/pytorch-i3d), Inception-v1 inflated to 3D, 400
  classes, 224 x 224 input in [-1, 1], TensorFlow "same" padding; the feature is the 400 logits
  averaged over time.

How DisCo builds the samples (tool/video/gen_gifs_for_fvd.py, tool/metrics/utils.py
`DatasetFVDVideoResize`, tool/metrics/metric_center.py): every window of 16 consecutive frames of a
video (stride 1) becomes one GIF; each GIF's frames are resized with PIL bicubic on float
("F" mode) channels, without rounding or clipping, to 112 or 224; each GIF gives one feature; the
Frechet distance is taken between the feature sets of the generated and the ground-truth windows.
Differences, on purpose: DisCo's window loop stops one start early (`range(begin, end - 16)`), so a
video of exactly 16 frames gives it no window at all; here every full window is used. DisCo's frames
also pass through GIF encoding (a 256-colour palette per frame); here the frames are used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cosec.eval.state_dicts import _load_state, _load_strict

# Frames per segment of both video metrics (DisCo: gen_gifs_for_fvd --gif_frames 16, --sample_duration 16).
SEGMENT_FRAMES = 16
# Per-channel RGB mean subtracted from 0-255 frames before the 3D ResNet (Hara et al.'s ActivityNet mean).
KINETICS_MEAN_RGB = (114.7748, 107.7354, 99.4750)
R3D_SIZE = 112
I3D_SIZE = 224


# ---------------------------------------------------------------- 3D ResNet-50 (Hara et al.)


class _Bottleneck3d(nn.Module):
    """1x1x1 reduce, 3x3x3 (carrying the stride), 1x1x1 expand by 4; projection shortcut when shapes change."""

    def __init__(self, cin: int, planes: int, stride: int):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv3d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(cout)
        # Shortcut type B: a strided 1x1x1 convolution + BN only where channels or size change.
        self.downsample = (
            nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class R3D50(nn.Module):
    """3D ResNet-50, Kinetics-400 (Hara et al.): (B,3,T,H,W) mean-subtracted 0-255 -> (B,2048) pool features.

    The classifier `fc` is built so that the released file loads strictly; DisCo builds the network with
    `last_fc=False`, so the features are the pooled activations and `fc` is never applied. At the protocol
    size (16 x 112 x 112) the last feature map is 1 x 4 x 4 and the mean over it is exactly the port's
    AvgPool3d((1, 4, 4)); other sizes (tests) average the whole map.
    """

    BLOCKS = (3, 4, 6, 3)
    feature_dim = 2048

    def __init__(self, num_classes: int = 400, input_size: int = R3D_SIZE):
        super().__init__()
        self.input_size = input_size  # frames are resized to this before the network (not a weight)
        self.conv1 = nn.Conv3d(3, 64, 7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        cin = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), self.BLOCKS, strict=True)):
            layer = []
            for b in range(blocks):
                layer.append(_Bottleneck3d(cin, planes, stride=2 if (i > 0 and b == 0) else 1))
                cin = planes * 4
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
        self.fc = nn.Linear(cin, num_classes)
        self.eval()

    @classmethod
    def from_file(cls, path: Path) -> R3D50:
        """Load `resnet-50-kinetics.pth` (a dict with `state_dict`, keys prefixed `module.`) strictly."""
        net = cls()
        _load_strict(net, _load_state(path), path)
        return net.requires_grad_(False)

    def normalise(self, frames255: torch.Tensor) -> torch.Tensor:
        """(N,3,T,H,W) float frames in 0-255 -> network input (DisCo: `video - pixel_mean`)."""
        mean = torch.tensor(KINETICS_MEAN_RGB, dtype=frames255.dtype, device=frames255.device)
        return frames255 - mean.view(1, 3, 1, 1, 1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool3d(x, kernel_size=3, stride=2, padding=1)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x.mean(dim=(2, 3, 4))


# ---------------------------------------------------------------- I3D (Inception-v1 inflated)


def _same_pad(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    """TensorFlow "SAME" padding of a (B,C,T,H,W) tensor, the extra pixel (odd total) at the end; zeros."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride), strict=True):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class _Unit3D(nn.Module):
    """Conv3d (no bias) + BN (eps 1e-3) + ReLU with "same" padding; the logits unit has a bias and no BN."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), logits: bool = False):
        super().__init__()
        self.kernel, self.stride, self.logits = tuple(kernel), tuple(stride), logits
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, stride=self.stride, bias=logits)
        if not logits:
            self.bn = nn.BatchNorm3d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_same_pad(x, self.kernel, self.stride))
        return x if self.logits else F.relu(self.bn(x))


def _max_pool_same(
    x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]
) -> torch.Tensor:
    # Zero padding as the port (the inputs are ReLU outputs, >= 0, so it equals TF's -inf padding).
    return F.max_pool3d(_same_pad(x, kernel, stride), kernel, stride)


class _Mixed(nn.Module):
    """Inception block: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | 3x3x3 max pool -> 1x1, concatenated."""

    def __init__(self, cin: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3 = widths
        self.b0 = _Unit3D(cin, c0)
        self.b1a, self.b1b = _Unit3D(cin, c1a), _Unit3D(c1a, c1b, (3, 3, 3))
        self.b2a, self.b2b = _Unit3D(cin, c2a), _Unit3D(c2a, c2b, (3, 3, 3))
        self.b3b = _Unit3D(cin, c3)
        self.out_channels = c0 + c1b + c2b + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = _max_pool_same(x, (3, 3, 3), (1, 1, 1))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(pooled)], 1)


# Branch widths (b0, b1a, b1b, b2a, b2b, b3b) of I3D's mixed blocks (Carreira & Zisserman, Fig. 3).
I3D_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
# Max pools (kernel, stride) that precede a mixed block.
_I3D_POOLS = {
    "Mixed_3b": ((1, 3, 3), (1, 2, 2)),  # MaxPool3d_3a_3x3
    "Mixed_4b": ((3, 3, 3), (2, 2, 2)),  # MaxPool3d_4a_3x3
    "Mixed_5b": ((2, 2, 2), (2, 2, 2)),  # MaxPool3d_5a_2x2
}


class I3D(nn.Module):
    """I3D RGB, Kinetics-400: (B,3,T,H,W) in [-1,1] -> (B,400) logits averaged over time (DisCo's FVD feature).

    At 224 x 224 the last feature map is 7 x 7 and the spatial mean is exactly the port's AvgPool3d((1, 7, 7));
    dropout is the identity in eval mode.
    """

    feature_dim = 400

    def __init__(self, num_classes: int = 400, input_size: int = I3D_SIZE):
        super().__init__()
        self.input_size = input_size
        self.feature_dim = num_classes
        self.Conv3d_1a_7x7 = _Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = _Unit3D(64, 64)
        self.Conv3d_2c_3x3 = _Unit3D(64, 192, (3, 3, 3))
        cin = 192
        for name, widths in I3D_MIXED.items():
            block = _Mixed(cin, widths)
            self.add_module(name, block)
            cin = block.out_channels
        self.logits = _Unit3D(cin, num_classes, logits=True)
        self.eval()

    @classmethod
    def from_file(cls, path: Path) -> I3D:
        """Load `i3d_pretrained_400.pt` (a plain state dict in the pytorch-i3d layout) strictly."""
        net = cls()
        _load_strict(net, _load_state(path), path)
        return net.requires_grad_(False)

    def normalise(self, frames255: torch.Tensor) -> torch.Tensor:
        """(N,3,T,H,W) float frames in 0-255 -> [-1, 1] (DisCo: `video / 127.5 - 1`)."""
        return frames255 / 127.5 - 1

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv3d_1a_7x7(x)
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))  # MaxPool3d_2a_3x3
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        for name in I3D_MIXED:
            if name in _I3D_POOLS:
                x = _max_pool_same(x, *_I3D_POOLS[name])
            x = getattr(self, name)(x)
        x = x.mean(dim=(3, 4), keepdim=True)  # (B,1024,T',1,1)
        return self.logits(x).flatten(2).mean(dim=2)


# ---------------------------------------------------------------- segments and features

VideoNetwork = R3D50 | I3D


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (F,H,W,3) -> float32 (F,size,size,3) on the 0-255 scale: PIL bicubic on each channel as a float
    image, neither rounded nor clipped (clean-fid's `make_resizer("PIL", False, "bicubic", ...)`, DisCo's)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (F,H,W,3), got {frames.dtype} {frames.shape}")
    out = np.empty((len(frames), size, size, 3), np.float32)
    for i, frame in enumerate(frames):
        for c in range(3):
            img = Image.fromarray(frame[:, :, c].astype(np.float32), mode="F")
            out[i, :, :, c] = np.asarray(img.resize((size, size), resample=Image.BICUBIC))
    return out


def segment_starts(num_frames: int, length: int = SEGMENT_FRAMES, stride: int = 1) -> list[int]:
    """First frame of every full window of `length` consecutive frames, `stride` apart (DisCo: stride 1)."""
    if length < 1 or stride < 1:
        raise ValueError(f"segment length and stride must be >= 1, got {length}, {stride}")
    return list(range(0, num_frames - length + 1, stride))


@dataclass(frozen=True)
class VideoFeatures:
    """One video's features, one row per 16-frame segment, or None with the reason."""

    features: np.ndarray | None  # (segments, D) float64
    reason: str | None = None
    frames: int = 0


def video_features(
    frames: np.ndarray,
    network: VideoNetwork,
    *,
    length: int = SEGMENT_FRAMES,
    stride: int = 1,
    batch_size: int = 4,
) -> VideoFeatures:
    """Features of every `length`-frame window of one video (uint8 (F,H,W,3)), as DisCo's FID-VID / FVD.

    Frames are resized to the network's input size, normalised as the network expects, cut into windows
    (`segment_starts`) and passed in batches of `batch_size` windows on the network's device. A video with
    fewer than `length` frames gives no number: `features` is None and `reason` says why.
    """
    frames = np.asarray(frames)
    n = len(frames)
    starts = segment_starts(n, length, stride)
    if not starts:
        return VideoFeatures(
            None,
            f"{n}-frame clip is shorter than the {length}-frame segments of {type(network).__name__}",
            n,
        )
    device = next(network.parameters()).device
    resized = torch.from_numpy(resize_frames(frames, network.input_size)).to(device)
    clip = network.normalise(resized.permute(3, 0, 1, 2)[None])  # (1,3,F,S,S)
    out = []
    for b in range(0, len(starts), batch_size):
        batch = torch.cat([clip[:, :, s : s + length] for s in starts[b : b + batch_size]])
        out.append(network(batch).double().cpu().numpy())
    return VideoFeatures(np.concatenate(out), None, n)


@dataclass
class VideoFrechet:
    """Accumulates a split's generated and ground-truth segment features for one video network.

    `add_video(pred, gt)` takes the paired videos; `result()` gives (value, None) or (None, reason).
    """

    network: VideoNetwork
    metric: str = ""
    batch_size: int = 4
    stride: int = 1  # frames between window starts; DisCo: 1 (every window)
    pred: list[np.ndarray] = field(default_factory=list)
    gt: list[np.ndarray] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def add_video(self, pred: np.ndarray, gt: np.ndarray) -> None:
        fp = video_features(pred, self.network, stride=self.stride, batch_size=self.batch_size)
        fg = video_features(gt, self.network, stride=self.stride, batch_size=self.batch_size)
        if fp.features is None or fg.features is None:
            self.skipped.append(fp.reason or fg.reason or "")
            return
        self.pred.append(fp.features)
        self.gt.append(fg.features)

    def result(self) -> tuple[float | None, str | None]:
        from cosec.eval.metrics import frechet_from_feature_lists

        name = self.metric or type(self.network).__name__
        if not self.pred:
            why = self.skipped[0] if self.skipped else "no videos were added"
            return None, f"{name}: no video gave a {SEGMENT_FRAMES}-frame segment ({why})"
        return frechet_from_feature_lists(self.pred, self.gt, name)
