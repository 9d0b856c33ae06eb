"""The real-data route: ingest's three forms and the benchmark layouts (TikTok, UBC Fashion, Wild-TikTok) through
frames -> guidance -> index, on small fixtures written here in each layout; the stage script's clean errors; and
real/dvc.yaml run by DVC, which must never delete what the user brought in."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from scipy.spatial.transform import Rotation

from cosec.data.config import FramesConfig, GuidanceConfig, IndexConfig, IngestConfig
from cosec.data.frames import run_frames
from cosec.data.guidance import run_guidance
from cosec.data.index import build_index
from cosec.data.ingest import load_benchmark, run_ingest
from cosec.data.io import MAP_FOLDERS, DataError, write_png, write_video
from tests.data.smpl_fake import write_fake_smpl

REPO = Path(__file__).resolve().parents[2]
QUIET = {"log": lambda *_: None}
RES = 64  # fixture frames (square: the fits' render_res); decord misreads widths under 32, e.g. 24 or 16
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)


def _fits(folder: Path, n: int, seed: int = 0, names=None) -> None:
    """Champ / 4D-Humans per-frame fits (smpl_results/NNNN.npy: rotation matrices, cam_t, focal, render_res)."""
    rng = np.random.default_rng(seed)
    (folder / "smpl_results").mkdir(parents=True, exist_ok=True)
    for k in range(n):
        rv = rng.normal(0, 0.15, (24, 3))
        fit = {"smpls": {"global_orient": Rotation.from_rotvec(rv[:1]).as_matrix(),
                         "body_pose": Rotation.from_rotvec(rv[1:]).as_matrix(), "betas": np.zeros(10)},
               "cam_t": np.array([0.0, 0.0, 4.0]), "scaled_focal_length": float(RES),
               "render_res": np.array([RES, RES])}  # fmt: skip
        name = names[k] if names else f"{k:04d}"
        np.save(folder / "smpl_results" / f"{name}.npy", fit, allow_pickle=True)


def _rgb(n: int, seed: int, h: int = RES, w: int = RES) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def video_with_fits(folder: Path, n: int = 4, seed: int = 0) -> Path:
    """<folder>/{clip.mp4, smpl_results/}."""
    write_video(folder / "clip.mp4", _rgb(n, seed), fps=10.0)
    _fits(folder, n, seed)
    return folder


def video_beside_fits(parent: Path, name: str, n: int = 4, seed: int = 0) -> None:
    """UBC's files: <parent>/<name>.mp4, the fits in <parent>/<name>/smpl_results/."""
    write_video(parent / f"{name}.mp4", _rgb(n, seed), fps=10.0)
    _fits(parent / name, n, seed)


def frames_with_fits(folder: Path, n: int = 4, seed: int = 0, tiktok_extras: bool = False) -> Path:
    """<folder>/{images/0001.png.., smpl_results/0001.npy..} (the TikTok dataset's numbering, from 1)."""
    names = [f"{k + 1:04d}" for k in range(n)]
    for name, img in zip(names, _rgb(n, seed), strict=True):
        write_png(folder / "images" / f"{name}.png", img)
        if tiktok_extras:  # the TikTok dataset's own folders, which ingest leaves behind
            write_png(folder / "masks" / f"{name}.png", img[..., 0])
            write_png(folder / "densepose" / f"{name}.png", img)
    _fits(folder, n, seed, names)
    return folder


