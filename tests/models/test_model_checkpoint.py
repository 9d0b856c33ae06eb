"""Champ manifests, Champ folder import (through the inverse mapping), the project's safetensors checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from cosec.cli import main as cosec_main
from cosec.models import ChampModel
from cosec.models.champ_release import (
    ChampCheckpointError,
    champ_state_dicts,
    check_manifest,
    export_champ,
    load_champ,
)

MANIFEST_FILES = [
    "denoising_unet",
    "guidance_encoder_depth",
    "guidance_encoder_dwpose",
    "guidance_encoder_normal",
    "guidance_encoder_semantic_map",
    "image_encoder",
    "motion_module",
    "reference_unet",
    "vae",
]


@torch.no_grad()
def _outputs(model: ChampModel, make_inputs) -> torch.Tensor:
    ref, guidance = make_inputs(model, frames=2)
    cond = model.condition(ref, guidance)
    x = torch.randn(2, 4, 2, 8, 8, generator=torch.Generator().manual_seed(4))
    v = model.predict(model.denoising_unet, x, torch.tensor([10, 900]), cond)
    return torch.cat([v.flatten(), model.decode_latents(x[:, :, 0]).flatten()])


def test_check_manifest_shared(shared_dir, capsys):
    manifest = shared_dir / "champ_manifest"
    if not manifest.is_dir():
        pytest.skip(f"Champ manifest folder not found at {manifest} (shared/ must sit beside the repository)")
    assert cosec_main(["champ", "check-manifest", str(manifest)]) == 0
    out = capsys.readouterr().out
    for name in MANIFEST_FILES:
        data = json.loads((manifest / f"{name}.json").read_text())
        assert f"{name}.json: matched {len(data)}/{len(data)} keys OK" in out
    assert "9/9 files fully matched" in out


def _write_manifest(folder, name, sd):
    folder.mkdir(parents=True, exist_ok=True)
    data = {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")} for k, v in sd.items()}
    (folder / f"{name}.json").write_text(json.dumps(data))


def test_check_manifest_tolerates_variants_and_lists_mismatches(tiny, tmp_path, capsys):
    sds = champ_state_dicts(tiny, legacy_vae_names=True)
    ok = tmp_path / "ok"
    for name, sd in sds.items():
        _write_manifest(ok, name, sd)
    # reference UNet saved with the output head, CLIP with its position_ids buffer
    ref = dict(sds["reference_unet"])
    ref["conv_norm_out.weight"] = torch.zeros(16)
    ref["conv_out.weight"] = torch.zeros(4, 16, 3, 3)
    _write_manifest(ok, "reference_unet", ref)
    clip = dict(
        sds["image_encoder"], **{"vision_model.embeddings.position_ids": torch.zeros(1, 17, dtype=torch.long)}
    )
    _write_manifest(ok, "image_encoder", clip)
    results = {r.name: r for r in check_manifest(ok, "tiny")}
    assert all(r.ok for r in results.values()) and len(results) == 9
    assert sorted(results["reference_unet"].tolerated) == ["conv_norm_out.weight", "conv_out.weight"]
    assert any(".query." in k for k in sds["vae"])  # the legacy VAE names were exercised

    bad = tmp_path / "bad"
    vae = dict(sds["vae"])
    vae["encoder.conv_in.weight"] = torch.zeros(1, 2, 3, 3)
    vae["decoder.not_a_layer.weight"] = torch.zeros(3)
    del vae["decoder.conv_out.bias"]
    _write_manifest(bad, "vae", vae)
    _write_manifest(bad, "motion_module", sds["motion_module"])
    assert cosec_main(["champ", "check-manifest", str(bad), "--config", "tiny"]) == 1
    out = capsys.readouterr().out
    assert "vae.json: matched" in out and "MISMATCH" in out
    assert "encoder.conv_in.weight: file [1, 2, 3, 3]" in out
    assert "decoder.not_a_layer.weight" in out and "decoder.conv_out.bias" in out
    assert "motion_module.json: matched" in out and "1/2 files fully matched" in out


def test_save_and_load_round_trip_identical(tiny_random, tmp_path, make_inputs):
    tiny_random.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    loaded = ChampModel.from_pretrained(tmp_path / "ckpt")
    assert loaded.denoising_unet.has_motion_modules
    torch.testing.assert_close(
        _outputs(loaded, make_inputs), _outputs(tiny_random, make_inputs), rtol=0, atol=0
    )
    torch.testing.assert_close(
        loaded.image_encoder.vision_model.embeddings.position_ids, torch.arange(17).expand(1, -1)
    )


def test_from_pretrained_rejects_wrong_keys(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "ckpt")
    from safetensors.torch import load_file, save_file

    path = tmp_path / "ckpt" / "model.safetensors"
    state = load_file(str(path))
    state.pop("vae.decoder.conv_out.bias")
    save_file(state, str(path))
    with pytest.raises(
        ChampCheckpointError, match=r"model\.safetensors: missing keys \(1\): vae\.decoder\.conv_out\.bias"
    ):
        ChampModel.from_pretrained(tmp_path / "ckpt")


def test_champ_folder_import_round_trip(tiny_random, tmp_path, make_inputs, capsys):
    folder = export_champ(tiny_random, tmp_path / "champ", legacy_vae_names=True)
    names = sorted(p.name for p in folder.glob("*.pth"))
    assert names == sorted(f"{n}.pth" for n in MANIFEST_FILES if n not in ("image_encoder", "vae"))
    # Champ's reference UNet file may still carry the output head: tolerated
    ref = torch.load(folder / "reference_unet.pth", weights_only=True)
    ref.update({"conv_out.weight": torch.zeros(4, 16, 3, 3), "conv_out.bias": torch.zeros(4)})
    torch.save(ref, folder / "reference_unet.pth")
    # fp16 files load (cast to the requested dtype)
    mm = torch.load(folder / "motion_module.pth", weights_only=True)
    torch.save({k: v.half() for k, v in mm.items()}, folder / "motion_module.pth")

    loaded = load_champ(folder, "tiny")
    assert loaded.denoising_unet.has_motion_modules and loaded.dtype == torch.float32
    expected = tiny_random
    with torch.no_grad():
        for n, p in list(expected.named_parameters()) + list(expected.named_buffers()):
            if ".motion_modules." in n:
                p.copy_(p.half().float())  # the motion file (weights and pe tables) was stored in fp16
    torch.testing.assert_close(_outputs(loaded, make_inputs), _outputs(expected, make_inputs), rtol=0, atol=0)

    assert cosec_main(["champ", "import", str(folder), str(tmp_path / "out"), "--config", "tiny"]) == 0
    assert "saved" in capsys.readouterr().out
    again = ChampModel.from_pretrained(tmp_path / "out")
    torch.testing.assert_close(_outputs(again, make_inputs), _outputs(expected, make_inputs), rtol=0, atol=0)


def test_champ_folder_bad_files_are_named(tiny, tmp_path, capsys):
    folder = export_champ(tiny, tmp_path / "champ")
    # truncated file
    path = folder / "guidance_encoder_normal.pth"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ChampCheckpointError, match=r"guidance_encoder_normal\.pth: cannot read"):
        load_champ(folder, "tiny")
    export_champ(tiny, folder)
    # wrong keys and a wrong shape
    sd = torch.load(folder / "denoising_unet.pth", weights_only=True)
    sd["conv_in.weight"] = torch.zeros(16, 5, 3, 3)
    sd["mid_block.bogus.weight"] = torch.zeros(2)
    del sd["conv_out.bias"]
    torch.save(sd, folder / "denoising_unet.pth")
    with pytest.raises(ChampCheckpointError) as err:
        load_champ(folder, "tiny")
    msg = str(err.value)
    assert "denoising_unet.pth" in msg
    assert "mid_block.bogus.weight" in msg and "conv_in.weight: file [16, 5, 3, 3]" in msg
    assert "unet.conv_out.bias" in msg
    assert cosec_main(["champ", "import", str(folder), str(tmp_path / "out"), "--config", "tiny"]) == 2
    assert "denoising_unet.pth" in capsys.readouterr().err
    # a missing file is named too
    (folder / "reference_unet.pth").unlink()
    with pytest.raises(ChampCheckpointError, match=r"reference_unet\.pth"):
        load_champ(folder, "tiny")


def test_champ_folder_fp16_and_image_only(tiny, tmp_path):
    folder = export_champ(tiny, tmp_path / "champ")
    half = load_champ(folder, "tiny", dtype=torch.float16, motion_modules=False)
    assert not half.denoising_unet.has_motion_modules
    assert {p.dtype for p in half.parameters()} == {torch.float16}
    assert half.image_encoder.vision_model.embeddings.position_ids.dtype == torch.int64
    sd = tiny.denoising_unet.unet.state_dict()
    torch.testing.assert_close(half.denoising_unet.unet.conv_in.weight, sd["conv_in.weight"].half())
    # a folder whose unet config does not match the requested size is refused, naming the file
    with pytest.raises(ChampCheckpointError, match=r"unet/config\.json: config does not match"):
        load_champ(folder, "sd15")
