"""The evaluation protocol around the metrics: colour measure, bootstrap intervals over videos, scoring size,
and FID-VID / FVD wired into the runner (random-weight networks written in the official file layouts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cosec.data.config import IndexConfig
from cosec.data.index import build_index
from cosec.eval.backbones import BackboneWeights
from cosec.eval.bootstrap import BootstrapSettings, resample_indices
from cosec.eval.evaluate import Backbones, SplitEvaluator
from cosec.eval.metrics import colour_stats, frechet_from_feature_lists, video_metrics
from cosec.eval.report import paper_tables_markdown, table3_markdown
from cosec.eval.runner import EvalProtocol, downscale, run_evaluation
from cosec.eval.video_backbones import I3D, R3D50, video_features
from tests.animate.conftest import tiny_model, write_champ_video
from tests.eval.test_video_backbones import _random, write_official


def _videos(n: int, frames: int = 3, size: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gt = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
        noise = rng.normal(0, 10 + 15 * i, gt.shape)  # videos of different quality: a spread to resample
        out.append((np.clip(gt + noise, 0, 255).astype(np.uint8), gt))
    return out


# ---------------------------------------------------------------- colour


def test_colour_measure_sees_a_grey_rendering_and_only_the_person():
    gt = np.zeros((16, 16, 3), np.uint8)
    gt[..., 1] = 180  # a green person on a green background
    grey = np.repeat(gt.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    error, c_pred, c_gt = colour_stats(grey, gt, None)
    assert error > 40 and c_pred < 1e-4 * c_gt  # grey: large a*b* error, no chroma
    assert colour_stats(gt, gt, None)[0] == 0.0
    mask = np.zeros((16, 16), bool)
    mask[4:8, 4:8] = True
    off_person = gt.copy()
    off_person[~mask] = (200, 0, 200)  # only the background changes colour
    assert colour_stats(off_person, gt, mask)[0] == 0.0 and colour_stats(off_person, gt, None)[0] > 10
    m = video_metrics(np.stack([grey, gt]), np.stack([gt, gt]), np.stack([mask, mask]))
    assert m["chroma_ratio_person"] == pytest.approx(0.5, abs=1e-4)  # half the frames lost their colour
    assert m["ab_error_person"] == pytest.approx(error / 2)


# ---------------------------------------------------------------- bootstrap over videos


def test_intervals_are_the_percentile_bootstrap_over_videos():
    settings = BootstrapSettings(resamples=500, level=0.9, seed=3)
    ev = SplitEvaluator(bootstrap=settings)
    vids = _videos(5)
    for pred, gt in vids:
        ev.add_video(pred, gt)
    out, reasons = ev.result()
    assert out["videos"] == 5 and "ci" not in reasons
    for m in (
        "ssim",
        "psnr",
        "l1",
        "psnr_person",
        "ab_error_person",
        "hf_ratio",
        "chroma_ratio_person",
        "jitter",
    ):
        lo, hi = out[f"{m}_ci"]
        assert lo < out[m] < hi, m
    # independent recomputation of the PSNR interval: pooled frame mean over the drawn videos
    per_video = [video_metrics(p, g)["psnr"] for p, g in vids]  # 3 frames each: pooled mean = mean of means
    idx = resample_indices(5, 500, 3)
    draws = np.asarray(per_video)[idx].mean(axis=1)
    assert np.allclose(out["psnr_ci"], np.percentile(draws, [5, 95]), rtol=1e-12)
    ev2 = SplitEvaluator(bootstrap=settings)
    for pred, gt in vids:
        ev2.add_video(pred, gt)
    assert ev2.result()[0] == out  # fixed seed: the same intervals
    wider = SplitEvaluator(bootstrap=BootstrapSettings(resamples=500, level=0.99, seed=3))
    for pred, gt in vids:
        wider.add_video(pred, gt)
    w = wider.result()[0]["psnr_ci"]
    assert w[0] < out["psnr_ci"][0] and w[1] > out["psnr_ci"][1]


def test_no_interval_from_one_video_or_when_off():
    (pred, gt), *_ = _videos(1)
    one = SplitEvaluator()
    one.add_video(pred, gt)
    out, reasons = one.result()
    assert out["psnr_ci"] is None and "1 test video" in reasons["ci"]
    off = SplitEvaluator(bootstrap=BootstrapSettings(resamples=0))
    for p, g in _videos(3):
        off.add_video(p, g)
    out, reasons = off.result()
    assert out["ssim_ci"] is None and "ci_resamples: 0" in reasons["ci"]


def test_video_metrics_and_their_intervals_in_the_split_evaluator():
    """FID-VID / FVD of SplitEvaluator equal the Frechet distance of the segment features computed directly."""
    bb = Backbones()
    bb.nets = {"fid_vid": _random(R3D50(input_size=32), 1), "fvd": _random(I3D(input_size=32), 2)}
    bb.reasons = {k: v for k, v in bb.reasons.items() if k not in bb.nets}
    ev = SplitEvaluator(bb, bootstrap=BootstrapSettings(resamples=20, frechet_resamples=20))
    vids = _videos(3, frames=17, size=32)
    for i, (pred, gt) in enumerate(vids):
        ev.add_video(pred, gt, key=("s", i))
    out, reasons = ev.result()
    for metric, net in bb.nets.items():
        p = [video_features(pr, net).features for pr, _ in vids]
        g = [video_features(gt, net).features for _, gt in vids]
        assert out[metric] == pytest.approx(frechet_from_feature_lists(p, g)[0], rel=1e-9)
        assert metric not in reasons and len(out[f"{metric}_ci"]) == 2
    assert out["lpips"] is None and "no weights folder" in reasons["lpips"]


# ---------------------------------------------------------------- scoring size


def test_downscale_reduces_and_never_upsamples():
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    assert downscale(frames, 256) is frames
    small = downscale(frames, 32)
    assert small.shape == (2, 32, 32, 3) and small.dtype == np.uint8
    masks = np.zeros((2, 64, 64), bool)
    masks[:, 10:30, 10:30] = True
    m = downscale(masks, 32, masks=True)
    assert m.dtype == bool and m.shape == (2, 32, 32) and m[:, 5:15, 5:15].all() and not m[:, 20:].any()


@pytest.fixture(scope="module")
def clip_data(tmp_path_factory):
    """One Champ-layout test video: reference frame 0 and a 17-frame clip (two 16-frame segments)."""
    base = tmp_path_factory.mktemp("protocol")
    root = base / "prepared"
    write_champ_video(root / "dance" / "blob_000", frames=18)
    df, _ = build_index(IndexConfig(root=str(root), out=str(base / "index.parquet")), log=lambda *_: None)
    return root, df


def _cfg(**kw) -> EvalProtocol:
    base = dict(
        splits=["dance"], teacher_steps=[], teacher_nocfg_steps=[], student_steps=[1], reference="first"
    )
    return EvalProtocol(**{**base, **kw})


def test_scoring_size_is_recorded_and_generation_never_upsampled(clip_data):
    root, df = clip_data
    teacher = tiny_model()  # generates 64 px
    students = {"student": teacher.denoising_unet}
    big, _ = run_evaluation(teacher, students, root, df, _cfg(max_frames=4), progress=False)
    small, _ = run_evaluation(teacher, students, root, df, _cfg(max_frames=4, score_size=32), progress=False)
    at64, at32 = big.values["dance"]["student@1"], small.values["dance"]["student@1"]
    assert at64["score_size"] == 64 and at32["score_size"] == 32
    assert at64["psnr"] != at32["psnr"]
    assert "not upsampled" in big.reasons["dance"]["student@1"]["score_size"]
    assert "score_size" not in small.reasons["dance"]["student@1"]
    assert "generated at 64 px" in table3_markdown(big)
    assert "Scored at 32 px" in paper_tables_markdown(small)


# ---------------------------------------------------------------- FID-VID / FVD in the runner


def _write_random_official(folder, name: str, net: torch.nn.Module) -> None:
    """The random network's weights in the release's file structure (the key layout is checked by
    write_official's specs in test_video_backbones)."""
    state = {k: v.clone() for k, v in net.state_dict().items()}
    if name == "resnet-50-kinetics.pth":
        payload = {
            "arch": "resnet-50",
            "epoch": 200,
            "state_dict": {f"module.{k}": v for k, v in state.items()},
        }
    else:
        payload = state
    torch.save(payload, folder / name)


@pytest.fixture
def small_inputs(monkeypatch):
    """The loaded video networks see 32 px frames instead of 112 / 224 (the input size is no weight; the
    full-size forward passes are tested in test_video_backbones): the runner test then takes seconds."""
    load = BackboneWeights.load

    def smaller(self, metric, device="cpu"):
        net, reason = load(self, metric, device)
        if net is not None and metric in ("fid_vid", "fvd"):
            net.input_size = 32
        return net, reason

    monkeypatch.setattr(BackboneWeights, "load", smaller)


def test_runner_computes_fid_vid_and_fvd_from_the_weight_files(clip_data, tmp_path, small_inputs):
    root, df = clip_data
    weights = tmp_path / "weights"
    weights.mkdir()
    _write_random_official(weights, "resnet-50-kinetics.pth", _random(R3D50(), 1))
    _write_random_official(weights, "i3d_pretrained_400.pt", _random(I3D(), 2))
    assert BackboneWeights(weights).load("fid_vid")[0] is not None
    teacher = tiny_model()
    table, _ = run_evaluation(
        teacher, {"student": teacher.denoising_unet}, root, df, _cfg(weights_dir=str(weights)), progress=False
    )
    entries, notes = table.values["dance"], table.reasons["dance"]
    for key in ("reference@0", "student@1"):
        for metric in ("fid_vid", "fvd"):
            assert np.isfinite(entries[key][metric]) and entries[key][metric] > 0, (key, metric)
            assert metric not in notes[key]
        assert "weights file not found: vgg16-397923af.pth" in notes[key]["lpips"]
    assert entries["reference@0"]["fvd"] != entries["student@1"]["fvd"]
    # clips shorter than a segment: the reason says so, not that weights are missing
    short, _ = run_evaluation(
        teacher, {}, root, df, _cfg(weights_dir=str(weights), max_frames=8, student_steps=[]), progress=False
    )
    why = short.reasons["dance"]["reference@0"]
    assert short.values["dance"]["reference@0"]["fid_vid"] is None
    assert "8-frame clip is shorter than the 16-frame segments" in why["fid_vid"] and "16-frame" in why["fvd"]


def test_absent_and_rejected_weight_files_give_their_true_reason(clip_data, tmp_path):
    root, df = clip_data
    write_official(tmp_path, "resnet-50-kinetics.pth", drop=("layer4.2.bn3.running_var",))
    table, _ = run_evaluation(
        tiny_model(),
        {},
        root,
        df,
        _cfg(weights_dir=str(tmp_path), max_frames=4, student_steps=[]),
        progress=False,
    )
    why = table.reasons["dance"]["reference@0"]
    assert why["fid_vid"].startswith("weights file rejected") and "layer4.2.bn3.running_var" in why["fid_vid"]
    assert why["fvd"] == f"weights file not found: i3d_pretrained_400.pt not in {tmp_path}"
    md = table3_markdown(table)
    assert "fid_vid: weights file rejected" in md and "fvd: weights file not found" in md


def test_pooled_values_are_running_sums_over_frames_as_before():
    """The per-video bookkeeping of the bootstrap leaves the pooled numbers exactly as one running sum over
    every frame of the split (the numbers of earlier runs stay byte-identical)."""
    from cosec.eval.metrics import psnr, ssim

    vids = _videos(3, frames=4)
    ev = SplitEvaluator()
    for pred, gt in vids:
        ev.add_video(pred, gt)
    out, _ = ev.result()
    s_ssim = s_psnr = 0.0
    for pred, gt in vids:
        for p, g in zip(pred, gt, strict=True):
            s_ssim += ssim(p, g)
            s_psnr += psnr(p, g)
    assert out["ssim"] == s_ssim / 12 and out["psnr"] == s_psnr / 12


def test_evaluate_stage_writes_intervals_score_size_and_fig5(tmp_path, monkeypatch):
    """The `evaluate` stage on two tiny test videos: metrics.json with intervals and the scoring size,
    Fig. 5 heat maps beside the sample grids."""
    import json

    from PIL import Image

    from cosec.pipeline import evaluate
    from cosec.pipeline.params import Common, EvaluateConfig, Params
    from cosec.train.config import RunConfig

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "prepared"
    for i in range(2):
        write_champ_video(root / "dance" / f"blob_{i:03d}", frames=5)
    index = tmp_path / "index.parquet"
    build_index(IndexConfig(root=str(root), out=str(index)), log=lambda *_: None)
    tiny_model().save_pretrained(tmp_path / "teacher", role="teacher")
    protocol = _cfg(teacher_steps=[1], student_steps=[2], ci_resamples=50)
    params = Params(
        common=Common(
            mlflow_db=str(tmp_path / "mlflow.db"),
            data_root=str(root),
            index=str(index),
            run=RunConfig(progress=False),
        ),
        evaluate=EvaluateConfig(
            teacher=str(tmp_path / "teacher"),
            students={"student": str(tmp_path / "teacher")},
            out=str(tmp_path / "reports"),
            protocol=protocol,
        ),
    )
    evaluate.STAGE.run(params.only(evaluate.STAGE.sections))
    entry = json.loads((tmp_path / "reports/metrics.json").read_text())["dance"]["student@2"]
    assert entry["videos"] == 2 and entry["score_size"] == 64
    lo, hi = entry["ssim_ci"]
    assert lo <= hi and entry["fid_vid"] is None and "fvd_ci" not in entry  # intervals only for values
    notes = json.loads((tmp_path / "reports/metrics_notes.json").read_text())["dance"]["student@2"]
    assert "no weights folder" in notes["fvd"] and "not upsampled" in notes["score_size"]
    heat = Image.open(tmp_path / "reports/samples/jitter_dance.png")
    assert heat.size[1] > 150  # three rows: ground truth, teacher, student
