"""e4e encoder: the official checkpoint layout, convert-encoder, and parity of the exported graph (run
in onnxruntime-node) with a functional re-statement of the official Encoder4Editing + pSp forward."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from conftest import SMALL_G, run_ort
from test_irse import irse_unit_oracle
from styleclip_toolkit import cli
from styleclip_toolkit.convert_encoder import convert_encoder
from styleclip_toolkit.e4e import Encoder4Editing, build_random_e4e_checkpoint, e4e_from_checkpoint
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.pack import onnx_initializers, read_pack_json

NARROW = (16, 24, 32, 20)  # uneven, so a swapped width or tap cannot go unnoticed
NUM_WS, W_DIM = 10, SMALL_G["style_dim"]  # the small generator: 64 px -> 10 W+ rows


def official_forward(sd, latent_avg, x, stage=18):
    """Encoder4Editing.forward (psp_encoders.py) then pSp's `codes + latent_avg.repeat(N, 1, 1)`,
    written from the official code with functional ops on the checkpoint's `encoder.*` tensors."""
    def sub(prefix):
        return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}

    def bn(prefix, t):
        return F.batch_norm(t, sd[prefix + "running_mean"], sd[prefix + "running_var"], sd[prefix + "weight"],
                            sd[prefix + "bias"], training=False, eps=1e-5)

    def style(j, feat):  # GradualStyleBlock(512, 512, spatial): log2(spatial) stride-2 convs, EqualLinear
        spatial = 16 if j < 3 else 32 if j < 7 else 64
        for k in range(int(np.log2(spatial))):
            p = f"encoder.styles.{j}.convs.{2 * k}."
            feat = F.leaky_relu(F.conv2d(feat, sd[p + "weight"], sd[p + "bias"], stride=2, padding=1), 0.01)
        weight = sd[f"encoder.styles.{j}.linear.weight"]
        feat = feat.view(-1, weight.shape[1])
        return F.linear(feat, weight * (1 / math.sqrt(weight.shape[1])), sd[f"encoder.styles.{j}.linear.bias"])

    def up_add(a, b):
        return F.interpolate(a, size=b.shape[2:], mode="bilinear", align_corners=True) + b

    x = F.conv2d(x, sd["encoder.input_layer.0.weight"], padding=1)
    x = F.prelu(bn("encoder.input_layer.1.", x), sd["encoder.input_layer.2.weight"])
    for i in range(24):  # IR-SE-50: 3 + 4 + 14 + 3 units, each stage opening with stride 2
        x = irse_unit_oracle(sub(f"encoder.body.{i}."), x, 2 if i in (0, 3, 7, 21) else 1, se=True)
        if i == 6:
            c1 = x
        elif i == 20:
            c2 = x
        elif i == 23:
            c3 = x
    count = latent_avg.shape[0]
    w0 = style(0, c3)
    w = w0.repeat(count, 1, 1).permute(1, 0, 2)
    features = c3
    for i in range(1, min(stage + 1, count)):
        if i == 3:
            p2 = up_add(c3, F.conv2d(c2, sd["encoder.latlayer1.weight"], sd["encoder.latlayer1.bias"]))
            features = p2
        elif i == 7:
            p1 = up_add(p2, F.conv2d(c1, sd["encoder.latlayer2.weight"], sd["encoder.latlayer2.bias"]))
            features = p1
        w[:, i] += style(i, features)
    return w + latent_avg.repeat(w.shape[0], 1, 1)


@pytest.fixture(scope="module")
def e4e_ckpt(small_checkpoint):
    return build_random_e4e_checkpoint(NUM_WS, W_DIM, NARROW, seed=3, decoder_state_dict=small_checkpoint["g_ema"])


@pytest.fixture(scope="module")
def e4e_path(e4e_ckpt, tmp_path_factory):
    path = tmp_path_factory.mktemp("e4e") / "e4e_small.pt"
    torch.save(e4e_ckpt, path)
    return path


@pytest.fixture()
def pack(small_pack, tmp_path):
    dst = tmp_path / "pack"
    shutil.copytree(small_pack, dst)
    return dst


