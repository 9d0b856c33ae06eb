"""The teacher of the pipeline: import real Champ weights, or train a Champ-architecture teacher
(small VAE -> stage 1 on frames -> stage 2 motion modules on clips) on the prepared data."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch

from cosec.data.datasets import Phase2Dataset, TeacherDataset
from cosec.diffusion.schedule import NoiseSchedule
from cosec.models import ChampModel, ModelConfig, model_config
from cosec.train import distributed
from cosec.train.batches import batch_stream
from cosec.train.loop import TrainConfig, train
from cosec.train.tracking import NullTracker, Tracker, tracker_from_spec

from .objectives import TeacherStage1, TeacherStage2
from .vae import VAETrainer, calibrate_scaling_factor


@dataclass
class ModelSize:
    """Which ModelConfig to build: a preset plus the few overrides the embedded benchmark needs."""

    base: str = "tiny"  # tiny | sd15
    resolution: int | None = None  # pixels; None keeps the preset's
    unet_channels: list[int] | None = None  # UNet block_out_channels; None keeps the preset's
    vae_channels: list[int] | None = None  # VAE block_out_channels: 4 blocks = 8x down (SD), 3 blocks = 4x
    vae_layers_per_block: int | None = None
    guidance_channels: list[int] | None = None  # None: the preset's, cut to the VAE's number of blocks

    def build_config(self) -> ModelConfig:
        cfg = model_config(self.base)
        data = cfg.to_dict()
        if self.unet_channels is not None:
            data["unet"]["block_out_channels"] = list(self.unet_channels)
        if self.vae_channels is not None:
            n = len(self.vae_channels)
            data["vae"]["block_out_channels"] = list(self.vae_channels)
            data["vae"]["down_block_types"] = [data["vae"]["down_block_types"][0]] * n
            data["vae"]["up_block_types"] = [data["vae"]["up_block_types"][0]] * n
            if self.guidance_channels is None:
                data["guidance_block_out_channels"] = list(data["guidance_block_out_channels"])[:n]
        if self.guidance_channels is not None:
            data["guidance_block_out_channels"] = list(self.guidance_channels)
        if self.vae_layers_per_block is not None:
            data["vae"]["layers_per_block"] = self.vae_layers_per_block
        if self.resolution is not None:
            data["resolution"] = self.resolution
            data["vae"]["sample_size"] = self.resolution
        return ModelConfig.from_dict(data)  # the UNet's sample_size follows the latent size there


@dataclass
class PartConfig:
    steps: int = 100
    lr: float = 1e-4
    batch_size: int = 8


@dataclass
class VAEPart(PartConfig):
    kl_weight: float = 1e-6
    grad_weight: float = 1.0
    l1_weight: float = 1.0
    mse_weight: float = 0.0
    sample_posterior: bool = True
    augment: bool = False  # colour-channel permutation + flips (see cosec/teacher/vae.py)


@dataclass
class Stage1Part(PartConfig):
    uncond_prob: float = 0.1  # Champ drops the reference condition this often (for CFG)


@dataclass
class Stage2Part(PartConfig):
    num_frames: int = 8
    stride: int = 1
    uncond_prob: float = 0.1


@dataclass
class TeacherConfig:
    champ_dir: str | None = None  # a folder of Champ's released weights: imported instead of training
    out: str = "models/teacher"
    seed: int = 0
    vae: VAEPart = field(default_factory=lambda: VAEPart(steps=300, lr=1e-3, batch_size=16))
    stage1: Stage1Part = field(default_factory=lambda: Stage1Part(steps=600, lr=3e-4, batch_size=8))
    stage2: Stage2Part = field(default_factory=lambda: Stage2Part(steps=100, lr=3e-4, batch_size=2))


@dataclass
class RunConfig:
    """How training runs, shared by every training stage."""

    num_workers: int = 1  # > 1 (or use_gpu): Ray Train TorchTrainer workers, gradients averaged every step
    use_gpu: bool = False
    checkpoint_every: int = 100
    keep_last: int = 2
    log_every: int = 10
    mixed_precision: str = "bf16"  # autocast on GPU only
    progress: bool = True


def _train_config(part: PartConfig, run: RunConfig, out_dir: Path, desc: str, seed: int) -> TrainConfig:
    return TrainConfig(
        max_steps=part.steps,
        out_dir=str(out_dir),
        lr=part.lr,
        checkpoint_every=run.checkpoint_every,
        keep_last=run.keep_last,
        log_every=run.log_every,
        mixed_precision=run.mixed_precision,
        seed=seed,
        progress=run.progress,
        desc=desc,
    )


PARTS = ("vae", "stage1", "stage2")


def part_dir(work: str | Path, cfg: TeacherConfig, name: str) -> Path:
    """Checkpoint folder of one sub-stage, keyed by its settings except its length and by all the
    settings of the sub-stages before it: lengthening a part continues it from its last checkpoint
    (the loop resumes exactly), and every part after it starts afresh."""
    lineage = {}
    for part in PARTS[: PARTS.index(name) + 1]:
        lineage[part] = asdict(getattr(cfg, part))
    lineage[name].pop("steps")
    digest = hashlib.sha1(json.dumps(lineage, sort_keys=True).encode()).hexdigest()[:8]
    return Path(work) / f"{name}-{digest}"


def _fit(module, cfg: TeacherConfig, name: str, stream, run: RunConfig, work: Path, tracker: Tracker):
    """Train `module` (a step module with .trainable()) for the part `name` of cfg, resuming from its part_dir."""
    part = getattr(cfg, name)
    if part.steps <= 0:
        return
    module.train()
    params = module.trainable()
    for p in params:
        p.requires_grad_(True)
    config = _train_config(part, run, part_dir(work, cfg, name), name, cfg.seed)
    train(module, stream, params, config, state={"module": module}, tracker=_Prefixed(tracker, name))
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
) -> ChampModel:
    """Small VAE, then stage 1 (R-UNet, D-UNet, guidance encoders on frames), then stage 2 (motion modules).

    Inside a Ray Train worker each rank draws its own batches and the loop averages gradients.
    """
    tracker = tracker or NullTracker()
    work = Path(work_dir)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model_cfg = size.build_config()
    device = distributed.device()
    model = ChampModel.build(model_cfg).requires_grad_(False).to(device)
    data_seed = cfg.seed + 7919 * distributed.rank()
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
        augment=cfg.vae.augment,
    )
    _fit(vae, cfg, "vae", batch_stream(frames, cfg.vae.batch_size, data_seed), run, work, tracker)
    model.vae.requires_grad_(False)
    calib = batch_stream(frames, 16, cfg.seed + 1)(0)  # same on every rank: one scaling factor
    scale = calibrate_scaling_factor(model.vae, (next(calib)["pixel_values"].to(device) for _ in range(4)))
    model.config.vae["scaling_factor"] = scale  # used by encode/decode and saved with the checkpoint
    model.vae.register_to_config(scaling_factor=scale)
    tracker.log_metrics({"vae/scaling_factor": scale}, step=0)

    schedule = NoiseSchedule()
    s1 = TeacherStage1(model, schedule, cfg.stage1.uncond_prob, seed=cfg.seed)
    _fit(s1, cfg, "stage1", batch_stream(frames, cfg.stage1.batch_size, data_seed + 2), run, work, tracker)
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
) -> ChampModel:
    if cfg.champ_dir:
        from cosec.models.champ_release import load_champ

        return load_champ(cfg.champ_dir, config=size.build_config(), motion_modules=True)
    if run.num_workers > 1 or run.use_gpu:
        spec = tracker.spec() if hasattr(tracker, "spec") else None
        # Ray workers run in their own working folder: hand them absolute paths
        payload = {
            "cfg": cfg,
            "size": size,
            "run": run,
            "root": str(Path(data_root).resolve()),
            "index": index,
            "work": str(Path(work_dir).resolve()),
            "tracker": spec,
        }
        result = distributed.run(
            _teacher_worker,
            payload,
            num_workers=run.num_workers,
            use_gpu=run.use_gpu,
            storage_path=Path(work_dir).resolve() / "ray",
            name="teacher",
        )
        return ChampModel.from_pretrained(result["checkpoint"])
    return train_teacher(cfg, size, run, data_root, index, work_dir, tracker)


def _teacher_worker(payload: dict) -> dict:
    """One Ray Train worker: the same recipe; rank 0 writes the result for the driver."""
    tracker = tracker_from_spec(payload["tracker"], distributed.rank())
    model = train_teacher(
        payload["cfg"],
        payload["size"],
        payload["run"],
        payload["root"],
        payload["index"],
        payload["work"],
        tracker,
    )
    out = Path(payload["work"]).resolve() / "result"
    if distributed.rank() == 0:
        model.to("cpu").save_pretrained(out)
    return {"checkpoint": str(out)}
