"""The official global maths (directions.official) and `parity-fixtures`."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, run_ort
from styleclip_toolkit.directions.official import relevance_from_embeddings, style_delta, text_direction
from styleclip_toolkit.errors import ToolkitError


def test_style_delta_matches_a_hand_computed_get_boundary():
    fs3 = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.8, 0.6]])
    dt = np.array([0.8, 0.6])
    # r = fs3·Δt = [0.8, 0.96, 0.6, -0.28]; β 0.6 keeps 0.8, 0.96 and exactly 0.6, drops -0.28
    std = np.array([2.0, 3.0, 9.0, 4.0, 5.0, 9.0])  # layout: conv 2 | toRGB 1 | conv 2 | toRGB 1
    mask = np.array([True, True, False, True, True, False])
    delta, channels = style_delta(fs3, dt, 0.6, std, mask)
    assert channels == 3
    np.testing.assert_allclose(delta, [0.8 / 0.96 * 2, 1.0 * 3, 0, 0.6 / 0.96 * 4, 0, 0])
    delta, channels = style_delta(fs3, -dt, 0.25, std, mask)  # max |r| is what normalises, sign kept
    assert channels == 4
    np.testing.assert_allclose(delta, [-0.8 / 0.96 * 2, -3, 0, -0.6 / 0.96 * 4, 0.28 / 0.96 * 5, 0])


def test_style_delta_without_survivors_is_an_error_not_nan():
    with pytest.raises(ToolkitError, match="no channel has relevance >= 0.99; use a lower threshold"):
        style_delta(np.eye(2), np.array([0.6, 0.8]), 0.99, np.ones(2), np.array([True, True]))


def test_text_direction_normalises_each_template_then_the_mean():
    vectors = {"a x.": [3.0, 0.0], "the x.": [0.0, 1.0], "a y.": [1.0, 1.0], "the y.": [2.0, 2.0]}
    tokenize = lambda texts: texts  # noqa: E731 - the fake encoder looks texts up directly
    encode = lambda texts: torch.tensor([vectors[t] for t in texts])  # noqa: E731
    dt, norm = text_direction(encode, tokenize, "x", "y", ["a {}.", "the {}."])
    ex = np.array([0.5, 0.5]) / np.linalg.norm([0.5, 0.5])  # mean of unit (1,0) and (0,1), normalised
    ey = np.array([1.0, 1.0]) / np.sqrt(2)
    assert norm == pytest.approx(np.linalg.norm(ex - ey), abs=1e-12)
    with pytest.raises(ToolkitError, match="same CLIP embedding"):
        text_direction(encode, tokenize, "y", "y", ["a {}.", "the {}."])


def test_relevance_normalises_pairs_then_the_average():
    feats = np.zeros((1, 2, 2, 2))
    feats[0, 0] = [[2.0, 0.0], [0.0, 5.0]]  # unit difference (−1, 1)/√2
    feats[0, 1] = [[1.0, 0.0], [1.0, 0.0]] + np.array([[0.0, 0.0], [0.0, 1e-9]])  # tiny, then unit (0, 1)
    fs3 = relevance_from_embeddings(feats)
    m = np.array([-1 / np.sqrt(2), 1 / np.sqrt(2) + 1.0])
    np.testing.assert_allclose(fs3[0], m / np.linalg.norm(m), atol=1e-6)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    out = tmp_path_factory.mktemp("parity")
    res = subprocess.run(["bash", "scripts/toolkit.sh", "-m", "styleclip_toolkit", "parity-fixtures", "--out", str(out)],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    return out


def load_case(fixtures, name):
    case = json.loads((fixtures / name / "cases.json").read_text())
    return case, lambda key: np.load(fixtures / name / key)


@pytest.mark.parametrize("name", ["tiny", "uneven128"])
def test_fixture_files_are_consistent(fixtures, name):
    assert json.loads((fixtures / "index.json").read_text()) == {"cases": ["tiny", "uneven128"]}
    case, load = load_case(fixtures, name)
    pack = json.loads((fixtures / name / case["pack"] / "pack.json").read_text())
    n, res, rows, wdim = 2, case["resolution"], case["numWs"], case["wDim"]
    assert (pack["resolution"], pack["numWs"], pack["wDim"]) == (res, rows, wdim)
    assert load(case["generate"]["wplus"]).shape == (n, rows, wdim)
    for part in ("generate", "global", "mapper"):
        assert load(case[part]["raw"]).shape == (n, 3, res, res)
        assert load(case[part]["raw"]).dtype == np.float32
    s = case["sample"]
    np.testing.assert_allclose(load(s["z"]), np.random.RandomState(s["seed"]).randn(case["zDim"]), rtol=1e-6)
    w_avg = np.load(fixtures / name / "pack" / "generator" / "w_avg.npy")
    sample_w = load(s["wplus"])
    assert sample_w.shape == (1, rows, wdim) and np.allclose(sample_w, sample_w[:, :1])
    assert not np.allclose(sample_w[0, 0], w_avg)

    g = case["global"]
    assert np.linalg.norm(load(g["deltaT"])) == pytest.approx(1.0, abs=1e-6)
    delta, std = load(g["deltaS"]), np.load(fixtures / name / "pack" / "directions" / "s_std.npy")
    assert delta.shape == (case["styleChannels"],) and np.count_nonzero(delta) == g["channels"] > 0
    to_rgb = np.concatenate([np.full(e["channels"], e["toRgb"]) for e in pack["styleLayout"]])
    assert not delta[to_rgb].any() and not std[to_rgb].any()
    assert np.abs(delta[~to_rgb] / std[~to_rgb]).max() == pytest.approx(1.0, abs=1e-6)
    fs3 = np.load(fixtures / name / "pack" / "directions" / "fs3.npy")
    r = np.abs(fs3 @ load(g["deltaT"]))
    assert np.count_nonzero(r >= g["threshold"]) == g["channels"]
    assert np.abs(r - g["threshold"]).min() > 1e-4  # β sits in a gap: rounding can't flip a channel


@pytest.mark.parametrize("name", ["tiny", "uneven128"])
def test_the_converted_pack_reproduces_the_official_outputs(fixtures, name, tmp_path):
    """What the TypeScript engine does, done from the pack alone (graphs in onnxruntime-node)."""
    case, load = load_case(fixtures, name)
    pack = fixtures / name / "pack"
    meta = json.loads((pack / "pack.json").read_text())
    s = case["sample"]
    w = run_ort(pack / "generator" / "mapping.onnx", tmp_path / "z", z=load(s["z"])[None])["w"]
    w_avg = np.load(pack / "generator" / "w_avg.npy")
    w = w_avg + s["truncation"] * (w - w_avg)
    np.testing.assert_allclose(np.repeat(w[:, None], case["numWs"], 1), load(s["wplus"]), atol=1e-5)

    g = case["global"]
    mask = np.concatenate([np.full(e["channels"], not e["toRgb"]) for e in meta["styleLayout"]])
    delta, channels = style_delta(np.load(pack / "directions" / "fs3.npy"), load(g["deltaT"]), g["threshold"],
                                  np.load(pack / "directions" / "s_std.npy"), mask)
    assert channels == g["channels"]
    np.testing.assert_allclose(delta, load(g["deltaS"]), atol=1e-6)

    wplus = np.concatenate([load(case["generate"]["wplus"]), load(s["wplus"])])
    styles = run_ort(pack / "generator" / "to_styles.onnx", tmp_path / "s", wplus=wplus)["styles"]
    edited = (styles[:2] + g["strength"] * load(g["deltaS"])).astype(np.float32)
    image = run_ort(pack / "generator" / "synthesis.onnx", tmp_path / "i",
                    styles=np.concatenate([styles, edited]))["image"]
    np.testing.assert_allclose(image[:2], load(case["generate"]["raw"]), atol=1e-3)
    np.testing.assert_allclose(image[2:3], load(s["raw"]), atol=1e-3)
    np.testing.assert_allclose(image[3:], load(g["raw"]), atol=1e-3)
    m = case["mapper"]
    wplus = wplus[:2]
    delta = run_ort(pack / "mappers" / f"{m['mapper']}.onnx", tmp_path / "m", wplus=wplus)["delta"]
    np.testing.assert_allclose(wplus + m["strength"] * 0.1 * delta, load(m["wplusEdited"]), atol=1e-5)
    e = case["encode"]
    assert meta["encoder"] == {"file": "encoder/encoder.onnx", "inputSize": 256, "format": "e4e"}
    encoded = run_ort(pack / meta["encoder"]["file"], tmp_path / "e", images=load(e["images"]))["wplus"]
    assert encoded.shape == (2, case["numWs"], case["wDim"])
    np.testing.assert_allclose(encoded, load(e["wplus"]), rtol=0, atol=1e-4)
