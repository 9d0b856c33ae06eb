from dataclasses import dataclass, field
from typing import Literal

import pytest

from cosec.config import ConfigError, from_dict, load_section


@dataclass
class Inner:
    lr: float = 1e-4
    steps: int = 10


@dataclass
class Outer:
    name: str = "x"
    kind: Literal["huber", "l2"] = "huber"
    inner: Inner = field(default_factory=Inner)
    sizes: tuple[int, ...] = (1, 2)
    path: str | None = None


def test_nested_parse_and_int_to_float(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("stage:\n  inner: {lr: 1, steps: 5}\n  sizes: [3, 4]\n  kind: l2\n")
    cfg = load_section(p, "stage", Outer)
    assert cfg.inner.lr == 1.0 and isinstance(cfg.inner.lr, float)
    assert cfg.sizes == (3, 4) and cfg.kind == "l2" and cfg.path is None


def test_missing_section_gives_defaults(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("other: {}\n")
    assert load_section(p, "stage", Outer) == Outer()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"inner": {"lrr": 1}}, "unknown key(s) ['lrr']"),
        ({"kind": "l1"}, "must be one of"),
        ({"inner": {"steps": "ten"}}, "expected int"),
        ({"inner": {"steps": True}}, "expected int"),
    ],
)
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ConfigError, match="params") as err:
        from_dict(Outer, data)
    assert message in str(err.value)


def test_bad_yaml_names_the_file(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("stage: [unclosed\n")
    with pytest.raises(ConfigError, match="params.yaml: not valid YAML"):
        load_section(p, "stage", Outer)


def test_a_three_block_vae_gives_4x_latents_and_matching_guidance_encoders():
    import torch

    from cosec.models import ChampModel, ModelSize

    cfg = ModelSize(vae_channels=[8, 16, 32]).build_config()
    assert (cfg.vae_factor, cfg.latent_size, cfg.unet["sample_size"]) == (4, 16, 16)
    assert len(cfg.guidance_block_out_channels) == 3
    model = ChampModel.build(cfg)
    pixels = torch.rand(1, 3, 64, 64) * 2 - 1
    assert model.encode_latents(pixels).shape == (1, 4, 16, 16)
    cond = model.condition(pixels, {k: torch.rand(1, 3, 64, 64) for k in cfg.guidance_types})
    assert cond.guidance_features.shape[-2:] == (16, 16)
    with pytest.raises(ValueError, match="guidance encoders downsample 8x"):
        ModelSize(vae_channels=[8, 16, 32], guidance_channels=[16, 32, 32, 32]).build_config()
