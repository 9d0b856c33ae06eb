"""Reference attention: the bank is written once per reference and read by every block as key/value = [own; bank]."""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

from cosec.models import ReferenceBank
from cosec.models.reference_attention import BankWriteProcessor, self_attention_modules


def _latents(model, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    s = model.config.latent_size
    return torch.randn(batch, 4, s, s, generator=gen)


def _clip(model, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, model.config.unet["cross_attention_dim"], generator=gen)


@torch.no_grad()
def test_bank_holds_norm1_output_of_all_16_blocks_written_once(tiny, monkeypatch):
    ref_unet = tiny.reference_unet
    blocks = self_attention_modules(ref_unet.unet)
    assert len(blocks) == 16  # SD1.5 structure: 6 down, 1 mid, 9 up transformer blocks
    norm1_outputs: dict[int, list[torch.Tensor]] = {}
    transformer_blocks = [
        m for n, m in ref_unet.unet.named_modules() if type(m).__name__ == "BasicTransformerBlock"
    ]
    order = {id(attn): i for i, (_, attn) in enumerate(blocks)}
    for tb in transformer_blocks:
        i = order[id(tb.attn1)]
        tb.norm1.register_forward_hook(
            lambda m, a, out, i=i: norm1_outputs.setdefault(i, []).append(out.clone())
        )
    calls = []
    original = BankWriteProcessor.__call__
    monkeypatch.setattr(
        BankWriteProcessor,
        "__call__",
        lambda self, *a, **k: (calls.append(self.index), original(self, *a, **k))[1],
    )

    x, clip = _latents(tiny), _clip(tiny)
    bank = ref_unet(x, clip)

    assert sorted(calls) == list(range(16))  # each block writes exactly once per reference pass
    assert len(bank) == 16 and bank.batch_size == 2
    for i, t in enumerate(bank.tensors):
        assert len(norm1_outputs[i]) == 1
        torch.testing.assert_close(t, norm1_outputs[i][0], rtol=0, atol=0)
    # token counts follow the resolution of each block: down (64,64,16,16,4,4), mid 1, up (4x3, 16x3, 64x3)
    assert [t.shape[1] for t in bank.tensors] == [64, 64, 16, 16, 4, 4, 1, 4, 4, 4, 16, 16, 16, 64, 64, 64]


@torch.no_grad()
def test_reader_uses_own_plus_bank_as_key_value(tiny):
    """With identical weights and inputs, the bank equals the D-UNet's own tokens; attention over [own; own]
    equals attention over own, so the read output must equal plain self-attention exactly (up to float error).
    A bank from another input must change it."""
    d = tiny.denoising_unet
    r = tiny.reference_unet
    r.unet.load_state_dict(d.unet.state_dict(), strict=False)  # R-UNet lacks only conv_norm_out / conv_out
    x, clip = _latents(tiny), _clip(tiny)
    t0 = torch.zeros(2, dtype=torch.long)
    plain = d(x, t0, clip, None, None)
    same = d(x, t0, clip, None, r(x, clip))
    other = d(x, t0, clip, None, r(_latents(tiny, seed=5), clip))
    torch.testing.assert_close(same, plain, rtol=1e-4, atol=1e-5)
    assert (other - plain).abs().max() > 1e-3


@torch.no_grad()
def test_every_block_reads_its_bank_entry(tiny):
    d = tiny.denoising_unet
    x, clip = _latents(tiny), _clip(tiny)
    t = torch.tensor([10, 700])
    bank = tiny.reference_unet(_latents(tiny, seed=3), clip)
    base = d(x, t, clip, None, bank)
    for i in range(16):
        perturbed = ReferenceBank([b + 1.0 if j == i else b for j, b in enumerate(bank.tensors)])
        assert (d(x, t, clip, None, perturbed) - base).abs().max() > 1e-5, f"block {i} ignores its bank entry"


@torch.no_grad()
def test_empty_bank_equals_plain_self_attention(tiny):
    d = tiny.denoising_unet
    x, clip = _latents(tiny), _clip(tiny)
    t = torch.tensor([3, 999])
    bank = tiny.reference_unet(x, clip)
    empty = ReferenceBank([b[:, :0] for b in bank.tensors])
    no_bank = d(x, t, clip, None, None)
    torch.testing.assert_close(d(x, t, clip, None, empty), no_bank, rtol=0, atol=0)
    # and the no-bank path is a stock diffusers UNet with its default processors
    stock = UNet2DConditionModel(**tiny.config.unet)
    stock.load_state_dict(d.unet.state_dict(), strict=False)  # d has extra motion-module keys only
    stock.set_attn_processor(AttnProcessor2_0())
    torch.testing.assert_close(stock(x, t, encoder_hidden_states=clip).sample, no_bank, rtol=1e-5, atol=1e-6)


def test_bank_repeat_frames_and_select_layout():
    a = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    bank = ReferenceBank([a, a + 100])
    rep = bank.repeat_frames(3)
    assert rep.tensors[0].shape == (6, 3, 4)
    # b-major: rows 0..2 are reference 0, rows 3..5 reference 1 (matches (B*F) folding of the video UNet)
    torch.testing.assert_close(rep.tensors[0][:3], a[:1].expand(3, 3, 4))
    torch.testing.assert_close(rep.tensors[1][3:], (a + 100)[1:].expand(3, 3, 4))
    sel = bank.select(torch.tensor([1, 1, 0]))
    torch.testing.assert_close(sel.tensors[0], a[[1, 1, 0]])
    cat = ReferenceBank.cat([bank, sel])
    assert cat.batch_size == 5
