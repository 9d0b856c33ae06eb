"""ReferenceLCM: latent consistency distillation of a ReferenceNet teacher with the CoSeC regularisers.

Teacher, target and student D-UNets start from the same weights; only the student trains and the target
is its EMA (paper sec. 2.1, fig. 2). The frozen reference UNet and guidance encoders run once per step
and their outputs (reference bank, pose features) feed all three D-UNets.

``student: full`` keeps three D-UNet copies; ``student: lora`` keeps one frozen base D-UNet with LoRA
adapters (cosec/distill/lora.py): the student is base + adapters, the target base + the adapters' EMA and
the teacher the base with the adapters off.
"""

from __future__ import annotations

import contextlib
import copy
from typing import TYPE_CHECKING

import torch
from torch import nn

from cosec.diffusion.lcd import ConsistencyFunction, DDIMSolver, cfg_combine, pair_distance
from cosec.diffusion.schedule import NoiseSchedule, v_to_x0_eps
from cosec.distill import lora
from cosec.distill.batch import DistillBatch
from cosec.distill.config import DistillConfig, PhaseConfig
from cosec.distill.regularizers import cons_distance, eta_distance, temporal_regularizer
from cosec.train.loop import NonFiniteLossError  # one error type for every training path

if TYPE_CHECKING:
    from cosec.models import ChampModel

LOSS_KEYS = ("loss_cd", "loss_eta", "loss_cons", "loss_tmp", "loss")


def _frozen(module: nn.Module) -> nn.Module:
    module.requires_grad_(False)
    return module.eval()


def _is_motion(name: str) -> bool:
    return ".motion_modules." in name


def build_optimizer(params: list[nn.Parameter], config: DistillConfig) -> torch.optim.Optimizer:
    """AdamW over ``params`` (``config.optimizer: adamw``), or bitsandbytes' 8-bit AdamW (``adamw8bit``, CUDA)."""
    c = config
    if c.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=c.lr, betas=c.adam_betas, weight_decay=c.weight_decay)
    off_gpu = sorted({str(p.device) for p in params if p.device.type != "cuda"})
    if off_gpu:
        raise ValueError(
            f"DistillConfig.optimizer 'adamw8bit' (bitsandbytes) needs CUDA parameters; got {off_gpu}. "
            "Use optimizer: adamw on CPU"
        )
    try:
        import bitsandbytes as bnb
    except ImportError as err:
        raise ImportError(
            "DistillConfig.optimizer 'adamw8bit' needs bitsandbytes: pip install 'cosec-lcd[cuda]' "
            f"(or pip install bitsandbytes) ({err})"
        ) from err
    return bnb.optim.AdamW8bit(params, lr=c.lr, betas=c.adam_betas, weight_decay=c.weight_decay)


