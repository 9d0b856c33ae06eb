"""Reference attention (ReferenceNet) through diffusers attention processors.

The reference UNet's self-attention processors record their input (the ``norm1`` output of
each transformer block) into a bank; the denoising UNet's self-attention processors use
query = own tokens and key/value = concat(own tokens, bank tokens of the same block) along
the token axis. No extra weights: this is Champ's "mutual self-attention" with fusion on
all 16 blocks, writer and reader paired by block position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel


@dataclass
class ReferenceBank:
    """The self-attention inputs of the reference UNet's transformer blocks, in execution order.

    ``tensors[i]`` is (B, N_i, C_i); B is the reference batch (one entry per reference image).
    """

    tensors: list[torch.Tensor]

    @property
    def batch_size(self) -> int:
        return int(self.tensors[0].shape[0])

    def __len__(self) -> int:
        return len(self.tensors)

    def repeat_frames(self, num_frames: int) -> ReferenceBank:
        """(B, N, C) -> (B*F, N, C), b-major so row b*F + f belongs to reference b (the video UNet's layout)."""
        return ReferenceBank([t.repeat_interleave(num_frames, dim=0) for t in self.tensors])

    def select(self, index: torch.Tensor) -> ReferenceBank:
        """Pick / reorder / repeat references along the batch axis."""
        index = torch.as_tensor(index, dtype=torch.long)
        return ReferenceBank([t.index_select(0, index.to(t.device)) for t in self.tensors])

    def to(self, *args, **kwargs) -> ReferenceBank:
        return ReferenceBank([t.to(*args, **kwargs) for t in self.tensors])

    def detach(self) -> ReferenceBank:
        return ReferenceBank([t.detach() for t in self.tensors])

    @staticmethod
    def cat(banks: list[ReferenceBank]) -> ReferenceBank:
        """Concatenate banks along the batch axis (block by block)."""
        return ReferenceBank(
            [torch.cat(parts, dim=0) for parts in zip(*(b.tensors for b in banks), strict=True)]
        )


@dataclass
class BankState:
    """The reference UNet's recording, shared by its processors (kept off nn.Module: never in a state dict)."""

    num_blocks: int
    recorded: list[torch.Tensor | None] = field(default_factory=list)

    def start_recording(self) -> None:
        self.recorded = [None] * self.num_blocks

    def take_recording(self) -> ReferenceBank:
        missing = [i for i, t in enumerate(self.recorded) if t is None]
        if missing:
            raise RuntimeError(f"reference pass did not reach transformer blocks {missing}")
        bank = ReferenceBank(list(self.recorded))  # type: ignore[arg-type]
        self.recorded = []
        return bank


def self_attention_modules(unet: UNet2DConditionModel) -> list[tuple[str, Attention]]:
    """The ``attn1`` of every transformer block in execution order: down blocks, mid block, up blocks."""
    parts = [("down_blocks", unet.down_blocks), ("mid_block", unet.mid_block), ("up_blocks", unet.up_blocks)]
    found = []
    for prefix, part in parts:
        for name, module in part.named_modules():
            if ".transformer_blocks." in name and name.endswith(".attn1"):
                found.append((f"{prefix}.{name}", module))
    return found


class BankWriteProcessor:
    """Reference UNet: record this block's self-attention input, then attend normally."""

    def __init__(self, state: BankState, index: int):
        self.state = state
        self.index = index
        self.inner = AttnProcessor2_0()

    def __call__(
        self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None
    ):
        if self.state.recorded:
            self.state.recorded[self.index] = hidden_states
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class BankReadProcessor:
    """Denoising UNet: key/value = [own tokens; bank tokens of the paired reference block].

    The bank arrives through ``cross_attention_kwargs`` (not module state), so recomputation under
    gradient checkpointing sees the same bank as the forward pass.
    """

    def __init__(self, index: int):
        self.index = index
        self.inner = AttnProcessor2_0()

    def __call__(
        self,
        attn: Attention,
        hidden_states,
        encoder_hidden_states=None,
        attention_mask=None,
        temb=None,
        reference_bank: ReferenceBank | None = None,
    ):
        if reference_bank is not None and encoder_hidden_states is None:
            ref = reference_bank.tensors[self.index]
            if ref.shape[0] != hidden_states.shape[0] or ref.shape[2] != hidden_states.shape[2]:
                raise ValueError(
                    f"reference bank block {self.index}: shape {tuple(ref.shape)} does not fit "
                    f"hidden states {tuple(hidden_states.shape)} (batch and channels must agree)"
                )
            encoder_hidden_states = torch.cat([hidden_states, ref.to(hidden_states.dtype)], dim=1)
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class CrossAttentionProcessor:
    """Plain attention for the cross-attentions of a bank-reading UNet (accepts and ignores the bank)."""

    def __init__(self):
        self.inner = AttnProcessor2_0()

    def __call__(
        self,
        attn,
        hidden_states,
        encoder_hidden_states=None,
        attention_mask=None,
        temb=None,
        reference_bank=None,
    ):
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


def install_bank_writers(unet: UNet2DConditionModel) -> BankState:
    """Reference UNet: a recording processor on every self-attention; returns the shared recording state."""
    blocks = self_attention_modules(unet)
    state = BankState(num_blocks=len(blocks))
    for index, (_, attn) in enumerate(blocks):
        attn.set_processor(BankWriteProcessor(state, index))
    return state


def install_bank_readers(unet: UNet2DConditionModel) -> int:
    """Denoising UNet: bank-reading self-attentions, bank-ignoring cross-attentions; returns the block count."""
    blocks = self_attention_modules(unet)
    readers = {id(attn) for _, attn in blocks}
    for index, (_, attn) in enumerate(blocks):
        attn.set_processor(BankReadProcessor(index))
    for name, module in unet.named_modules():
        if isinstance(module, Attention) and id(module) not in readers and name.endswith(".attn2"):
            module.set_processor(CrossAttentionProcessor())
    return len(blocks)
