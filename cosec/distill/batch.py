"""Distillation batches: groups of one target (frame or clip) and pose with several references.

A group is one noisy target latent and one pose p shared by R references: the first ``num_ras`` come
from the target's own video (RAS, intra-source), the rest from other videos (ERS, inter-source).
Distinct reference images are stored once (``ref_latents``/``ref_clip``) and indexed per group, so
the VAE, CLIP and the reference UNet each see a distinct image once per step.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from cosec.models import ChampModel


@dataclass
class DistillBatch:
    latents: torch.Tensor  # (G,4,h,w) target frames or (G,4,F,h,w) target clips (VAE mean * 0.18215)
    guidance: dict[str, torch.Tensor]  # the target pose p: (G,3,H,W) or (G,3,F,H,W), values in [0, 1]
    ref_latents: torch.Tensor  # (U,4,h,w) distinct reference latents
    ref_clip: torch.Tensor  # (U,1,D) their CLIP image embeddings
    ref_index: torch.Tensor  # (G,R) long into U; columns [0, num_ras) are RAS, the rest ERS
    ref_video: torch.Tensor  # (U,) long: source video id of each distinct reference
    num_ras: int

    @property
    def is_clip(self) -> bool:
        return self.latents.ndim == 5

    @property
    def groups(self) -> int:
        return self.latents.shape[0]

    def group_videos(self) -> torch.Tensor:
        """(G, R) source video id of every reference of every group."""
        return self.ref_video[self.ref_index]

    def validate(self, expect_clip: bool | None = None) -> None:
        """Raise ValueError naming the field when shapes or the RAS/ERS layout are inconsistent."""
        lat = self.latents
        if lat.ndim not in (4, 5) or lat.shape[1] != 4:
            raise ValueError(
                f"DistillBatch.latents: expected (G,4,h,w) or (G,4,F,h,w), got {tuple(lat.shape)}"
            )
        if expect_clip is not None and self.is_clip != expect_clip:
            kind = "clips (G,4,F,h,w)" if expect_clip else "frames (G,4,h,w)"
            raise ValueError(f"DistillBatch.latents: this phase needs {kind}, got {tuple(lat.shape)}")
        g = lat.shape[0]
        if not self.guidance:
            raise ValueError("DistillBatch.guidance: empty; at least one guidance type is required")
        for name, img in self.guidance.items():
            if img.ndim != lat.ndim or img.shape[0] != g or img.shape[1] != 3:
                raise ValueError(
                    f"DistillBatch.guidance[{name!r}]: expected ({g},3,...) with {lat.ndim} dims, "
                    f"got {tuple(img.shape)}"
                )
            if self.is_clip and img.shape[2] != lat.shape[2]:
                raise ValueError(
                    f"DistillBatch.guidance[{name!r}]: {img.shape[2]} frames, latents have {lat.shape[2]}"
                )
        u = self.ref_latents.shape[0]
        if tuple(self.ref_latents.shape[1:]) != (4, lat.shape[-2], lat.shape[-1]):
            raise ValueError(
                f"DistillBatch.ref_latents: expected (U,4,{lat.shape[-2]},{lat.shape[-1]}), "
                f"got {tuple(self.ref_latents.shape)}"
            )
        if self.ref_clip.ndim != 3 or self.ref_clip.shape[:2] != (u, 1):
            raise ValueError(f"DistillBatch.ref_clip: expected ({u},1,D), got {tuple(self.ref_clip.shape)}")
        if self.ref_video.shape != (u,):
            raise ValueError(f"DistillBatch.ref_video: expected ({u},), got {tuple(self.ref_video.shape)}")
        idx = self.ref_index
        if idx.ndim != 2 or idx.shape[0] != g or idx.dtype != torch.long:
            raise ValueError(
                f"DistillBatch.ref_index: expected long ({g},R), got {idx.dtype} {tuple(idx.shape)}"
            )
        if idx.numel() and (idx.min() < 0 or idx.max() >= u):
            raise ValueError(f"DistillBatch.ref_index: values must lie in [0, {u})")
        if not 1 <= self.num_ras <= idx.shape[1]:
            raise ValueError(f"DistillBatch.num_ras: must be in [1, R={idx.shape[1]}], got {self.num_ras}")
        videos = self.group_videos()
        ras = videos[:, : self.num_ras]
        if (ras != ras[:, :1]).any():
            raise ValueError("DistillBatch: the RAS references of a group must all come from one video")
        if (videos[:, self.num_ras :] == ras[:, :1]).any():
            raise ValueError("DistillBatch: an ERS reference comes from the group's own (RAS) video")

    def to(self, device: torch.device | str) -> DistillBatch:
        return DistillBatch(
            latents=self.latents.to(device),
            guidance={k: v.to(device) for k, v in self.guidance.items()},
            ref_latents=self.ref_latents.to(device),
            ref_clip=self.ref_clip.to(device),
            ref_index=self.ref_index.to(device),
            ref_video=self.ref_video.to(device),
            num_ras=self.num_ras,
        )


def _image_key(group: int, item: Any, key: Hashable | None) -> Hashable:
    return key if key is not None else ("__unkeyed__", group, item)


@torch.no_grad()
def prepare_batch(
    model: ChampModel, groups: Sequence[dict[str, Any]], device: torch.device | str | None = None
) -> DistillBatch:
    """Turn dataset groups into a :class:`DistillBatch` with one VAE encode and one CLIP pass per distinct image.

    Each group is a dict:
      ``video``: hashable id of the target's video;
      ``target``: pixels in [-1, 1], (3,H,W) for a frame or (3,F,H,W) for a clip;
      ``target_keys`` (optional): one hashable id per target frame (e.g. ``(video, frame)``) for sharing encodes;
      ``guidance``: dict of pose images in [0, 1] shaped like ``target``;
      ``refs``: sequence of reference pixels (3,H,W) in [-1, 1], RAS first;
      ``ref_keys``: one hashable id per reference (equal ids = the same image, encoded once);
      ``ref_videos``: source video id of every reference;
      ``num_ras``: how many leading references are RAS (same video as the target); equal in all groups.
    """
    if not groups:
        raise ValueError("prepare_batch: no groups given")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    num_ras = groups[0]["num_ras"]
    num_refs = len(groups[0]["refs"])
    pixels: dict[Hashable, torch.Tensor] = {}  # every distinct image: targets' frames and references
    ref_keys: list[Hashable] = []
    ref_slot: dict[Hashable, int] = {}
    ref_video_ids: dict[Hashable, int] = {}
    ref_video_of: dict[Hashable, int] = {}
    target_keys: list[list[Hashable]] = []
    index_rows: list[list[int]] = []
    for g, group in enumerate(groups):
        where = f"prepare_batch: group {g}"
        missing = {"video", "target", "guidance", "refs", "ref_keys", "ref_videos", "num_ras"} - set(group)
        if missing:
            raise ValueError(f"{where}: missing keys {sorted(missing)}")
        if group["num_ras"] != num_ras or len(group["refs"]) != num_refs:
            raise ValueError(
                f"{where}: every group needs the same num_ras ({num_ras}) and reference count ({num_refs})"
            )
        if not len(group["refs"]) == len(group["ref_keys"]) == len(group["ref_videos"]):
            raise ValueError(f"{where}: refs, ref_keys and ref_videos differ in length")
        target = group["target"]
        if target.ndim not in (3, 4) or target.shape[0] != 3:
            raise ValueError(f"{where}: target must be (3,H,W) or (3,F,H,W), got {tuple(target.shape)}")
        frames = [target] if target.ndim == 3 else list(target.unbind(1))
        keys = group.get("target_keys") or [None] * len(frames)
        if len(keys) != len(frames):
            raise ValueError(f"{where}: {len(keys)} target_keys for {len(frames)} frames")
        row_keys = [_image_key(g, ("target", i), k) for i, k in enumerate(keys)]
        for key, frame in zip(row_keys, frames, strict=True):
            pixels.setdefault(key, frame)
        target_keys.append(row_keys)
        row = []
        for i, (img, key, video) in enumerate(
            zip(group["refs"], group["ref_keys"], group["ref_videos"], strict=True)
        ):
            if img.ndim != 3 or img.shape[0] != 3:
                raise ValueError(f"{where}: reference {i} must be (3,H,W), got {tuple(img.shape)}")
            if (i < num_ras) != (video == group["video"]):
                kind = "RAS (same video)" if i < num_ras else "ERS (another video)"
                raise ValueError(f"{where}: reference {i} ({key!r}, video {video!r}) should be {kind}")
            pixels.setdefault(key, img)
            if key not in ref_slot:
                ref_slot[key] = len(ref_keys)
                ref_keys.append(key)
                ref_video_of[key] = ref_video_ids.setdefault(video, len(ref_video_ids))
            row.append(ref_slot[key])
        index_rows.append(row)

    all_keys = list(pixels)
    stacked = torch.stack([pixels[k] for k in all_keys]).to(device)
    latents = model.encode_latents(stacked)  # one VAE pass over every distinct image
    slot = {k: i for i, k in enumerate(all_keys)}
    ref_rows = torch.tensor([slot[k] for k in ref_keys], device=device)
    targets = [latents[torch.tensor([slot[k] for k in keys], device=device)] for keys in target_keys]
    if groups[0]["target"].ndim == 3:
        target_latents = torch.cat(targets)  # (G,4,h,w)
    else:
        target_latents = torch.stack([t.transpose(0, 1) for t in targets])  # (G,4,F,h,w)
    guidance = {
        name: torch.stack([group["guidance"][name] for group in groups]).to(device)
        for name in groups[0]["guidance"]
    }
    batch = DistillBatch(
        latents=target_latents,
        guidance=guidance,
        ref_latents=latents[ref_rows],
        ref_clip=model.clip_embeds(stacked[ref_rows]),  # one CLIP pass per distinct reference
        ref_index=torch.tensor(index_rows, dtype=torch.long, device=device),
        ref_video=torch.tensor([ref_video_of[k] for k in ref_keys], dtype=torch.long, device=device),
        num_ras=num_ras,
    )
    batch.validate()
    return batch