class ReferenceLCM(nn.Module):
    """Holds teacher (frozen D-UNet), student (trainable copy) and target (EMA copy) around a ChampModel.

    With ``config.sample_ema_decay`` set, ``average`` is a slower EMA of the student that only
    :meth:`shipped` returns (the weights to save and sample with); the loss never uses it.

    ``model.denoising_unet`` is the teacher (cast to bf16 in place when ``config.low_precision``). The
    student starts from ``student_init`` when given (e.g. the phase-1 student's 2D weights loaded into
    the video D-UNet; only motion-module keys may be missing), else from the teacher.

    With ``config.student == "lora"`` the adapters are injected into ``model.denoising_unet`` in place (it
    becomes the shared frozen base; under ``low_precision`` its base weights are bf16 and the student runs
    under bf16 autocast too); ``student``, ``target`` and ``teacher`` are then ``lora.AdapterView`` callables
    whose parameters are adapter weights only, and ``student_init`` is an adapter state dict
    (``shipped_adapter()`` of a phase-1 LoRA run).
    """

    def __init__(
        self,
        model: ChampModel,
        config: DistillConfig | None = None,
        student_init: dict[str, torch.Tensor] | None = None,
        schedule: NoiseSchedule | None = None,
    ) -> None:
        super().__init__()
        self.config = config or DistillConfig()
        self.schedule = schedule or NoiseSchedule()
        self.model = _frozen(model)
        self.solver = DDIMSolver(self.schedule, self.config.num_solver_steps)
        self.consistency = ConsistencyFunction(
            self.schedule, self.config.sigma_data, self.config.timestep_scaling
        )
        self.is_lora = self.config.student == "lora"
        if self.is_lora:
            self._init_lora(model, student_init)
            return
        self.student = copy.deepcopy(model.denoising_unet).float()
        if student_init is not None:
            result = self.student.load_state_dict(student_init, strict=False)
            bad_missing = [k for k in result.missing_keys if not _is_motion(k)]
            if bad_missing or result.unexpected_keys:
                raise ValueError(
                    "ReferenceLCM student_init: does not fit the D-UNet "
                    f"(missing non-motion keys {bad_missing[:5]}, unexpected {result.unexpected_keys[:5]})"
                )
        self.student.requires_grad_(True).train()
        self.target = _frozen(copy.deepcopy(self.student))
        self.average = (
            _frozen(copy.deepcopy(self.student)) if self.config.sample_ema_decay is not None else None
        )
        if self.config.low_precision:
            model.denoising_unet.to(torch.bfloat16)
        if self.config.gradient_checkpointing:
            self.student.enable_gradient_checkpointing()
        self.generator = torch.Generator().manual_seed(self.config.seed)

    def _init_lora(self, model: ChampModel, student_init: dict[str, torch.Tensor] | None) -> None:
        c = self.config
        base = model.denoising_unet
        if lora.is_adapted(base):
            raise ValueError(
                "ReferenceLCM: the teacher's D-UNet already carries LoRA adapters (one run per model)"
            )
        self.lora_rank = c.lora.resolved_rank(int(model.config.unet["block_out_channels"][0]))
        self.lora_alpha = c.lora.resolved_alpha(self.lora_rank)
        lora.add_lora(base, self.lora_rank, self.lora_alpha, c.lora.target_modules, seed=c.seed)
        live = lora.adapter_parameters(base)
        if student_init is not None:
            unexpected = sorted(set(student_init) - set(live))
            missing = [k for k in live if k not in student_init and not _is_motion(k)]
            if unexpected or missing:
                raise ValueError(
                    "ReferenceLCM student_init: a LoRA student starts from adapter weights (shipped_adapter() "
                    f"of the same rank and targets); missing non-motion keys {missing[:5]}, unexpected "
                    f"{unexpected[:5]}"
                )
            with torch.no_grad():
                for name, value in student_init.items():
                    if live[name].shape != value.shape:
                        raise ValueError(
                            f"ReferenceLCM student_init: {name} has shape {list(value.shape)}, "
                            f"the adapter {list(live[name].shape)} (another LoRA rank?)"
                        )
                    live[name].copy_(value)
        for p in live.values():
            p.requires_grad_(True)
        low = c.low_precision
        self.student = lora.AdapterView(base, lora.AdapterWeights(live, share=True), "student", low)
        self.student.train()
        self.target = lora.AdapterView(base, lora.AdapterWeights(live, share=False), "target", low)
        self.average = (
            lora.AdapterView(base, lora.AdapterWeights(live, share=False), "target", low)
            if c.sample_ema_decay is not None
            else None
        )
        self._teacher = lora.AdapterView(base, None, "teacher", low)
        if low:  # the frozen base in bf16; the adapters keep fp32 master weights
            for name, t in list(base.named_parameters()) + list(base.named_buffers()):
                if ".lora_" not in name and t.is_floating_point():
                    t.data = t.data.to(torch.bfloat16)
        if c.gradient_checkpointing:
            base.enable_gradient_checkpointing()  # teacher and target run under no_grad: unaffected
        self.generator = torch.Generator().manual_seed(c.seed)

    @property
    def teacher(self) -> nn.Module:
        return self._teacher if self.is_lora else self.model.denoising_unet

    @property
    def lora_scale(self) -> float:
        return self.lora_alpha / self.lora_rank

    def _student_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return (
            self.student.named_adapter_parameters() if self.is_lora else list(self.student.named_parameters())
        )

    def use_wrapper(self, wrapper: nn.Module | None) -> None:
        """Run the student's training forward through ``wrapper`` (DDP or FSDP around ``self.student``, which
        syncs gradients only for forwards through it); None: the bare student. Held outside the module tree,
        so never saved: checkpoints and the shipped student keep the student's own keys."""
        self.__dict__["_student_call"] = wrapper

    def trainable_parameters(self, phase: int) -> list[nn.Parameter]:
        """Set requires_grad for the phase's trainable set (all student weights, or its motion modules;
        a LoRA student's adapters, or those of its motion modules).

        Phase 1 trains on frames, which never run the motion modules: they are left out of its set (they
        would get no gradient; a DDP wrapper refuses weights that never reach the loss)."""
        motion_only = self.config.phase(phase).trainable == "motion"
        params = []
        for name, p in self._student_parameters():
            moving = _is_motion(name)
            p.requires_grad_((moving or not motion_only) and not (phase == 1 and moving))
            if p.requires_grad:
                params.append(p)
        if not params:
            raise ValueError(f"ReferenceLCM: phase {phase} has no trainable student parameters")
        return params

    def make_optimizer(self, phase: int) -> torch.optim.Optimizer:
        return build_optimizer(self.trainable_parameters(phase), self.config)

    def train(self, mode: bool = True) -> ReferenceLCM:
        """Only the student follows train/eval; the teacher, target and frozen parts stay in eval mode."""
        self.training = mode
        self.student.train(mode)
        return self

    @torch.no_grad()
    def update_ema(self) -> None:
        """target <- decay * target + (1 - decay) * student (fp32 master weights, buffers copied); the same
        for ``average`` with ``sample_ema_decay`` when it is kept."""
        averages = [(self.target, self.config.ema_decay)]
        if self.average is not None:
            averages.append((self.average, self.config.sample_ema_decay))
        for module, decay in averages:
            for t, s in zip(module.parameters(), self.student.parameters(), strict=True):
                t.lerp_(s.detach().to(t.dtype), 1.0 - decay)
            for t, s in zip(module.buffers(), self.student.buffers(), strict=True):
                t.copy_(s)

    def shipped(self) -> nn.Module:
        """The D-UNet to save and sample with: the slow average when kept, else the online student.

        A LoRA student ships merged: a new plain fp32 DenoisingUNet (base + adapter), whose state dict
        loads into a fresh ChampModel's D-UNet like a full student's."""
        if self.is_lora:
            return lora.merged_unet(self.model.denoising_unet, self.shipped_adapter(), self.lora_scale)
        return self.average if self.average is not None else self.student

    def shipped_adapter(self) -> dict[str, torch.Tensor]:
        """A LoRA run's shipped adapter alone (the average's when kept), for ``lora.save_adapter``."""
        if not self.is_lora:
            raise ValueError("ReferenceLCM.shipped_adapter: only a student: lora run has an adapter")
        view = self.average if self.average is not None else self.student
        return {k: v.detach().clone() for k, v in view.named_adapter_parameters()}

    def save_adapter(self, directory, base_model=None):
        """Write the shipped adapter (``lora.save_adapter``); ``lora.load_lora_student`` merges it on load."""
        return lora.save_adapter(
            directory,
            self.shipped_adapter(),
            self.lora_rank,
            self.lora_alpha,
            self.config.lora.target_modules,
            motion_modules=self.model.denoising_unet.has_motion_modules,
            base_model=base_model,
        )

    def train_state(self) -> dict[str, nn.Module]:
        """What a checkpoint must hold besides the optimiser: student, target and (when kept) the average."""
        state = {"student": self.student, "target": self.target}
        if self.average is not None:
            state["average"] = self.average
        return state

    def _low_precision(self, device: torch.device) -> contextlib.AbstractContextManager:
        if not self.config.low_precision:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    def phase1_step(
        self, batch: DistillBatch, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Eq. 5: L1 = L_CD + phi1 ETA - phi2 CoNS on frame groups. Returns the loss terms (graph attached)."""
        batch.validate(expect_clip=False)
        return self._step(batch, self.config.phase1, generator)

    def phase2_step(
        self, batch: DistillBatch, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Eq. 8: L2 = L_CD + lambda R_tmp (+ optional ETA/CoNS) on clip groups."""
        batch.validate(expect_clip=True)
        return self._step(batch, self.config.phase2, generator)

    def train_step(
        self, batch: DistillBatch, optimizer: torch.optim.Optimizer, phase: int
    ) -> dict[str, torch.Tensor]:
        """Forward, finite check, backward, gradient clip, optimizer step and EMA update; detached losses."""
        losses = self.phase1_step(batch) if phase == 1 else self.phase2_step(batch)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        if not torch.isfinite(norm):
            optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(
                f"ReferenceLCM phase {phase}: gradient norm is {norm.item()}; weights untouched"
            )
        optimizer.step()
        self.update_ema()
        return {k: v.detach() for k, v in losses.items()}

    def _conditioning(self, clip, bank, features):
        from cosec.models import Conditioning

        return Conditioning(clip_embeds=clip, bank=bank, guidance_features=features)

    def _step(
        self, batch: DistillBatch, cfg: PhaseConfig, generator: torch.Generator | None
    ) -> dict[str, torch.Tensor]:
        c = self.config
        model = self.model
        lat = batch.latents.float()
        device = lat.device
        gen = generator or self.generator
        g, k = batch.groups, batch.num_ras
        use_ers = cfg.cons_weight > 0
        tmp_pairs = cfg.tmp_weight > 0 and cfg.tmp_target == "references"  # eq. 7 compares RAS pairs
        if (cfg.eta_weight > 0 or tmp_pairs) and k < 2:
            raise ValueError(f"ReferenceLCM: ETA / temporal ETA need >= 2 RAS references per group, got {k}")
        if cfg.tmp_weight > 0 and not batch.is_clip:
            raise ValueError(
                "ReferenceLCM: the temporal term (tmp_weight > 0) needs clip batches (G,4,F,h,w)"
            )
        n_refs = batch.ref_index.shape[1] if use_ers else k
        if use_ers and n_refs == k:
            raise ValueError("ReferenceLCM: CoNS (cons_weight > 0) needs ERS references in every group")
        used = batch.ref_index[:, :n_refs]  # (G, n_refs)

        # Frozen conditioning, once per step: reference pass over distinct references, guidance encoders once.
        with torch.no_grad():
            distinct, inverse = torch.unique(used, return_inverse=True)
            bank = model.reference_unet(batch.ref_latents[distinct].float(), batch.ref_clip[distinct].float())
            features = model.guidance_encoders(batch.guidance)
        clip = batch.ref_clip[distinct].float()

        # One noisy target latent per group at t_{n+k}, shared by all its references (eq. 4: same x and p).
        t_start, t_end = self.solver.sample_pairs(g, gen, device)
        noise = torch.randn(lat.shape, generator=gen, dtype=lat.dtype).to(device)
        x_start = self.solver.add_noise(lat, noise, t_start)

        def rep(x: torch.Tensor, n: int) -> torch.Tensor:
            return x.repeat_interleave(n, dim=0)

        # Student over every (group, reference) item: RAS items serve L_CD and ETA, ERS items CoNS.
        flat = inverse.reshape(-1)
        cond_all = self._conditioning(clip[flat], bank.select(flat), rep(features, n_refs))
        x_all, t_all = rep(x_start, n_refs), rep(t_start, n_refs)
        student = self.__dict__.get("_student_call") or self.student  # the DDP/FSDP wrapper when set
        v_student = model.predict(student, x_all, t_all, cond_all)
        f_student = self.consistency(x_all, v_student.float(), t_all)
        f_groups = f_student.unflatten(0, (g, n_refs))

        # Teacher (CFG, LCM convention) and target on the RAS items, no grad, optionally bf16.
        ras = inverse[:, :k].reshape(-1)
        with torch.no_grad(), self._low_precision(device):
            cond_ras = self._conditioning(clip[ras], bank.select(ras), rep(features, k))
            x_ras, t_ras, t_end_ras = rep(x_start, k), rep(t_start, k), rep(t_end, k)
            v_cond = model.predict(self.teacher, x_ras, t_ras, cond_ras).float()
            alpha, sigma = self.schedule.alpha_sigma(t_ras, lat.ndim)
            x0_w, eps_w = v_to_x0_eps(x_ras, v_cond, alpha.to(device), sigma.to(device))
            if cfg.w > 0:
                # The unconditional branch (no clip, no bank, pose kept) ignores the reference: once per group.
                uncond = self._conditioning(clip[inverse[:, 0]], None, features).uncond()
                v_uncond = rep(model.predict(self.teacher, x_start, t_start, uncond).float(), k)
                x0_u, eps_u = v_to_x0_eps(x_ras, v_uncond, alpha.to(device), sigma.to(device))
                x0_w, eps_w = cfg_combine(x0_w, x0_u, cfg.w), cfg_combine(eps_w, eps_u, cfg.w)
            x_prev = self.solver.step(x0_w, eps_w, t_end_ras)
            v_target = model.predict(self.target, x_prev, t_end_ras, cond_ras).float()
            f_target = self.consistency(x_prev, v_target, t_end_ras)

        dist = dict(kind=c.distance, huber_c=c.huber_c)
        zero = f_student.new_zeros(())
        losses = {"loss_cd": pair_distance(f_groups[:, :k].flatten(0, 1), f_target, **dist).mean()}
        losses["loss_eta"] = (
            cfg.eta_weight * eta_distance(f_groups, k, **dist) if cfg.eta_weight > 0 else zero
        )
        if use_ers:
            videos = batch.ref_video[distinct][inverse]
            d_ers = cons_distance(f_groups, videos, margin=c.cons_margin, **dist)
            losses["loss_cons"] = (
                -cfg.cons_weight * d_ers
            )  # eq. 4: minus sign pushes inter-source outputs apart
        else:
            losses["loss_cons"] = zero
        if cfg.tmp_weight > 0:  # eq. 7 (tmp_target references), or against the clean clip's T
            r_tmp = temporal_regularizer(f_groups[:, :k], lat, cfg.tmp_target, cfg.tmp_center, **dist)
            losses["loss_tmp"] = cfg.tmp_weight * r_tmp
        else:
            losses["loss_tmp"] = zero
        losses["loss"] = losses["loss_cd"] + losses["loss_eta"] + losses["loss_cons"] + losses["loss_tmp"]
        bad = [name for name, value in losses.items() if not torch.isfinite(value).all()]
        if bad:
            values = ", ".join(f"{name}={losses[name].item()}" for name in LOSS_KEYS)
            raise NonFiniteLossError(
                f"ReferenceLCM: non-finite loss ({values}); stop and keep the last good checkpoint"
            )
        return losses