def champ_video(folder: Path, n: int = 3, seed: int = 0, w: int = 80, h: int = 60) -> Path:
    """Champ layout with rendered maps, not square (the frames stage crops it like a video)."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        name = f"{k:04d}.png"
        labels = rng.integers(0, len(PALETTE), (h // 5, w // 5)).repeat(5, 0).repeat(5, 1)
        maps = {
            "images": _rgb(1, seed + k, h, w)[0],
            "depth": rng.integers(0, 256, (h, w), dtype=np.uint8),
            "normal": _rgb(1, seed + 7 + k, h, w)[0],
            "semantic_map": PALETTE[labels],
            "dwpose": _rgb(1, seed + 9 + k, h, w)[0],
            "mask": np.where(labels > 0, 255, 0).astype(np.uint8),
        }
        for m, arr in maps.items():
            write_png(folder / m / name, arr)
    return folder


@pytest.fixture(scope="module")
def smpl_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("smpl")
    write_fake_smpl(root / "smpl" / "SMPL_NEUTRAL.pkl")
    return root


def prepare(cfg: IngestConfig, tmp_path: Path, smpl_dir: Path, resolution: int = 32) -> pd.DataFrame:
    """ingest -> frames -> guidance -> index, as real/dvc.yaml chains them."""
    run_ingest(cfg, **QUIET)
    run_frames(FramesConfig(raw=cfg.out, out=str(tmp_path / "frames"), resolution=resolution), **QUIET)
    gcfg = GuidanceConfig(frames=str(tmp_path / "frames"), out=str(tmp_path / "prepared"), backend="torch",
                          smpl_model_path=str(smpl_dir), contact_sheets=str(tmp_path / "sheets"))  # fmt: skip
    run_guidance(gcfg, **QUIET)
    df, _ = build_index(
        IndexConfig(root=str(tmp_path / "prepared"), out=str(tmp_path / "index.parquet")), **QUIET
    )
    return df


def _videos(df: pd.DataFrame) -> dict[str, list[str]]:
    return {s: sorted(g["video"].unique()) for s, g in df.groupby("split")}


def test_split_definitions_name_their_sources():
    ubc = load_benchmark("ubc")
    test, train = ubc["parts"]["test"]["videos"], ubc["parts"]["train"]["videos"]
    assert len(test) == 100 and len(train) == 500 and not set(test) & set(train)
    assert ubc["source"]["commit"] and ubc["parts"]["test"]["split"] == "ubc"
    tiktok = load_benchmark("tiktok")
    assert tiktok["parts"]["test"] == {"split": "tiktok", "videos": None} and tiktok["reference"] == "first"
    assert tiktok["source"]["repository"] == "Wangt-CN/DisCo" and len(tiktok["source"]["commit"]) == 40
    assert load_benchmark("wild_tiktok")["parts"]["test"]["videos"] == "all"
    with pytest.raises(DataError, match="unknown benchmark 'kinetics'"):
        load_benchmark("kinetics")


def test_champ_layout_is_cropped_like_a_video_and_passed_through(tmp_path, smpl_dir):
    src = tmp_path / "src"
    champ_video(src / "train" / "a", seed=1)
    champ_video(src / "test" / "b", seed=2)
    df = prepare(IngestConfig(source=str(src), out=str(tmp_path / "raw")), tmp_path, smpl_dir)
    assert _videos(df) == {"test": ["b"], "train": ["a"]} and len(df) == 6
    meta = json.loads((tmp_path / "raw" / "train" / "a" / "meta.json").read_text())
    assert meta["ingest"]["form"] == "champ"
    out = tmp_path / "prepared" / "train" / "a"
    for m in MAP_FOLDERS:
        assert Image.open(out / m / "0002.png").size == (32, 32), m
    sem = np.asarray(Image.open(out / "semantic_map" / "0001.png").convert("RGB")).reshape(-1, 3)
    assert {tuple(c) for c in sem} <= {tuple(c) for c in PALETTE}  # labels resized without blending
    mask = np.asarray(Image.open(out / "mask" / "0001.png"))
    assert mask.ndim == 2 and set(np.unique(mask)) <= {0, 255}
    # the crop is the video's: short side 60 -> 32, then the centre 32 of the 43 columns
    src_img = np.asarray(Image.open(src / "train" / "a" / "images" / "0001.png"))
    expect = np.asarray(Image.fromarray(src_img).resize((43, 32), Image.BICUBIC))[:, 5:37]
    assert np.array_equal(np.asarray(Image.open(out / "images" / "0001.png")), expect)


def test_videos_and_frames_with_fits_render_guidance(tmp_path, smpl_dir):
    src = tmp_path / "src"
    video_with_fits(src / "v1", n=4, seed=1)
    video_beside_fits(src, "v2", n=3, seed=2)
    frames_with_fits(src / "f1", n=5, seed=3)
    df = prepare(IngestConfig(source=str(src), out=str(tmp_path / "raw"), split="mine"), tmp_path, smpl_dir)
    assert _videos(df) == {"mine": ["f1", "v1", "v2"]}
    assert df.groupby("video").size().to_dict() == {"f1": 5, "v1": 4, "v2": 3}
    forms = {v: json.loads((tmp_path / "raw" / "mine" / v / "meta.json").read_text())["ingest"]["form"]
             for v in ("v1", "v2", "f1")}  # fmt: skip
    assert forms == {"v1": "video", "v2": "video", "f1": "frames"}
    for v in ("v1", "f1"):
        mask = np.asarray(Image.open(tmp_path / "prepared" / "mine" / v / "mask" / "0000.png"))
        assert (mask > 0).any(), f"{v}: the fitted body is not rendered"
    # frames are the source's, scaled: f1's 64 px frame 2 to 32
    src_img = np.asarray(Image.open(src / "f1" / "images" / "0002.png"))
    expect = np.asarray(Image.fromarray(src_img).resize((32, 32), Image.BICUBIC))
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "prepared" / "mine" / "f1" / "images" / "0001.png")), expect
    )


def test_tiktok_needs_a_video_list_and_takes_only_the_listed_videos(tmp_path, smpl_dir):
    src = tmp_path / "TikTok_dataset"
    for k, vid in enumerate(("00335", "00336", "00337")):
        frames_with_fits(src / vid, n=3, seed=k, tiktok_extras=True)
    cfg = IngestConfig(source=str(src), out=str(tmp_path / "raw"), benchmark="tiktok")
    with pytest.raises(DataError, match=r"ingest.videos: benchmark tiktok has no published video list.*#27"):
        run_ingest(cfg, **QUIET)
    listed = tmp_path / "tiktok_test.txt"
    listed.write_text("# DisCo's test videos\n00335\n00337\n")
    cfg.videos = str(listed)
    df = prepare(cfg, tmp_path, smpl_dir)
    assert _videos(df) == {"tiktok": ["00335", "00337"]} and len(df) == 6
    taken = tmp_path / "raw" / "tiktok" / "00335"
    assert sorted(p.name for p in taken.iterdir()) == [
        "images",
        "meta.json",
        "smpl_results",
    ]  # no masks/densepose
    manifest = json.loads((tmp_path / "raw" / "ingest.json").read_text())
    assert manifest["taken"] == ["tiktok/00335", "tiktok/00337"] and manifest["reference"] == "first"
    # a listed video the source lacks is named, and nothing is silently dropped
    listed.write_text("00335\n00399\n")
    with pytest.raises(
        DataError, match=r"1 of the 2 videos of tiktok test are not in the source \(first: 00399\)"
    ):
        run_ingest(cfg, **QUIET)
    cfg.videos = "all"
    run_ingest(cfg, **QUIET)
    assert sorted(p.name for p in (tmp_path / "raw" / "tiktok").iterdir()) == ["00335", "00336", "00337"]


def test_ubc_takes_the_published_test_list(tmp_path, smpl_dir):
    ubc = load_benchmark("ubc")["parts"]
    test_ids, train_id = ubc["test"]["videos"][:2], ubc["train"]["videos"][0]
    src = tmp_path / "fashion"
    for k, vid in enumerate(test_ids):
        video_beside_fits(src / "test", vid, n=3, seed=k)
    video_beside_fits(src / "train", train_id, n=3, seed=5)
    video_beside_fits(src / "test", "not_a_ubc_video", n=3, seed=6)
    cfg = IngestConfig(source=str(src), out=str(tmp_path / "raw"), benchmark="ubc")
    with pytest.raises(DataError, match=r"98 of the 100 videos of ubc test are not in the source"):
        run_ingest(cfg, **QUIET)
    cfg.on_error = "skip"  # take the ones there are; the rest are listed as rejects
    df = prepare(cfg, tmp_path, smpl_dir)
    assert _videos(df) == {"ubc": sorted(test_ids)}
    rejects = json.loads((tmp_path / "raw" / "rejects_ingest.json").read_text())["rejects"]
    assert [r["item"] for r in rejects] == ["missing"] and "98 of the 100" in rejects[0]["problem"]
    cfg.part, cfg.on_error = "train", "fail"
    cfg.videos = str(tmp_path / "mine.txt")
    Path(cfg.videos).write_text(f"{train_id}\n")
    run_ingest(cfg, **QUIET)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir() if p.is_dir()) == [
        "ubc_train"
    ]  # test copies gone
    cfg.part = "val"
    with pytest.raises(DataError, match=r"ingest.part: 'val' is not a part of benchmark ubc"):
        run_ingest(cfg, **QUIET)


def test_wild_tiktok_takes_every_video_in_one_split(tmp_path, smpl_dir):
    src = tmp_path / "wild"
    video_with_fits(src / "batch1" / "w1", n=3, seed=1)
    frames_with_fits(src / "batch2" / "w2", n=3, seed=2)
    df = prepare(
        IngestConfig(source=str(src), out=str(tmp_path / "raw"), benchmark="wild_tiktok"), tmp_path, smpl_dir
    )
    assert _videos(df) == {"wild_tiktok": ["w1", "w2"]}


def test_bad_videos_are_named_and_skip_keeps_the_others(tmp_path):
    src = tmp_path / "src"
    video_with_fits(src / "good", n=3)
    bad = frames_with_fits(src / "short", n=3)
    (bad / "smpl_results" / "0003.npy").unlink()
    (src / "empty").mkdir()
    (src / "empty" / "depth").mkdir()  # some maps, no images: named as a Champ folder missing its folders
    cfg = IngestConfig(source=str(src), out=str(tmp_path / "raw"))
    with pytest.raises(DataError) as err:
        run_ingest(cfg, **QUIET)
    msg = str(err.value)
    assert "2 problem(s)" in msg and f"{bad / 'smpl_results'}: 2 fit files for 3 frames" in msg
    assert f"{src / 'empty'}: missing guidance folder(s)" in msg
    cfg.on_error = "skip"
    problems = run_ingest(cfg, **QUIET)
    assert problems.bad_items() == {"train/short", "train/empty"}
    assert sorted(p.name for p in (tmp_path / "raw" / "train").iterdir()) == ["good"]


def test_stage_script_prints_one_line(tmp_path):
    (tmp_path / "src" / "00001").mkdir(parents=True)
    params = tmp_path / "p.yaml"
    params.write_text(
        f"ingest:\n  source: {tmp_path / 'src'}\n  benchmark: tiktok\n  out: {tmp_path / 'raw'}\n"
    )
    proc = subprocess.run([sys.executable, "stages/ingest.py", "--params", str(params)], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "COSEC_DEBUG": ""})  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ingest: error:") and "ingest.videos" in lines[0]


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _dvc(project: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1",
           "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_dvc_repro_of_the_real_graph_never_deletes_the_users_data(tmp_path, smpl_dir):
    """The documented route, run by DVC: `dvc repro real/dvc.yaml` up to the index; a rerun keeps everything, a
    new video in the source is picked up, and the source itself is never touched; then the whole graph, with
    evaluate scoring a tiny teacher and student (random weights) on the ingested split."""
    project = tmp_path / "project"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()  # fmt: skip
    for name in files:
        if (REPO / name).is_file() and not name.startswith(("reports/", "data/", "models/", "real/data/")):
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, project / name)
    ubc = load_benchmark("ubc")["parts"]["test"]["videos"]
    src = tmp_path / "fashion"  # outside the project, as a user's dataset would be
    video_beside_fits(src / "test", ubc[0], n=3, seed=1)
    frames_with_fits(src / "test" / ubc[1], n=3, seed=2)
    listed = src / "have.txt"  # inside the source, so DVC tracks the list with it
    listed.write_text(f"{ubc[0]}\n{ubc[1]}\n")
    params = yaml.safe_load((project / "real" / "params.yaml").read_text())
    params["ingest"].update(source=str(src), benchmark="ubc", videos=str(listed))
    params["frames"]["resolution"] = 64
    params["common"]["run"]["progress"] = False
    params["evaluate"].update(teacher=str(tmp_path / "models" / "teacher"),
                              students={"student": str(tmp_path / "models" / "student")})  # fmt: skip
    params["evaluate"]["protocol"].update(splits=["ubc"], teacher_steps=[1], student_steps=[1], grid_frames=2,
                                          max_videos=1, max_frames=2)  # fmt: skip
    params["guidance"].update(smpl_model_path=str(smpl_dir), backend="torch")
    (project / "real" / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):  # fmt: skip
        subprocess.run(cmd, cwd=project, check=True, capture_output=True)
    before = _tree_hash(src)

    _dvc(project, "repro", "real/dvc.yaml:index")
    prepared = project / "real" / "data" / "prepared" / "ubc"
    assert sorted(p.name for p in prepared.iterdir()) == sorted(ubc[:2])
    df = pd.read_parquet(project / "real" / "data" / "index.parquet")
    assert set(df["split"]) == {"ubc"} and len(df) == 6
    raw = project / "real" / "data" / "raw" / "ubc"
    kept = _tree_hash(raw)
    assert _tree_hash(src) == before

    out = _dvc(project, "repro", "real/dvc.yaml:index")  # nothing changed: nothing runs, nothing is removed
    assert "didn't change" in out and _tree_hash(raw) == kept and len(list(prepared.iterdir())) == 2
    _dvc(project, "repro", "real/dvc.yaml:guidance")
    assert _tree_hash(raw) == kept and (prepared / ubc[0] / "depth" / "0002.png").is_file()

    video_beside_fits(src / "test", ubc[2], n=3, seed=3)  # the user adds a video: DVC sees the source changed
    listed.write_text(f"{ubc[0]}\n{ubc[1]}\n{ubc[2]}\n")
    before = _tree_hash(src)
    assert "modified" in _dvc(project, "status", "real/dvc.yaml:ingest")
    _dvc(project, "repro", "real/dvc.yaml:index")
    assert sorted(p.name for p in prepared.iterdir()) == sorted(ubc[:3])
    assert _tree_hash(src) == before  # the source is read, never written

    import torch

    from cosec.models import ChampModel

    torch.manual_seed(0)
    for role in ("teacher", "student"):
        ChampModel.build("tiny", motion_modules=True).save_pretrained(tmp_path / "models" / role, role=role)
    _dvc(project, "repro", "real/dvc.yaml")
    metrics = json.loads((project / "real" / "reports" / "metrics.json").read_text())
    assert set(metrics) == {"ubc"} and {"teacher@1", "student@1"} <= set(metrics["ubc"])
    assert all(np.isfinite(metrics["ubc"][k]["psnr"]) for k in ("teacher@1", "student@1"))
    assert any((project / "real" / "reports" / "summary").iterdir())
    assert _tree_hash(raw) != kept and (raw / ubc[0] / "video.mp4").is_file() and _tree_hash(src) == before
