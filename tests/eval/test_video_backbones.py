"""FID-VID / FVD networks, 16-frame segments, strict loading of all five backbone files, check-weights.

The official key layouts are generated here from the published architectures (torchvision VGG16, LPIPS
v0.1 heads, pytorch-fid InceptionV3, kenshohara 3D ResNet-50, piergiaj I3D), independently of the
modules under test. Tensors are saved as expanded one-element storages (a distinct constant per key), so
the files are tiny while names and shapes are the real ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg

from cosec.cli import build_parser
from cosec.eval.backbones import (
    BACKBONE_FILES,
    IMPLEMENTED,
    LPIPSVGG,
    METRIC_FILES,
    BackboneWeights,
    FIDInceptionV3,
    check_file,
)
from cosec.eval.metrics import frechet_from_feature_lists
from cosec.eval.video_backbones import (
    I3D,
    KINETICS_MEAN_RGB,
    R3D50,
    SEGMENT_FRAMES,
    VideoFrechet,
    resize_frames,
    segment_starts,
    video_features,
)

torch.set_num_threads(1)

BN = ("weight", "bias", "running_mean", "running_var")

# ---------------------------------------------------------------- official layouts (name -> shape)


def vgg16_layout() -> dict[str, tuple[int, ...]]:
    """torchvision vgg16: 13 convs at these `features` indices, then the 3-layer classifier."""
    convs = [
        (0, 3, 64),
        (2, 64, 64),
        (5, 64, 128),
        (7, 128, 128),
        (10, 128, 256),
        (12, 256, 256),
        (14, 256, 256),
    ]
    convs += [(17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512)]
    out: dict[str, tuple[int, ...]] = {}
    for i, cin, cout in convs:
        out[f"features.{i}.weight"], out[f"features.{i}.bias"] = (cout, cin, 3, 3), (cout,)
    for i, cin, cout in ((0, 25088, 4096), (3, 4096, 4096), (6, 4096, 1000)):
        out[f"classifier.{i}.weight"], out[f"classifier.{i}.bias"] = (cout, cin), (cout,)
    return out


def lpips_layout() -> dict[str, tuple[int, ...]]:
    return {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))}


def inception_layout() -> dict[str, tuple[int, ...]]:
    """pytorch-fid FIDInceptionA..E (torchvision InceptionV3 names, no AuxLogits) + the 1008-way fc."""
    out: dict[str, tuple[int, ...]] = {}

    def conv(name, cin, cout, k):
        kh, kw = (k, k) if isinstance(k, int) else k
        out[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for p in BN:
            out[f"{name}.bn.{p}"] = (cout,)

    for name, cin, cout, k in (("1a", 3, 32, 3), ("2a", 32, 32, 3), ("2b", 32, 64, 3), ("3b", 64, 80, 1)):
        conv(f"Conv2d_{name}_{k}x{k}", cin, cout, k)
    conv("Conv2d_4a_3x3", 80, 192, 3)
    for name, cin, pool in (("5b", 192, 32), ("5c", 256, 64), ("5d", 288, 64)):
        m = f"Mixed_{name}"
        conv(f"{m}.branch1x1", cin, 64, 1)
        conv(f"{m}.branch5x5_1", cin, 48, 1), conv(f"{m}.branch5x5_2", 48, 64, 5)
        conv(f"{m}.branch3x3dbl_1", cin, 64, 1), conv(f"{m}.branch3x3dbl_2", 64, 96, 3)
        conv(f"{m}.branch3x3dbl_3", 96, 96, 3), conv(f"{m}.branch_pool", cin, pool, 1)
    conv("Mixed_6a.branch3x3", 288, 384, 3), conv("Mixed_6a.branch3x3dbl_1", 288, 64, 1)
    conv("Mixed_6a.branch3x3dbl_2", 64, 96, 3), conv("Mixed_6a.branch3x3dbl_3", 96, 96, 3)
    for name, c7 in (("6b", 128), ("6c", 160), ("6d", 160), ("6e", 192)):
        m = f"Mixed_{name}"
        conv(f"{m}.branch1x1", 768, 192, 1)
        conv(f"{m}.branch7x7_1", 768, c7, 1), conv(f"{m}.branch7x7_2", c7, c7, (1, 7))
        conv(f"{m}.branch7x7_3", c7, 192, (7, 1)), conv(f"{m}.branch7x7dbl_1", 768, c7, 1)
        for j, (k, co) in enumerate((((7, 1), c7), ((1, 7), c7), ((7, 1), c7), ((1, 7), 192))):
            conv(f"{m}.branch7x7dbl_{j + 2}", c7, co, k)
        conv(f"{m}.branch_pool", 768, 192, 1)
    conv("Mixed_7a.branch3x3_1", 768, 192, 1), conv("Mixed_7a.branch3x3_2", 192, 320, 3)
    conv("Mixed_7a.branch7x7x3_1", 768, 192, 1), conv("Mixed_7a.branch7x7x3_2", 192, 192, (1, 7))
    conv("Mixed_7a.branch7x7x3_3", 192, 192, (7, 1)), conv("Mixed_7a.branch7x7x3_4", 192, 192, 3)
    for name, cin in (("7b", 1280), ("7c", 2048)):
        m = f"Mixed_{name}"
        conv(f"{m}.branch1x1", cin, 320, 1), conv(f"{m}.branch3x3_1", cin, 384, 1)
        conv(f"{m}.branch3x3_2a", 384, 384, (1, 3)), conv(f"{m}.branch3x3_2b", 384, 384, (3, 1))
        conv(f"{m}.branch3x3dbl_1", cin, 448, 1), conv(f"{m}.branch3x3dbl_2", 448, 384, 3)
        conv(f"{m}.branch3x3dbl_3a", 384, 384, (1, 3)), conv(f"{m}.branch3x3dbl_3b", 384, 384, (3, 1))
        conv(f"{m}.branch_pool", cin, 192, 1)
    out["fc.weight"], out["fc.bias"] = (1008, 2048), (1008,)
    return out


def r3d50_layout() -> dict[str, tuple[int, ...]]:
    """kenshohara 3D-ResNets-PyTorch resnet50 (Bottleneck, [3,4,6,3], shortcut B), 400 classes."""
    out: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7, 7)}
    out.update({f"bn1.{p}": (64,) for p in BN})
    cin = 64
    for layer, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True), start=1):
        for b in range(blocks):
            pre = f"layer{layer}.{b}"
            shapes = [(planes, cin, 1, 1, 1), (planes, planes, 3, 3, 3), (planes * 4, planes, 1, 1, 1)]
            for j, shape in enumerate(shapes, start=1):
                out[f"{pre}.conv{j}.weight"] = shape
                out.update({f"{pre}.bn{j}.{p}": (shape[0],) for p in BN})
            if b == 0:
                out[f"{pre}.downsample.0.weight"] = (planes * 4, cin, 1, 1, 1)
                out.update({f"{pre}.downsample.1.{p}": (planes * 4,) for p in BN})
            cin = planes * 4
    out["fc.weight"], out["fc.bias"] = (400, 2048), (400,)
    return out


def i3d_layout(with_step_counters: bool = True) -> dict[str, tuple[int, ...]]:
    """piergiaj pytorch-i3d InceptionI3d(400): Unit3D = conv3d (+ bn); mixed branches b0 b1a b1b b2a b2b b3b."""
    out: dict[str, tuple[int, ...]] = {}
    bn = BN + (("num_batches_tracked",) if with_step_counters else ())

    def unit(name, cin, cout, k):
        out[f"{name}.conv3d.weight"] = (cout, cin, k, k, k)
        out.update({f"{name}.bn.{p}": (() if p == "num_batches_tracked" else (cout,)) for p in bn})

    unit("Conv3d_1a_7x7", 3, 64, 7), unit("Conv3d_2b_1x1", 64, 64, 1), unit("Conv3d_2c_3x3", 64, 192, 3)
    mixed = {  # Carreira & Zisserman 2017, Fig. 3 / Inception-v1 widths
        "3b": (64, 96, 128, 16, 32, 32),
        "3c": (128, 128, 192, 32, 96, 64),
        "4b": (192, 96, 208, 16, 48, 64),
        "4c": (160, 112, 224, 24, 64, 64),
        "4d": (128, 128, 256, 24, 64, 64),
        "4e": (112, 144, 288, 32, 64, 64),
        "4f": (256, 160, 320, 32, 128, 128),
        "5b": (256, 160, 320, 32, 128, 128),
        "5c": (384, 192, 384, 48, 128, 128),
    }
    cin = 192
    for name, (c0, c1a, c1b, c2a, c2b, c3) in mixed.items():
        m = f"Mixed_{name}"
        unit(f"{m}.b0", cin, c0, 1), unit(f"{m}.b1a", cin, c1a, 1), unit(f"{m}.b1b", c1a, c1b, 3)
        unit(f"{m}.b2a", cin, c2a, 1), unit(f"{m}.b2b", c2a, c2b, 3), unit(f"{m}.b3b", cin, c3, 1)
        cin = c0 + c1b + c2b + c3
    out["logits.conv3d.weight"], out["logits.conv3d.bias"] = (400, 1024, 1, 1, 1), (400,)
    return out


def _constants(layout: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Key i holds the constant i/1000 everywhere (a one-element storage, expanded: tiny files)."""
    out = {}
    for i, (k, shape) in enumerate(layout.items()):
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        else:
            out[k] = torch.full((1,) * max(len(shape), 1), i / 1000.0).expand(shape)
    return out


