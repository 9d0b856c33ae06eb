from __future__ import annotations

import numpy as np
import pytest
import torch

from cosec.eval.backbones import LPIPSVGG, METRIC_FILES, BackboneWeights, FIDInceptionV3
from cosec.eval.evaluate import Backbones, SplitEvaluator


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return _weights_folder(tmp_path_factory.mktemp("weights"))


def _weights_folder(tmp_path, with_video=False):
    """Random weights saved in the official files' key layouts (torchvision VGG16, LPIPS heads, pytorch-fid)."""
    torch.manual_seed(0)
    lp = LPIPSVGG()
    vgg = {f"features.{k}": v for k, v in lp.features.state_dict().items()}
    vgg["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision's file also holds the classifier: ignored
    torch.save(vgg, tmp_path / "vgg16-397923af.pth")
    heads = {k: v.abs() for k, v in lp.state_dict().items() if k.startswith("lin")}
    torch.save(heads, tmp_path / "lpips_vgg_v0.1.pth")
    inception = {
        k: v for k, v in FIDInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")
    }
    torch.save(inception, tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    if with_video:
        for name in METRIC_FILES["fid_vid"] + METRIC_FILES["fvd"]:
            (tmp_path / name).write_bytes(b"x")
    return BackboneWeights(tmp_path)


def test_missing_weights_are_reported_never_substituted(tmp_path):
    assert "no weights folder" in BackboneWeights().missing_reason("fid")
    empty = BackboneWeights(tmp_path)
    for metric in METRIC_FILES:
        assert "not found" in empty.missing_reason(metric)
        assert empty.load(metric) == (None, empty.missing_reason(metric))
    assert "lpips_vgg_v0.1.pth" in empty.missing_reason("lpips")
    weights = _weights_folder(tmp_path, with_video=True)
    assert weights.missing_reason("lpips") is None and weights.missing_reason("fid") is None
    # The video files are present but junk: the reason is the rejection, not "not provided".
    for metric in ("fid_vid", "fvd"):
        assert weights.missing_reason(metric) is None
        net, reason = weights.load(metric)
        assert (
            net is None and reason.startswith("weights file rejected") and METRIC_FILES[metric][0] in reason
        )
    net, reason = weights.load("lpips")
    assert reason is None and isinstance(net, LPIPSVGG)
    with pytest.raises(KeyError, match="unknown backbone"):
        weights.paths("is")


def test_inception_layout_matches_pytorch_fid():
    net = FIDInceptionV3()
    # torchvision InceptionV3 without AuxLogits, with the 1008-way TF classifier: 23,850,960 parameters
    assert sum(p.numel() for p in net.parameters()) == 23_850_960
    assert "Mixed_7c.branch3x3dbl_3b.bn.running_var" in net.state_dict()


def test_lpips_and_fid_from_files(tmp_path, weights_dir):
    weights = weights_dir
    lp = LPIPSVGG.from_files(*weights.paths("lpips"))
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    assert torch.allclose(lp(a, a), torch.zeros(2))
    d = lp(a, b)
    assert (d > 0).all() and torch.allclose(d, lp(b, a))
    bad = tmp_path / "bad.pth"
    torch.save({"lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}, bad)
    with pytest.raises(ValueError, match="bad.pth: keys do not match"):
        LPIPSVGG.from_files(weights.paths("lpips")[0], bad)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pth"):
        FIDInceptionV3.from_file(tmp_path / "junk.pth")


@pytest.mark.slow
def test_split_evaluator_with_and_without_weights(weights_dir):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)

    plain = SplitEvaluator()
    plain.add_video(pred, gt)
    values, reasons = plain.result()
    assert values["lpips"] is None and values["fid"] is None and values["fvd"] is None
    assert {"lpips", "fid", "fid_vid", "fvd"} <= set(reasons)
    assert values["ssim"] < 1 and values["jitter"] > 0

    full = SplitEvaluator(Backbones(weights_dir), batch_size=2)
    full.add_video(pred, gt)
    values, reasons = full.result()
    assert values["lpips"] > 0 and values["fid"] > 0
    assert "lpips" not in reasons and "fid" not in reasons and "fid_vid" in reasons
    assert len(full.fid_pred) == 1 and full.fid_pred[0].shape == (2, 2048)  # one video, 2 frames
    with pytest.raises(ValueError, match="no frames"):
        SplitEvaluator(full.backbones).result()
