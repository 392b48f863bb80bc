"""convert-generator, convert-mapper and stats on checkpoints in the official layouts."""

import argparse
import json
import shutil

import numpy as np
import pytest
import torch

from conftest import SMALL_G, run_ort
from styleclip_toolkit.convert_generator import convert_generator
from styleclip_toolkit.convert_mapper import LevelsMapper, build_random_mapper_checkpoint, convert_mapper
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.pack import read_pack_json, slugify
from styleclip_toolkit.stats import run_stats
from styleclip_toolkit.stylegan2 import (build_random_checkpoint, generator_from_state_dict, mean_w,
                                         styles_to_flat, w_to_styles)


@pytest.fixture
def pack(small_pack, tmp_path):
    dst = tmp_path / "pack"
    shutil.copytree(small_pack, dst)
    return dst


def test_convert_generator_writes_pack_json(small_pack, small_checkpoint):
    meta = read_pack_json(small_pack)
    assert meta["format"] == "styleclip-pack" and meta["version"] == 1
    assert (meta["resolution"], meta["zDim"], meta["wDim"], meta["numWs"]) == (64, 16, 16, 10)
    layout = meta["styleLayout"]
    assert [e["name"] for e in layout[:5]] == ["conv1", "to_rgb1", "convs.0", "convs.1", "to_rgbs.0"]
    assert [e["channels"] for e in layout] == [16, 16, 16, 12, 12, 12, 8, 8, 8, 8, 8, 8, 4, 4]
    assert [e["wIndex"] for e in layout] == [0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7, 8, 9]
    assert meta["defaults"] == {"neutral": "face", "targetTemplate": "face with {}", "strength": 4.1,
                                "threshold": None}
    assert meta["mappers"] == [] and meta["untrained"] is False
    w_avg = np.load(small_pack / "generator/w_avg.npy")
    assert w_avg.dtype == np.float32 and w_avg.shape == (16,)
    np.testing.assert_array_equal(w_avg, small_checkpoint["latent_avg"].numpy())


def test_w_avg_without_latent_avg_is_mean_of_mapped_samples(tmp_path):
    ckpt = build_random_checkpoint(**SMALL_G, seed=2, with_latent_avg=False)
    ckpt["args"] = argparse.Namespace(size=64)  # train.py checkpoints carry their args
    torch.save(ckpt, tmp_path / "g.pt")
    convert_generator(tmp_path / "g.pt", tmp_path / "pack")
    expected = mean_w(generator_from_state_dict(ckpt["g_ema"]), 10_000, seed=0)
    np.testing.assert_allclose(np.load(tmp_path / "pack/generator/w_avg.npy"), expected.numpy(), rtol=1e-6)


def test_bare_state_dict_without_noise_buffers(tmp_path, small_checkpoint, capsys):
    sd = {k: v for k, v in small_checkpoint["g_ema"].items() if not k.startswith("noises.")}
    torch.save(sd, tmp_path / "bare.pt")
    meta = convert_generator(tmp_path / "bare.pt", tmp_path / "pack")
    assert meta["numWs"] == 10
    assert "no noise buffers" in capsys.readouterr().err


def test_not_a_generator(tmp_path):
    torch.save({"state_dict": {"x": torch.zeros(1)}}, tmp_path / "m.pt")
    with pytest.raises(ToolkitError, match="no 'g_ema'"):
        convert_generator(tmp_path / "m.pt", tmp_path / "pack")


def _reference_levels_mapper(sd, wplus, levels):
    """LevelsMapper written out by hand from research notes §3.1."""
    out = []
    for level, attr, rows in (("coarse", "course_mapping", slice(0, 4)), ("medium", "medium_mapping", slice(4, 8)),
                              ("fine", "fine_mapping", slice(8, None))):
        x = wplus[:, rows]
        if not levels[level]:
            out.append(np.zeros_like(x))
            continue
        x = x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + 1e-8)  # PixelNorm over the LAYER axis
        for i in range(1, 5):
            w = sd[f"mapper.{attr}.mapping.{i}.weight"].double().numpy()
            b = sd[f"mapper.{attr}.mapping.{i}.bias"].double().numpy()
            x = x @ (w * 0.01 / np.sqrt(w.shape[1])).T + b * 0.01
            x = np.where(x >= 0, x, 0.2 * x) * np.sqrt(2)  # the last layer is activated too
        out.append(x)
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("description,no_fine", [("curly hair", True), ("Purple hair!", False)])
def test_convert_mapper_matches_official_semantics(pack, small_checkpoint, tmp_path, description, no_fine):
    ckpt = build_random_mapper_checkpoint(description, no_fine, dim=16, seed=4,
                                          decoder_state_dict=small_checkpoint["g_ema"])
    assert any(k.startswith("decoder.") for k in ckpt["state_dict"])
    assert ("mapper.fine_mapping.mapping.1.weight" in ckpt["state_dict"]) is not no_fine
    torch.save(ckpt, tmp_path / "m.pt")
    entry = convert_mapper(tmp_path / "m.pt", pack)
    slug = slugify(description)
    assert entry == {"name": description, "slug": slug, "file": f"mappers/{slug}.onnx",
                     "levels": {"coarse": True, "medium": True, "fine": not no_fine}}
    assert read_pack_json(pack)["mappers"] == [entry]

    wplus = np.random.RandomState(1).randn(3, 10, 16).astype(np.float32)
    expected = _reference_levels_mapper(ckpt["state_dict"], wplus.astype(np.float64), entry["levels"])
    mapper = LevelsMapper(entry["levels"], 16)
    mapper.load_state_dict({k[7:]: v for k, v in ckpt["state_dict"].items() if k.startswith("mapper.")})
    with torch.no_grad():
        np.testing.assert_allclose(mapper(torch.from_numpy(wplus)).numpy(), expected, rtol=1e-4, atol=1e-5)
    delta = run_ort(pack / entry["file"], tmp_path / "ort", wplus=wplus)["delta"]
    np.testing.assert_allclose(delta, expected, rtol=1e-4, atol=1e-5)
    if no_fine:
        assert not delta[:, 8:].any()