def write_official(folder, name: str, drop=(), reshape=None) -> dict[str, torch.Tensor]:
    """Write backbone file `name` in its official layout (and file structure); returns the state written."""
    layouts = {
        "vgg16-397923af.pth": vgg16_layout,
        "lpips_vgg_v0.1.pth": lpips_layout,
        "pt_inception-2015-12-05-6726825d.pth": inception_layout,
        "resnet-50-kinetics.pth": r3d50_layout,
        "i3d_pretrained_400.pt": i3d_layout,
    }
    layout = dict(layouts[name]())
    for k in drop:
        del layout[k]
    for k, shape in (reshape or {}).items():
        layout[k] = shape
    state = _constants(layout)
    if name == "resnet-50-kinetics.pth":  # Hara's release: a DataParallel checkpoint dict
        payload = {
            "arch": "resnet-50",
            "epoch": 200,
            "state_dict": {f"module.{k}": v for k, v in state.items()},
        }
    else:
        payload = state
    torch.save(payload, folder / name)
    return state


@pytest.fixture(scope="module")
def official_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("official")
    states = {name: write_official(folder, name) for name in BACKBONE_FILES}
    return folder, states


# ---------------------------------------------------------------- strict loading


def test_files_and_metrics():
    assert set(BACKBONE_FILES) == {
        "vgg16-397923af.pth",
        "lpips_vgg_v0.1.pth",
        "pt_inception-2015-12-05-6726825d.pth",
        "resnet-50-kinetics.pth",
        "i3d_pretrained_400.pt",
    }
    assert {"fid_vid", "fvd"} <= IMPLEMENTED and METRIC_FILES["fvd"] == ("i3d_pretrained_400.pt",)