def images(n, seed):
    return (torch.rand(n, 3, 256, 256, generator=torch.Generator().manual_seed(seed)) * 2 - 1)


def test_checkpoint_has_the_official_layout(e4e_ckpt):
    sd = e4e_ckpt["state_dict"]
    assert isinstance(e4e_ckpt["opts"], dict) and e4e_ckpt["opts"]["encoder_type"] == "Encoder4Editing"
    assert e4e_ckpt["latent_avg"].shape == (NUM_WS, W_DIM)
    assert "decoder.conv1.conv.weight" in sd and "encoder.body.23.res_layer.5.fc2.weight" in sd
    assert sd["encoder.latlayer1.weight"].shape == (NARROW[3], NARROW[2], 1, 1)
    assert sd["encoder.latlayer2.weight"].shape == (NARROW[3], NARROW[1], 1, 1)
    # 4 / 5 / 6 stride-2 convs (Conv, LeakyReLU pairs) for the 16² / 32² / 64² maps
    for j, convs in ((2, 4), (3, 5), (6, 5), (7, 6), (9, 6)):
        assert f"encoder.styles.{j}.convs.{2 * convs - 2}.weight" in sd
        assert f"encoder.styles.{j}.convs.{2 * convs}.weight" not in sd
    assert sd["encoder.styles.0.convs.0.weight"].shape == (W_DIM, NARROW[3], 3, 3)
    assert sd["encoder.styles.9.linear.weight"].shape == (W_DIM, W_DIM)


def test_full_width_encoder_has_the_ffhq_shapes():
    enc = Encoder4Editing(18, 512)
    sd = enc.state_dict()
    assert sum(p.numel() for p in enc.parameters()) == 267_136_704  # research note: about 267 M
    assert len(enc.body) == 24 and len(enc.styles) == 18
    assert sd["input_layer.0.weight"].shape == (64, 3, 3, 3)
    assert sd["body.21.shortcut_layer.0.weight"].shape == (512, 256, 1, 1)
    assert sd["latlayer1.weight"].shape == (512, 256, 1, 1) and sd["latlayer2.weight"].shape == (512, 128, 1, 1)
    assert sd["styles.17.convs.10.weight"].shape == (512, 512, 3, 3) and "styles.17.convs.12.weight" not in sd
    assert sd["styles.0.linear.weight"].shape == (512, 512)


def test_module_matches_the_official_forward(e4e_ckpt):
    enc, avg, _ = e4e_from_checkpoint(e4e_ckpt)
    x = images(2, 0)
    sd = e4e_ckpt["state_dict"]
    with torch.no_grad():
        expected = official_forward(sd, e4e_ckpt["latent_avg"], x)
        got = enc(x) + avg
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    codes = expected - e4e_ckpt["latent_avg"]
    assert codes.abs().mean() > 0.1  # the weights reach the output: not a trivial comparison
    with torch.no_grad():  # a stage before "Inference" leaves later rows at w0: all deltas matter here
        partial = official_forward(sd, e4e_ckpt["latent_avg"], x, stage=5)
    assert (expected[:, 6:] - partial[:, 6:]).abs().max() > 0.1


def test_converted_graph_matches_the_official_forward(e4e_ckpt, e4e_path, pack, tmp_path):
    entry = convert_encoder(e4e_path, pack)
    assert entry == {"file": "encoder/encoder.onnx", "inputSize": 256, "format": "e4e"}
    assert read_pack_json(pack)["encoder"] == entry
    x = images(3, 1)  # batch 3: the graph was traced with 2, so the batch axis is dynamic
    out = run_ort(pack / entry["file"], tmp_path, images=x.numpy())["wplus"]
    with torch.no_grad():
        expected = official_forward(e4e_ckpt["state_dict"], e4e_ckpt["latent_avg"], x).numpy()
    assert out.shape == (3, NUM_WS, W_DIM)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4)
    names = set(onnx_initializers(pack / entry["file"]))  # checkpoint names, nothing merged or renamed
    assert names == {k for k in e4e_ckpt["state_dict"]
                     if k.startswith("encoder.") and not k.endswith("num_batches_tracked")} | {"latent_avg"}


