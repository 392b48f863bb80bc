"""random-pack: FFHQ config-f widths with random weights (small resolution and tiny CLIP here)."""

import numpy as np
import pytest

from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.pack import conv_channel_count, read_pack_json
from styleclip_toolkit.random_pack import build_random_pack


def test_random_pack_has_ffhq_shapes(tmp_path):
    meta = build_random_pack(tmp_path / "rp", resolution=8, full_clip=False, stats_samples=64, full_encoder=False)
    assert (meta["resolution"], meta["zDim"], meta["wDim"], meta["numWs"]) == (8, 512, 512, 4)
    assert [e["channels"] for e in meta["styleLayout"]] == [512] * 5
    assert meta["untrained"] is True and meta["toolkitHash"]
    fs3 = np.load(tmp_path / "rp/directions/fs3.npy")
    assert fs3.shape == (conv_channel_count(meta["styleLayout"]), meta["clip"]["embedDim"])
    np.testing.assert_allclose(np.linalg.norm(fs3, axis=1), 1.0, rtol=1e-5)
    assert read_pack_json(tmp_path / "rp")["stats"]["samples"] == 64
    assert meta["encoder"] == {"file": "encoder/encoder.onnx", "inputSize": 256, "format": "e4e"}
    assert (tmp_path / "rp/encoder/encoder.onnx").is_file()


def test_random_pack_rejects_odd_resolutions(tmp_path):
    with pytest.raises(ToolkitError, match="power of two"):
        build_random_pack(tmp_path / "rp", resolution=100, full_clip=False)


def test_pack_builders_never_clear_a_foreign_folder(tmp_path):
    (tmp_path / "generator").mkdir()
    (tmp_path / "generator/keep.txt").write_text("mine")
    with pytest.raises(ToolkitError, match="holds no pack.json"):
        build_random_pack(tmp_path, resolution=8, full_clip=False)
    assert (tmp_path / "generator/keep.txt").read_text() == "mine"