@pytest.mark.parametrize("name", BACKBONE_FILES)
def test_official_layout_loads_fully(official_dir, name):
    folder, states = official_dir
    match = check_file(folder / name)
    expected = {k for k in states[name] if not k.startswith("classifier.") and "num_batches" not in k}
    assert match.ok, match.describe()
    assert match.loaded == match.total == len(expected)
    assert match.describe().startswith(f"loaded {len(expected)}/{len(expected)} keys")
    if name == "vgg16-397923af.pth":
        assert len(match.ignored) == 6  # torchvision's classifier: read, not used by LPIPS


def _assert_values_from(state: dict[str, torch.Tensor], net: torch.nn.Module, prefix: str = "") -> None:
    got = net.state_dict()
    for k, v in state.items():
        if k.startswith("classifier.") or k.endswith("num_batches_tracked"):
            continue
        assert torch.equal(got[prefix + k], v.to(got[prefix + k].dtype)), k


def test_networks_take_every_value_from_its_key(official_dir):
    folder, states = official_dir
    _assert_values_from(states["resnet-50-kinetics.pth"], R3D50.from_file(folder / "resnet-50-kinetics.pth"))
    _assert_values_from(states["i3d_pretrained_400.pt"], I3D.from_file(folder / "i3d_pretrained_400.pt"))
    inc = FIDInceptionV3.from_file(folder / "pt_inception-2015-12-05-6726825d.pth")
    _assert_values_from(states["pt_inception-2015-12-05-6726825d.pth"], inc)
    lp = LPIPSVGG.from_files(folder / "vgg16-397923af.pth", folder / "lpips_vgg_v0.1.pth")
    _assert_values_from(states["vgg16-397923af.pth"], lp)
    _assert_values_from(states["lpips_vgg_v0.1.pth"], lp)