def test_one_row_latent_avg_is_repeated(e4e_ckpt):
    ckpt = dict(e4e_ckpt, latent_avg=e4e_ckpt["latent_avg"][0].clone())
    _, avg, _ = e4e_from_checkpoint(ckpt)
    torch.testing.assert_close(avg, e4e_ckpt["latent_avg"])
    _, avg, _ = e4e_from_checkpoint(dict(e4e_ckpt, opts=dict(e4e_ckpt["opts"], start_from_latent_avg=False)))
    assert not avg.any()


def test_cli_converts(e4e_path, pack, capsys):
    assert cli.main(["convert-encoder", "--format", "e4e", "--checkpoint", str(e4e_path), "--out", str(pack)]) == 0
    out = capsys.readouterr()
    assert "W+ 10x16" in out.out and "warning" not in out.err  # same decoder as the pack's generator
    assert (pack / "encoder/encoder.onnx").is_file()
    assert json.loads((pack / "pack.json").read_text())["encoder"]["format"] == "e4e"
    assert cli.main(["convert-encoder", "--format", "psp", "--checkpoint", str(e4e_path), "--out", str(pack)]) == 1
    assert "unknown --format 'psp'" in capsys.readouterr().err


def test_mismatched_generators_are_refused_or_flagged(e4e_ckpt, pack, tmp_path):
    wrong = tmp_path / "e4e_wrong.pt"
    torch.save(build_random_e4e_checkpoint(8, W_DIM, NARROW, seed=1), wrong)
    with pytest.raises(ToolkitError, match=r"outputs W\+ \[8, 16\] but the pack's generator takes \[10, 16\]"):
        convert_encoder(wrong, pack)
    other = tmp_path / "e4e_other_decoder.pt"
    sd = {k: v + 1 if k == "decoder.style.1.weight" else v for k, v in e4e_ckpt["state_dict"].items()
          if k.startswith("decoder.")}
    torch.save(build_random_e4e_checkpoint(NUM_WS, W_DIM, NARROW, decoder_state_dict={
        k[len("decoder."):]: v for k, v in sd.items()}), other)
    notes = []
    convert_encoder(other, pack, warn=notes.append)
    assert len(notes) == 1 and "differs from the pack's generator" in notes[0]


@pytest.mark.parametrize("change,message", [
    (lambda c: {"state_dict": {k: v for k, v in c["state_dict"].items() if k.startswith("decoder.")}},
     "no encoder.* tensors"),
    (lambda c: dict(c, opts=dict(c["opts"], encoder_type="GradualStyleEncoder")), "unsupported encoder_type"),
    (lambda c: dict(c, state_dict={k: v for k, v in c["state_dict"].items() if k != "encoder.latlayer2.bias"}),
     "missing encoder.latlayer2.bias"),
    (lambda c: dict(c, state_dict={k: v for k, v in c["state_dict"].items() if not k.startswith("encoder.body.23.")}),
     "23 units; e4e uses IR-SE-50"),
    (lambda c: dict(c, state_dict={**c["state_dict"], "encoder.styles.4.linear.weight": torch.zeros(3, 3)}),
     r"encoder.styles.4.linear.weight has shape \(3, 3\)"),
    (lambda c: {k: v for k, v in c.items() if k != "latent_avg"}, "no latent_avg"),
    (lambda c: dict(c, latent_avg=torch.zeros(3, W_DIM)), r"latent_avg has shape \(3, 16\)"),
    (lambda c: [c], "not an e4e checkpoint"),
])
def test_wrong_checkpoints_get_one_line_errors(e4e_ckpt, change, message, pack, tmp_path):
    path = tmp_path / "bad.pt"
    torch.save(change(e4e_ckpt), path)
    with pytest.raises(ToolkitError, match=message) as err:
        convert_encoder(path, pack)
    assert "\n" not in str(err.value)
    assert "encoder" not in read_pack_json(pack)


def test_pack_without_generator_is_refused(e4e_path, tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p/pack.json").write_text('{"format": "styleclip-pack", "version": 1}')
    with pytest.raises(ToolkitError, match="run convert-generator first"):
        convert_encoder(e4e_path, tmp_path / "p")