def test_convert_mapper_prompt_override_and_replacement(pack, tmp_path):
    torch.save(build_random_mapper_checkpoint("curly hair", True, dim=16), tmp_path / "m.pt")
    convert_mapper(tmp_path / "m.pt", pack)
    convert_mapper(tmp_path / "m.pt", pack)  # same slug: replaced, not duplicated
    convert_mapper(tmp_path / "m.pt", pack, prompt="Curly Hair 2")
    assert [m["slug"] for m in read_pack_json(pack)["mappers"]] == ["curly_hair", "curly_hair_2"]


def test_convert_mapper_refuses_mismatches(pack, tmp_path):
    torch.save(build_random_mapper_checkpoint("afro", True, dim=512), tmp_path / "wide.pt")
    with pytest.raises(ToolkitError, match="width 512 but the pack's generator has wDim 16"):
        convert_mapper(tmp_path / "wide.pt", pack)
    ckpt = build_random_mapper_checkpoint("afro", True, dim=16)
    ckpt["opts"]["work_in_stylespace"] = True
    torch.save(ckpt, tmp_path / "s.pt")
    with pytest.raises(ToolkitError, match="StyleSpace mappers"):
        convert_mapper(tmp_path / "s.pt", pack)
    ckpt = build_random_mapper_checkpoint("afro", True, dim=16)
    del ckpt["opts"]["description"]
    torch.save(ckpt, tmp_path / "n.pt")
    with pytest.raises(ToolkitError, match="--prompt"):
        convert_mapper(tmp_path / "n.pt", pack)


def test_stats_follow_the_tf_convention(pack):
    mean, std = run_stats(pack, samples=300, truncation=0.5, seed=5, batch=128)
    gen = generator_from_state_dict(build_random_checkpoint(**SMALL_G, seed=1)["g_ema"])
    w_avg = torch.from_numpy(np.load(pack / "generator/w_avg.npy"))
    z = torch.from_numpy(np.random.RandomState(5).randn(300, 16).astype(np.float32))
    with torch.no_grad():
        w = w_avg + 0.5 * (gen.style(z) - w_avg)  # ψ on every W+ row
        s = styles_to_flat(w_to_styles(gen, w[:, None].repeat(1, 10, 1))).double().numpy()
    # s comes from float32 forwards in batches of 128 vs one batch of 300: BLAS blocking differs by ~1e-6.
    np.testing.assert_allclose(mean, s.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(std, s.std(0, ddof=0), rtol=1e-5, atol=1e-9)
    saved = np.load(pack / "directions/s_std.npy")
    assert saved.dtype == np.float32 and saved.shape == (sum(e["channels"] for e in read_pack_json(pack)["styleLayout"]),)
    assert json.loads((pack / "pack.json").read_text())["stats"] == {"samples": 300, "truncation": 0.5,
                                                                    "truncationCutoff": None, "seed": 5}


def test_convert_generator_refuses_a_pack_of_another_generator(pack, tmp_path):
    (pack / "directions").mkdir(exist_ok=True)
    other = build_random_checkpoint(32, 16, 2, {4: 16, 8: 16, 16: 8, 32: 8}, seed=3)
    torch.save(other, tmp_path / "other.pt")
    before = (pack / "pack.json").read_text()
    with pytest.raises(ToolkitError, match="different generator"):
        convert_generator(tmp_path / "other.pt", pack)
    assert (pack / "pack.json").read_text() == before


def test_stats_needs_a_generator(tmp_path):
    (tmp_path / "pack.json").write_text('{"format": "styleclip-pack", "version": 1}')
    with pytest.raises(ToolkitError, match="has no generator/mapping.onnx"):
        run_stats(tmp_path, samples=10)