def test_network_sizes_match_published_architectures():
    r3d, i3d = R3D50(), I3D()
    # 3D ResNet-50 without its classifier: 46.2M parameters; I3D RGB with 400 logits: 12.7M.
    assert sum(p.numel() for p in r3d.parameters()) - 2048 * 400 - 400 == 46_198_976
    assert sum(p.numel() for p in i3d.parameters()) == 12_697_264
    assert {
        k: tuple(v.shape) for k, v in r3d.state_dict().items() if "num_batches" not in k
    } == r3d50_layout()
    assert {k: tuple(v.shape) for k, v in i3d.state_dict().items()} == i3d_layout()


def test_a_wrong_or_missing_key_fails_naming_it(tmp_path):
    write_official(
        tmp_path,
        "resnet-50-kinetics.pth",
        drop=["layer3.2.bn2.running_var"],
        reshape={"layer4.0.conv2.weight": (512, 512, 1, 3, 3), "layer5.0.conv1.weight": (1,)},
    )
    with pytest.raises(ValueError, match="resnet-50-kinetics.pth: keys do not match") as err:
        R3D50.from_file(tmp_path / "resnet-50-kinetics.pth")
    for key in ("layer3.2.bn2.running_var", "layer4.0.conv2.weight", "layer5.0.conv1.weight"):
        assert key in str(err.value)
    match = check_file(tmp_path / "resnet-50-kinetics.pth")
    assert not match.ok and match.missing == ["layer3.2.bn2.running_var"]
    assert match.unexpected == ["layer5.0.conv1.weight"]
    assert match.misshaped == [("layer4.0.conv2.weight", (512, 512, 1, 3, 3), (512, 512, 3, 3, 3))]
    assert match.loaded == match.total - 2

    # I3D with an Inception-v1 5x5 in branch 2 (the 2D network's layout) and without the logits bias.
    write_official(
        tmp_path,
        "i3d_pretrained_400.pt",
        drop=["logits.conv3d.bias"],
        reshape={"Mixed_4e.b2b.conv3d.weight": (64, 32, 5, 5, 5)},
    )
    with pytest.raises(ValueError, match="Mixed_4e.b2b.conv3d.weight") as err:
        I3D.from_file(tmp_path / "i3d_pretrained_400.pt")
    assert "logits.conv3d.bias" in str(err.value)
    # The official I3D file loads whether or not it carries BatchNorm step counters (older torch omits them).
    torch.save(_constants(i3d_layout(with_step_counters=False)), tmp_path / "i3d_pretrained_400.pt")
    assert check_file(tmp_path / "i3d_pretrained_400.pt").ok


