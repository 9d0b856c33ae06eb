"""CoSeC self-contrastive regularisers (paper sec. 2.2): ETA, CoNS (eq. 4) and the temporal term (eqs. 6-7).

All work on the student's consistency outputs grouped as (G, R, ...): G groups sharing one noisy target
latent and one pose p, R references per group. Distances are taken in latent space.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cosec.diffusion.lcd import pair_distance


def temporal_self_dependency(video: torch.Tensor, center: bool = False) -> torch.Tensor:
    """Eq. 6: the f x f cosine-similarity matrix of flattened per-frame latents.

    ``video`` is (B, C, F, h, w) (channels before frames); returns (B, F, F). The paper writes
    diag(d^-1) Z^T Z diag(d^-1) with Z = [v_1..v_f]^T, which is f x f only as Z Z^T: rows are frames.
    ``center`` subtracts the clip's mean frame first: the cosines are then those of each frame's departure
    from the clip's mean, which a static background and the reference's appearance do not enter, where
    the plain cosines of whole latents are all close to 1 (docs/distillation.md, "Temporal term").
    """
    if video.ndim != 5:
        raise ValueError(f"temporal_self_dependency: expected (B,C,F,h,w), got shape {tuple(video.shape)}")
    z = video.float().transpose(1, 2).flatten(2)  # (B, F, C*h*w): row i is v_i
    if center:
        z = z - z.mean(dim=1, keepdim=True)
    z = F.normalize(z, dim=-1, eps=1e-12)  # diag(d^-1) on both sides
    return z @ z.transpose(1, 2)


def temporal_target_distance(
    outputs: torch.Tensor, target: torch.Tensor, kind: str = "huber", huber_c: float = 0.001
) -> torch.Tensor:
    """Mean D(T_out, T_target) of every reference's T against its group's target T.

    ``outputs`` (G, R, F, F) self-dependency matrices of the references' outputs, ``target`` (G, F, F)
    that of the group's ground-truth clip: the ``tmp_target: ground_truth`` form of the temporal term.
    """
    if outputs.ndim != 4 or target.shape != (outputs.shape[0], *outputs.shape[2:]):
        raise ValueError(
            f"temporal_target_distance: expected (G,R,F,F) and (G,F,F), got {tuple(outputs.shape)} "
            f"and {tuple(target.shape)}"
        )
    expanded = target.unsqueeze(1).expand_as(outputs)
    return pair_distance(outputs.flatten(0, 1), expanded.flatten(0, 1), kind, huber_c).mean()


def temporal_regularizer(
    outputs: torch.Tensor,
    latents: torch.Tensor,
    target: str = "references",
    center: bool = False,
    kind: str = "huber",
    huber_c: float = 0.001,
) -> torch.Tensor:
    """R_tmp (unweighted) on the RAS references' consistency outputs ``outputs`` (G, k, C, F, h, w).

    ``target`` "references" is eq. 7, D between the T matrices of RAS pairs (k >= 2); "ground_truth"
    is D between each output's T and the T of the group's clean clip ``latents`` (G, C, F, h, w), which
    carries no gradient. ``center`` is :func:`temporal_self_dependency`'s.
    """
    g, k = outputs.shape[:2]
    t_mat = temporal_self_dependency(outputs.flatten(0, 1), center).unflatten(0, (g, k))
    if target == "references":
        return eta_distance(t_mat, k, kind, huber_c)
    if target == "ground_truth":
        t_gt = temporal_self_dependency(latents.detach(), center)
        return temporal_target_distance(t_mat, t_gt, kind, huber_c)
    raise ValueError(f"temporal_regularizer: target must be 'references' or 'ground_truth', got {target!r}")


def ras_pairs(num_ras: int) -> torch.Tensor:
    """All unordered pairs (i, j), i < j, of the first num_ras references: the ETA pairs, (P, 2)."""
    return torch.triu_indices(num_ras, num_ras, offset=1).T


def inter_source_pairs(videos: torch.Tensor) -> torch.Tensor:
    """All pairs (g, i, j), i < j, whose references come from different videos: the CoNS pairs, (P, 3).

    ``videos`` is (G, R), the source video id of each reference in each group.
    """
    differ = videos[:, :, None] != videos[:, None, :]
    upper = torch.ones_like(differ[0]).triu(diagonal=1)
    return (differ & upper).nonzero()


def eta_distance(
    outputs: torch.Tensor, num_ras: int, kind: str = "huber", huber_c: float = 0.001
) -> torch.Tensor:
    """Mean D over RAS pairs of each group (eq. 4 first term, eq. 7 on T matrices); outputs (G, R, ...)."""
    if num_ras < 2:
        raise ValueError(f"ETA needs at least 2 same-video (RAS) references per group, got {num_ras}")
    pairs = ras_pairs(num_ras).to(outputs.device)
    a = outputs[:, pairs[:, 0]].flatten(0, 1)
    b = outputs[:, pairs[:, 1]].flatten(0, 1)
    return pair_distance(a, b, kind, huber_c).mean()


def cons_distance(
    outputs: torch.Tensor,
    videos: torch.Tensor,
    kind: str = "huber",
    huber_c: float = 0.001,
    margin: float | None = None,
) -> torch.Tensor:
    """Mean D over inter-source pairs of each group (eq. 4 second term, before the minus sign).

    ``margin`` (optional guard, off in the paper) clamps each pair's D at the margin, so pairs already
    that far apart stop pushing and the negative term is bounded below by -phi2 * margin.
    """
    pairs = inter_source_pairs(videos).to(outputs.device)
    if pairs.shape[0] == 0:
        raise ValueError("CoNS needs at least one pair of references from different videos in a group")
    a = outputs[pairs[:, 0], pairs[:, 1]]
    b = outputs[pairs[:, 0], pairs[:, 2]]
    d = pair_distance(a, b, kind, huber_c)
    if margin is not None:
        d = d.clamp(max=margin)
    return d.mean()
