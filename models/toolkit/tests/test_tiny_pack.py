"""The committed tiny pack (models/packs/tiny): current, complete, and consistent with the code."""

import json

import numpy as np
import pytest
import torch

from conftest import REPO, run_ort
from styleclip_toolkit.pack import DEFAULT_FILES, conv_channel_count, style_channel_count
from styleclip_toolkit.stylegan2 import load_generator_from_pack, styles_to_flat, w_to_styles
from styleclip_toolkit.pack_build import toolkit_hash
from styleclip_toolkit.tiny_pack import TINY_GENERATOR

TINY = REPO / "models/packs/tiny"


@pytest.fixture(scope="module")
def meta():
    return json.loads((TINY / "pack.json").read_text())


def test_tiny_pack_is_current(meta):
    if meta.get("toolkitHash") != toolkit_hash():
        pytest.fail("models/packs/tiny is stale: run npm run toolkit -- tiny-pack --out models/packs/tiny")


def test_tiny_pack_is_complete(meta):
    for key, rel in DEFAULT_FILES.items():
        assert (TINY / rel).is_file(), rel
    assert meta["untrained"] is True
    assert meta["defaults"] == {"neutral": "face", "targetTemplate": "face with {}", "strength": 4.1, "threshold": None}
    assert (meta["resolution"], meta["wDim"], meta["numWs"]) == (TINY_GENERATOR["size"], TINY_GENERATOR["style_dim"], 10)
    assert [(m["name"], m["levels"]["fine"]) for m in meta["mappers"]] == [("curly hair", False), ("purple hair", True)]
    for m in meta["mappers"]:
        assert (TINY / m["file"]).is_file()
    assert meta["encoder"] == {"file": "encoder/encoder.onnx", "inputSize": 256, "format": "e4e"}
    assert (TINY / meta["encoder"]["file"]).is_file()
    layout = meta["styleLayout"]
    fs3 = np.load(TINY / "directions/fs3.npy")
    assert fs3.dtype == np.float32 and fs3.shape == (conv_channel_count(layout), meta["clip"]["embedDim"])
    np.testing.assert_allclose(np.linalg.norm(fs3, axis=1), 1.0, rtol=1e-4)
    for name in ("s_std", "s_mean"):
        arr = np.load(TINY / f"directions/{name}.npy")
        assert arr.dtype == np.float32 and arr.shape == (style_channel_count(layout),)
    assert (np.load(TINY / "directions/s_std.npy") > 0).all()
    assert sum(f.stat().st_size for f in TINY.rglob("*") if f.is_file()) < 5_000_000


def test_tiny_pack_renders_like_the_reference(tmp_path, meta):
    gen = load_generator_from_pack(TINY)
    z = np.random.RandomState(7).randn(2, meta["zDim"]).astype(np.float32)
    with torch.no_grad():
        w = gen.style(torch.from_numpy(z))
        styles = styles_to_flat(w_to_styles(gen, w[:, None].expand(2, meta["numWs"], meta["wDim"])))
        expected = gen.forward_styles(w_to_styles(gen, w[:, None].expand(2, meta["numWs"], meta["wDim"]))).numpy()
    image = run_ort(TINY / "generator/synthesis.onnx", tmp_path, styles=styles.numpy())["image"]
    assert image.shape == (2, 3, meta["resolution"], meta["resolution"])
    np.testing.assert_allclose(image, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert np.abs(image[0] - image[1]).max() > 1e-3  # different seeds, different images