def test_load_reports_the_true_reason(tmp_path):
    assert "no weights folder" in BackboneWeights().load("fvd")[1]
    net, reason = BackboneWeights(tmp_path).load("fid_vid")
    assert net is None and "not found" in reason and "resnet-50-kinetics.pth" in reason
    (tmp_path / "resnet-50-kinetics.pth").write_bytes(b"not a checkpoint")
    net, reason = BackboneWeights(tmp_path).load("fid_vid")
    assert net is None and reason.startswith("weights file rejected") and "cannot read" in reason
    write_official(tmp_path, "i3d_pretrained_400.pt", drop=["Mixed_5c.b0.bn.weight"])
    net, reason = BackboneWeights(tmp_path).load("fvd")
    assert net is None and "rejected" in reason and "Mixed_5c.b0.bn.weight" in reason
    write_official(tmp_path, "i3d_pretrained_400.pt")
    net, reason = BackboneWeights(tmp_path).load("fvd")
    assert reason is None and isinstance(net, I3D) and not net.training


# ---------------------------------------------------------------- forward passes, segments, preprocessing


def _random(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights that keep the signal alive: He-scaled convolutions, BN scales near 1 and random BN
    statistics (a default BN in eval mode would be the identity and hide a wrong eps or statistic)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in net.state_dict().items():
            if not v.is_floating_point():
                continue
            noise = torch.randn(v.shape, generator=g)
            if v.ndim > 1:  # conv / linear weight
                v.copy_(noise * (2.0 / v[0].numel()) ** 0.5)
            elif k.endswith("running_var"):
                v.copy_(torch.rand(v.shape, generator=g) + 0.5)
            elif k.endswith("weight"):  # 1-D weights are BatchNorm scales
                v.copy_(1 + 0.1 * noise)
            else:  # biases, BN shifts and means
                v.copy_(0.1 * noise)
    return net.eval()


@pytest.fixture(scope="module")
def r3d():
    return _random(R3D50(), 1)


@pytest.fixture(scope="module")
def i3d():
    return _random(I3D(), 2)


def _close(a, b, rel: float = 1e-5) -> bool:
    """Equal up to float32 reordering, relative to the largest magnitude (random nets have large activations)."""
    a, b = torch.as_tensor(np.asarray(a, dtype=np.float64)), torch.as_tensor(np.asarray(b, dtype=np.float64))
    return a.shape == b.shape and float((a - b).abs().max()) <= rel * float(b.abs().max()) + 1e-6


def test_full_size_forward(r3d, i3d):
    x = torch.randn(1, 3, 16, 112, 112, generator=torch.Generator().manual_seed(0))
    f = r3d(x)
    assert f.shape == (1, 2048) and torch.isfinite(f).all() and (f >= 0).all()  # pooled ReLU features
    # I3D's TF "same" padding: 16x224x224 -> 8x112x112 after the strided 7x7x7, 2 steps left at the logits.
    v = torch.rand(1, 3, 16, 224, 224, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert i3d.Conv3d_1a_7x7(v).shape == (1, 64, 8, 112, 112)
    logits = i3d(v)
    assert logits.shape == (1, 400) and torch.isfinite(logits).all()


def test_forward_is_deterministic_and_per_sample(r3d, i3d):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 3, 16, 32, 32, generator=g)
    for net, dim in ((r3d, 2048), (i3d, 400)):
        a, b = net(x), net(x)
        assert a.shape == (3, dim) and torch.equal(a, b)
        assert _close(net(x[1:2]), a[1:2])  # no mixing across the batch
        assert not _close(a[0], a[1], rel=1e-2)


def test_i3d_averages_logits_over_time(i3d):
    # The logits unit sees one pooled vector per remaining time step (16 frames -> 2); the output is their mean.
    x = torch.rand(1, 3, 16, 32, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    feats = {}
    hook = i3d.logits.register_forward_hook(lambda m, inp, out: feats.setdefault("steps", out))
    out = i3d(x)
    hook.remove()
    steps = feats["steps"].flatten(2)  # (1,400,T')
    assert (
        steps.shape[2] == 2 and _close(out, steps.mean(2)) and not _close(steps[..., 0], steps[..., 1], 1e-2)
    )


def test_segments():
    assert segment_starts(15) == [] and segment_starts(16) == [0] and segment_starts(18) == [0, 1, 2]
    assert segment_starts(40, stride=8) == [0, 8, 16, 24] and SEGMENT_FRAMES == 16
    with pytest.raises(ValueError):
        segment_starts(20, stride=0)


def test_resize_is_pil_bicubic_on_float_channels_unclipped():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
    frames[0, :, :24] = 0
    frames[0, :, 24:] = 255  # a hard edge: bicubic rings past 0 and 255, DisCo keeps that
    out = resize_frames(frames, 32)
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.float32
    for f, c in ((0, 0), (1, 2)):
        ref = Image.fromarray(frames[f, :, :, c].astype(np.float32), mode="F").resize((32, 32), Image.BICUBIC)
        np.testing.assert_array_equal(out[f, :, :, c], np.asarray(ref))
    assert out[0].min() < 0 and out[0].max() > 255


def test_normalisation(r3d, i3d):
    mean = torch.tensor(KINETICS_MEAN_RGB).view(1, 3, 1, 1, 1).expand(1, 3, 2, 4, 4)
    assert torch.equal(r3d.normalise(mean), torch.zeros(1, 3, 2, 4, 4))  # RGB order, 0-255 scale, no std
    ends = torch.tensor([0.0, 255.0]).view(1, 1, 2, 1, 1).expand(1, 3, 2, 4, 4)
    i3d_in = i3d.normalise(ends)
    assert torch.equal(i3d_in[:, :, 0], -torch.ones(1, 3, 4, 4)) and torch.equal(
        i3d_in[:, :, 1], torch.ones(1, 3, 4, 4)
    )


def test_video_features_on_16_frame_segments(r3d, i3d):
    rng = np.random.default_rng(5)
    video = rng.integers(0, 256, (18, 40, 40, 3), dtype=np.uint8)
    for net, dim in ((r3d, 2048), (i3d, 400)):
        net.input_size = 32
        try:
            res = video_features(video, net, batch_size=2)
            assert res.reason is None and res.features.shape == (3, dim) and res.frames == 18
            # each row is the network on its own window of 16 consecutive frames, resized and normalised
            clip = torch.from_numpy(resize_frames(video[1:17], 32)).permute(3, 0, 1, 2)[None]
            assert _close(res.features[1], net(net.normalise(clip))[0])
            np.testing.assert_array_equal(res.features, video_features(video, net, batch_size=2).features)
            assert _close(res.features, video_features(video, net, batch_size=3).features)
            assert not _close(res.features[0], res.features[2], rel=1e-3)
            short = video_features(video[:8], net)
            assert short.features is None and "8-frame clip" in short.reason and "16-frame" in short.reason
        finally:
            net.input_size = 112 if net is r3d else 224


def _disco_fid(f1, f2):
    """DisCo's fid_from_feats / frechet_distance with scipy's sqrtm (SciPy >= 1.17: no disp=)."""
    mu1, s1, mu2, s2 = f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_video_frechet_matches_scipy_sqrtm_reference():
    # I3D with 48 logits at 32 px: the same code path as the 400-way network, and scipy's sqrtm of a singular
    # 48 x 48 product stays fast (a 400 x 400 one takes seconds with BLAS threads on a busy 2-core machine).
    net = _random(I3D(num_classes=48, input_size=32), 7)
    rng = np.random.default_rng(6)
    acc = VideoFrechet(net, "fvd", batch_size=4)
    for _ in range(3):
        gt = rng.integers(0, 256, (18, 36, 36, 3), dtype=np.uint8)
        pred = np.clip(gt.astype(int) + rng.integers(-60, 61, gt.shape), 0, 255).astype(np.uint8)
        acc.add_video(pred, gt)
    acc.add_video(pred[:8], gt[:8])  # too short: left out, recorded
    value, reason = acc.result()
    fp, fg = np.concatenate(acc.pred), np.concatenate(acc.gt)
    assert fp.shape == (9, 48) and len(acc.skipped) == 1 and reason is None
    # fewer samples than dimensions: the shared Frechet distance takes its low-rank route; scipy agrees
    assert value == pytest.approx(_disco_fid(fp, fg), rel=1e-5) and value > 0
    # a full-rank case (more samples than dimensions)
    a, b = rng.normal(size=(300, 20)), rng.normal(0.3, 1.2, size=(250, 20))
    got, why = frechet_from_feature_lists([a[:100], a[100:]], [b], "fid_vid")
    assert why is None and got == pytest.approx(_disco_fid(a, b), rel=1e-8)
    assert frechet_from_feature_lists([a], [a], "x")[0] == pytest.approx(0.0, abs=1e-8)
    none, why = frechet_from_feature_lists([a[:1]], [b], "fvd")
    assert none is None and "fvd needs at least 2 samples" in why


def test_video_frechet_without_long_enough_clips(r3d):
    acc = VideoFrechet(r3d, "fid_vid")
    short = np.zeros((8, 32, 32, 3), np.uint8)
    acc.add_video(short, short)
    value, reason = acc.result()
    assert value is None and "fid_vid" in reason and "8-frame clip is shorter than the 16-frame" in reason


# ---------------------------------------------------------------- cosec eval check-weights


def cosec_main(argv: list[str]) -> int:
    """`cosec ARGV` with only the eval group wired (the other groups' imports cost seconds and are not tested here)."""
    args = build_parser({"eval": "cosec.eval.cli"}).parse_args(argv)
    return int(args.func(args) or 0)


def test_check_weights_all_files_load(official_dir, capsys):
    folder, states = official_dir
    assert cosec_main(["eval", "check-weights", str(folder)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == list(BACKBONE_FILES)
    for line, name in zip(lines, BACKBONE_FILES, strict=True):
        n = sum(1 for k in states[name] if not k.startswith("classifier.") and "num_batches" not in k)
        assert line.startswith(f"{name}: loaded {n}/{n} keys"), line


def test_check_weights_names_a_bad_file(tmp_path, capsys):
    write_official(tmp_path, "pt_inception-2015-12-05-6726825d.pth")
    write_official(tmp_path, "resnet-50-kinetics.pth", reshape={"fc.weight": (700, 2048)})  # a 700-class file
    (tmp_path / "i3d_pretrained_400.pt").write_bytes(b"\x00corrupted")
    assert cosec_main(["eval", "check-weights", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    out = {line.split(":")[0]: line for line in captured.out.splitlines()}
    assert (
        "loaded" in out["pt_inception-2015-12-05-6726825d.pth"]
        and "REJECTED" not in out["pt_inception-2015-12-05-6726825d.pth"]
    )
    assert (
        "REJECTED" in out["resnet-50-kinetics.pth"]
        and "fc.weight (file [700, 2048], network [400, 2048])" in out["resnet-50-kinetics.pth"]
    )
    assert "REJECTED" in out["i3d_pretrained_400.pt"] and "cannot read" in out["i3d_pretrained_400.pt"]
    assert "not in" in out["vgg16-397923af.pth"]
    assert "2 of 3 files" in captured.err and "Traceback" not in captured.err


def test_check_weights_bad_folder(tmp_path, capsys):
    assert cosec_main(["eval", "check-weights", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and len(err.strip().splitlines()) == 1
    assert cosec_main(["eval", "check-weights", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "none of the backbone files" in err and len(err.strip().splitlines()) == 1
