"""The teacher of the pipeline: import real Champ weights, or train a Champ-architecture teacher
(small VAE -> stage 1 on frames -> stage 2 motion modules on clips) on the prepared data."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from cosec.atomic import write_json_atomic
from cosec.data.datasets import Phase2Dataset, TeacherDataset
from cosec.diffusion.schedule import NoiseSchedule
from cosec.models import ChampModel, ModelSize
from cosec.train import distributed
from cosec.train.batches import batch_stream
from cosec.train.config import RunConfig, settings_digest
from cosec.train.loop import TrainConfig, train
from cosec.train.tracking import NullTracker, Tracker

from .config import PARTS, PartConfig, TeacherConfig
from .objectives import TeacherStage1, TeacherStage2
from .vae import VAETrainer, calibrate_scaling_factor


def _train_config(part: PartConfig, run: RunConfig, out_dir: Path, desc: str, seed: int) -> TrainConfig:
    return TrainConfig(
        max_steps=part.steps,
        out_dir=str(out_dir),
        lr=part.lr,
        seed=seed,
        desc=desc,
        **run.loop_settings(),
    )


def part_dir(work: str | Path, cfg: TeacherConfig, name: str) -> Path:
    """Checkpoint folder of one sub-stage, keyed by its settings except its length and by all the
    settings of the sub-stages before it: lengthening a part continues it from its last checkpoint
    (the loop resumes exactly), and every part after it starts afresh."""
    lineage = {}
    for part in PARTS[: PARTS.index(name) + 1]:
        lineage[part] = asdict(getattr(cfg, part))
    lineage[name].pop("steps")
    return Path(work) / f"{name}-{settings_digest(lineage, 8)}"


def _curve(history: list[tuple[int, dict[str, float]]], points: int = 10) -> list[dict[str, float]]:
    """The loss history in `points` windows: each window's last step and its mean metrics."""
    if not history:
        return []
    size = max(1, -(-len(history) // points))
    out = []
    for start in range(0, len(history), size):
        window = history[start : start + size]
        keys = window[-1][1].keys()
        mean = {k: sum(logs.get(k, 0.0) for _, logs in window) / len(window) for k in keys}
        out.append({"step": window[-1][0], **{k: round(v, 6) for k, v in mean.items()}})
    return out


CURVE_FILE = "curve.json"  # in each part's folder: the loss curve over every process that trained it


def _record_curve(path: Path, resumed_from: int, history: list) -> list[dict]:
    """The part's curve so far: the windows recorded before `resumed_from` by earlier processes, then this
    process's. Rank 0 writes it back, so the curve survives resuming (the loop's history is per process)."""
    earlier = json.loads(path.read_text()) if path.is_file() else []
    curve = [c for c in earlier if c["step"] <= resumed_from] + _curve(history)
    if distributed.rank() == 0 and history:
        write_json_atomic(curve, path)
    return curve


def _fit(module, cfg: TeacherConfig, name: str, stream, run: RunConfig, work: Path, tracker: Tracker,
         summary: dict | None = None):  # fmt: skip
    """Train `module` (a step module with .trainable()) for the part `name` of cfg, resuming from its part_dir.
    With `summary`, its steps and loss curve (of the steps this call ran) are recorded under `name`."""
    part = getattr(cfg, name)
    if part.steps <= 0:
        return
    module.train()
    params = module.trainable()
    for p in params:
        p.requires_grad_(True)
    config = _train_config(part, run, part_dir(work, cfg, name), name, cfg.seed)
    # Several ranks: DDP (FSDP is for the distillation student). Stage 1 leaves trainable weights out of
    # the loss: the reference UNet on dropped-reference batches, and always its last up-block attention and
    # the guidance encoders' unused attentions (Champ's layout), so DDP must look for unused parameters.
    strategy = "loop" if run.data_parallel == "loop" else "ddp"
    wrapper = distributed.data_parallel(module, strategy, find_unused_parameters=name == "stage1")
    # the step's private generator (noise, timesteps, reference drops, augmentations) resumes with the rest
    result = train(wrapper, stream, params, config, state={"module": module}, tracker=_Prefixed(tracker, name),
                   generators={"step": module.generator},
                   wrapper=None if wrapper is module else wrapper)  # fmt: skip
    curve = _record_curve(Path(config.out_dir) / CURVE_FILE, result.resumed_from, result.history)
    if summary is not None:
        summary[name] = {"steps": result.step, "resumed_from": result.resumed_from, "curve": curve}
    module.eval()


class _Prefixed:
    """Tracker view that prefixes metric names with the sub-stage (vae/, stage1/, stage2/)."""

    def __init__(self, tracker: Tracker, prefix: str):
        self.tracker, self.prefix = tracker, prefix

    def log_params(self, params):
        self.tracker.log_params({self.prefix: dict(params)})

    def log_metrics(self, metrics, step):
        self.tracker.log_metrics({f"{self.prefix}/{k}": v for k, v in metrics.items()}, step)

    def log_image(self, image, name, step=None):
        self.tracker.log_image(image, f"{self.prefix}/{name}", step)

    def log_table(self, table, name):
        self.tracker.log_table(table, f"{self.prefix}/{name}")

    def close(self):
        pass


def _stage2_batches(dataset: Phase2Dataset):
    """Phase2Dataset items -> stage-2 items: the clip, its guidance and one RAS reference frame."""

    class _View(torch.utils.data.Dataset):
        def __len__(self):
            return len(dataset)

        def __getitem__(self, i):
            item = dataset[i]
            return {
                "pixel_values": item["pixel_values"],
                "guidance": item["guidance"],
                "ref_pixels": item["ras_refs"][0, 0],
            }

    return _View()


def train_teacher(
    cfg: TeacherConfig,
    size: ModelSize,
    run: RunConfig,
    data_root: str | Path,
    index: pd.DataFrame,
    work_dir: str | Path,
    tracker: Tracker | None = None,
    summary: dict | None = None,
) -> ChampModel:
    """Small VAE, then stage 1 (R-UNet, D-UNet, guidance encoders on frames), then stage 2 (motion modules).

    Inside a Ray Train worker each rank draws its own batches; gradients are synced as
    ``run.data_parallel`` says (DDP, or the loop's averaging).
    """
    tracker = tracker or NullTracker()
    work = Path(work_dir)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model_cfg = size.build_config()
    device = distributed.device()
    model = ChampModel.build(model_cfg).requires_grad_(False).to(device)
    data_seed = distributed.rank_seed(cfg.seed)
    res = model_cfg.resolution
    frames = TeacherDataset(data_root, index, split="train", seed=cfg.seed, resolution=res)

    vae = VAETrainer(
        model.vae,
        cfg.vae.kl_weight,
        cfg.vae.grad_weight,
        seed=cfg.seed,
        l1_weight=cfg.vae.l1_weight,
        mse_weight=cfg.vae.mse_weight,
        sample_posterior=cfg.vae.sample_posterior,
        flip=cfg.vae.flip,
        permute_prob=cfg.vae.permute_prob,
        hue_prob=cfg.vae.hue_prob,
    )
    _fit(vae, cfg, "vae", batch_stream(frames, cfg.vae.batch_size, data_seed), run, work, tracker, summary)
    model.vae.requires_grad_(False)
    calib = batch_stream(frames, 16, cfg.seed + 1)(0)  # same on every rank: one scaling factor
    scale = calibrate_scaling_factor(model.vae, (next(calib)["pixel_values"].to(device) for _ in range(4)))
    model.config.vae["scaling_factor"] = scale  # used by encode/decode and saved with the checkpoint
    model.vae.register_to_config(scaling_factor=scale)
    tracker.log_metrics({"vae/scaling_factor": scale}, step=0)
    if summary is not None:
        summary["vae_scaling_factor"] = scale

    schedule = NoiseSchedule()
    s1 = TeacherStage1(model, schedule, cfg.stage1.uncond_prob, seed=cfg.seed, snr_gamma=cfg.stage1.snr_gamma,
                       train_image_encoder=cfg.stage1.train_image_encoder)  # fmt: skip
    _fit(
        s1,
        cfg,
        "stage1",
        batch_stream(frames, cfg.stage1.batch_size, data_seed + 2),
        run,
        work,
        tracker,
        summary,
    )
    model.requires_grad_(False)

    model.denoising_unet.add_motion_modules()
    clips = Phase2Dataset(
        data_root,
        index,
        length=10**6,
        num_frames=cfg.stage2.num_frames,
        stride=cfg.stage2.stride,
        split="train",
        seed=cfg.seed,
        resolution=res,
    )
    s2 = TeacherStage2(model, schedule, cfg.stage2.uncond_prob, seed=cfg.seed)
    _fit(
        s2,
        cfg,
        "stage2",
        batch_stream(_stage2_batches(clips), cfg.stage2.batch_size, data_seed + 3),
        run,
        work,
        tracker,
        summary,
    )
    return model.requires_grad_(False).eval()


def load_or_train_teacher(
    cfg: TeacherConfig,
    size: ModelSize,
    run: RunConfig,
    data_root,
    index,
    work_dir,
    tracker: Tracker | None = None,
    summary: dict | None = None,
) -> ChampModel:
    """Champ's release (cfg.champ_dir, first when set), this project's released teacher (cfg.import_dir,
    checksum and shapes checked), or a teacher trained here; with `summary`, a trained teacher's steps and
    loss curves go in it."""
    if cfg.champ_dir:
        from cosec.models.champ_release import load_champ

        return load_champ(cfg.champ_dir, config=size.build_config(), motion_modules=True)
    if cfg.import_dir:
        from .release import load_release

        return load_release(cfg.import_dir, expected=size.build_config().to_dict())
    payload = {
        "cfg": cfg,
        "size": size,
        "run": run,
        "root": str(Path(data_root).resolve()),  # absolute: Ray workers run in their own folder
        "index": index,
        "work": str(Path(work_dir).resolve()),
    }
    result = distributed.launch(_teacher_worker, payload, run, work_dir, "teacher", tracker)
    if summary is not None:
        summary.update(result.get("summary") or {})
    return ChampModel.from_pretrained(result["checkpoint"])


def _teacher_worker(payload: dict, tracker: Tracker | None) -> dict:
    """One worker (or the process itself): the recipe; rank 0 writes the result for the caller."""
    summary: dict = {}
    model = train_teacher(
        payload["cfg"],
        payload["size"],
        payload["run"],
        payload["root"],
        payload["index"],
        payload["work"],
        tracker,
        summary,
    )
    out = Path(payload["work"]) / "result"
    if distributed.rank() == 0:
        model.to("cpu").save_pretrained(out)
    return {"checkpoint": str(out), "summary": summary}
