"""`cosec animate`: the reference UNet and CLIP run once per video, bad inputs get one line, and an end-to-end
run on a tiny random model writes readable mp4s with the right frame count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cosec.animate.inputs import AnimateError, load_reference, open_motion
from cosec.animate.run import animate, sampler_settings
from cosec.cli import main as cosec_main
from cosec.diffusion.windows import ContextWindows
from tests.animate.conftest import tiny_model, write_champ_video


def _count(calls: dict, key: str, module: torch.nn.Module, monkeypatch) -> None:
    forward = module.forward

    def wrapped(*a, **k):
        calls[key] += 1
        return forward(*a, **k)

    monkeypatch.setattr(module, "forward", wrapped)


@pytest.mark.parametrize("frames", [6, 30])
@pytest.mark.parametrize("sampler", ["ddim", "lcm"])
def test_reference_unet_and_clip_run_once_per_video(frames, sampler, motion_dir, reference_png, monkeypatch):
    model = tiny_model()
    calls = {"reference_unet": 0, "clip": 0, "denoising_unet": 0, "guidance": 0}
    _count(calls, "reference_unet", model.reference_unet, monkeypatch)
    _count(calls, "clip", model.image_encoder, monkeypatch)
    _count(calls, "denoising_unet", model.denoising_unet, monkeypatch)
    _count(calls, "guidance", model.guidance_encoders, monkeypatch)
    res = model.config.resolution
    ref, _ = load_reference(reference_png, res)
    motion = open_motion(motion_dir, model.config.guidance_types, res)
    windows = ContextWindows(8, 2)
    role = "teacher" if sampler == "ddim" else "student"
    settings = sampler_settings(role, sampler, 2, None, 0, windows)
    got = []
    result = animate(model, ref, motion, list(range(frames)), settings, [lambda i, f: got.append((i, f.shape))],
                     progress=False)  # fmt: skip
    n_win = len(windows.windows(frames))
    assert calls["reference_unet"] == 1 and calls["clip"] == 1
    assert calls["guidance"] == 2 * n_win  # guidance features per window and step
    assert calls["denoising_unet"] == 2 * n_win * (2 if sampler == "ddim" else 1)  # CFG: two branches
    assert got == [(i, (res, res, 3)) for i in range(frames)]
    assert result.frames == frames and result.windows == n_win and result.seconds_per_frame > 0


def _run(argv, capsys):
    rc = cosec_main(["animate", *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _args(model, ref, motion, out):
    return [
        "--model",
        str(model),
        "--reference",
        str(ref),
        "--motion",
        str(motion),
        "--out",
        str(out),
        "--quiet",
    ]


def _bad_references(tmp):
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "notes.png").write_text("this is not an image\n")
    good = tmp / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    (tmp / "truncated.png").write_bytes(good.read_bytes()[:5000])  # header intact, pixels cut
    (tmp / "adir.png").mkdir()
    return {
        "empty.png": "empty file",
        "notes.png": "not an image",
        "truncated.png": "unreadable image",
        "missing.jpg": "not found",
        "adir.png": "not a file",
    }


def test_bad_references_give_one_clear_line(model_dirs, motion_dir, tmp_path, capsys):
    for name, words in _bad_references(tmp_path).items():
        path = tmp_path / name
        rc, out, err = _run(_args(model_dirs["student"], path, motion_dir, tmp_path / "o.mp4"), capsys)
        assert rc == 2, name
        lines = err.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and words in lines[0], err
        assert "Traceback" not in err and not (tmp_path / "o.mp4").exists()


def test_greyscale_alpha_and_odd_sizes_are_converted(tmp_path):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((50, 20), 128, np.uint8), mode="L").save(grey)
    rgba = tmp_path / "rgba.png"
    arr = np.zeros((30, 90, 4), np.uint8)
    arr[..., 0] = 255  # red where opaque, transparent on the right half
    arr[:, :45, 3] = 255
    Image.fromarray(arr, mode="RGBA").save(rgba)
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray(np.full((70, 33, 3), 200, np.uint8)).save(jpeg)
    i16 = tmp_path / "deep.png"
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(i16)
    for path in (grey, rgba, jpeg, i16):
        for fit in ("pad", "crop", "stretch"):
            pixels, u8 = load_reference(path, 64, fit)
            assert pixels.shape == (1, 3, 64, 64) and u8.shape == (64, 64, 3)
            assert float(pixels.min()) >= -1 and float(pixels.max()) <= 1
    _, u8 = load_reference(rgba, 64, "stretch")
    assert tuple(u8[32, 5]) == (255, 0, 0) and tuple(u8[32, 60]) == (255, 255, 255)  # alpha laid on white


def test_bad_motion_folders_give_one_clear_line(model_dirs, reference_png, tmp_path, capsys):
    types = ("depth", "normal", "semantic_map", "dwpose")
    cases = {}
    cases["missing"] = (tmp_path / "missing", "not found")
    (tmp_path / "file.txt").write_text("x")
    cases["file"] = (tmp_path / "file.txt", "must be a folder")
    (tmp_path / "empty").mkdir()
    cases["empty"] = (tmp_path / "empty", "no guidance maps")
    write_champ_video(tmp_path / "partial", 3, maps=("depth", "normal"))
    cases["partial"] = (tmp_path / "partial", "no semantic_map/ folder")
    uneven = write_champ_video(tmp_path / "uneven", 4, maps=types)
    (uneven / "dwpose" / "0003.png").unlink()
    cases["uneven"] = (uneven, "different frame counts")
    broken = write_champ_video(tmp_path / "broken", 3, maps=types)
    (broken / "depth" / "0001.png").write_bytes(b"\x89PNG broken")
    cases["broken"] = (broken / "depth" / "0001.png", "unreadable guidance image")
    write_champ_video(tmp_path / "split" / "video_a", 3, maps=types)
    cases["split"] = (tmp_path / "split", "split folder")
    (tmp_path / "badparams").mkdir()
    (tmp_path / "badparams" / "0000.npz").write_bytes(b"not a zip")
    cases["badparams"] = (tmp_path / "badparams", "badparams")
    for name, (path, words) in cases.items():
        motion = broken if name == "broken" else path
        rc, out, err = _run(_args(model_dirs["student"], reference_png, motion, tmp_path / "o.mp4"), capsys)
        assert rc == 2, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and words in lines[0], (name, err)
        assert "Traceback" not in err
    rc, _, err = _run(
        _args(model_dirs["student"], reference_png, tmp_path / "uneven", tmp_path / "o.gif"), capsys
    )
    assert rc == 2 and "o.gif" in err
    with pytest.raises(AnimateError, match="selects no frame"):
        from cosec.animate.inputs import parse_frames

        parse_frames("10:20", 5)


def _read_video(path):
    import imageio.v2 as iio

    reader = iio.get_reader(path)
    try:
        frames = [np.asarray(f) for f in reader]
        fps = reader.get_meta_data()["fps"]
    finally:
        reader.close()
    return np.stack(frames), fps


def test_end_to_end_writes_a_readable_mp4_with_the_right_frame_count(model_dirs, motion_dir, reference_png,
                                                                     tmp_path, capsys):  # fmt: skip
    out = tmp_path / "anim" / "result.mp4"
    argv = _args(model_dirs["student"], reference_png, motion_dir, out)
    argv += ["--window", "8", "--overlap", "2", "--side-by-side", "--png-dir", str(tmp_path / "png"),
             "--frames", "2:27"]  # fmt: skip
    rc, stdout, err = _run(argv, capsys)
    assert rc == 0, err
    assert "LCM 2 steps, CFG off" in stdout and "s/frame" in stdout  # the student's default sampler
    frames, fps = _read_video(out)
    assert frames.shape == (25, 64, 64, 3) and fps == pytest.approx(12.0)
    side, _ = _read_video(out.with_name("result.side_by_side.mp4"))
    assert side.shape == (25, 64, 192, 3)
    assert len(list((tmp_path / "png").glob("*.png"))) == 25
    luma = np.array([0.299, 0.587, 0.114])
    png = np.asarray(Image.open(tmp_path / "png" / "0000.png")) @ luma
    assert np.abs(png - frames[0] @ luma).mean() < 6  # the same picture (H.264 yuv420p keeps the luma)
    # an old checkpoint without a role: the teacher's sampler, said so; CLI overrides win
    rc, stdout, _ = _run(_args(model_dirs["norole"], reference_png, motion_dir, tmp_path / "t.mp4")
                         + ["--frames", ":3", "--steps", "2"], capsys)  # fmt: skip
    assert rc == 0 and "DDIM 2 steps, CFG 3.5" in stdout and "records no role" in stdout
    assert _read_video(tmp_path / "t.mp4")[0].shape[0] == 3
    rc, _, err = _run(_args(model_dirs["student"], reference_png, motion_dir, tmp_path / "c.mp4")
                      + ["--guidance-scale", "3"], capsys)  # fmt: skip
    assert rc == 2 and "without CFG" in err


def test_body_parameter_motion_is_rendered_on_the_fly(model_dirs, reference_png, tmp_path, capsys):
    """A folder of anny body-parameter files (the raw and frames stages' params/) -> guidance maps rendered by
    the project's renderer, then animated; the temporary maps are removed afterwards."""
    import tempfile

    from cosec.body.anny_body import anny_rest_params
    from cosec.body.params import save_frame_params

    params = anny_rest_params(num_frames=3, res=64)
    params.body_pose[:, 0, 0] = np.linspace(0.0, 0.6, 3)  # some motion of the first posed bone
    video = tmp_path / "raw" / "dance" / "rest_000"
    for k in range(3):
        save_frame_params(video / "params" / f"{k:04d}.npz", params, k)
    (video / "meta.json").write_text('{"fps": 8}')
    before = set(Path(tempfile.gettempdir()).glob("cosec-animate-*"))
    out = tmp_path / "body.mp4"
    rc, stdout, err = _run(
        _args(model_dirs["student"], reference_png, video, out) + ["--side-by-side"], capsys
    )
    assert rc == 0, err
    assert "rendered from body parameters" in stdout and "at 8 fps" in stdout
    frames, fps = _read_video(out)
    assert frames.shape == (3, 64, 64, 3) and fps == pytest.approx(8.0)
    side, _ = _read_video(out.with_name("body.side_by_side.mp4"))
    pose = side[:, :, 64:128].astype(int)
    assert pose.max() > 100 and np.abs(pose[0] - pose[2]).sum() > 0  # a body was drawn, and it moved
    after = set(Path(tempfile.gettempdir()).glob("cosec-animate-*"))
    assert after <= before
