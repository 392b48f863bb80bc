"""The reference generator: rosinality's layout and maths, and the export formulation equals it."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from conftest import SMALL_G
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.export import SynthesisGraph, modulated_conv_fast
from styleclip_toolkit.stylegan2 import (Generator, ModulatedConv2d, Upsample, ffhq_channels, fused_leaky_relu,
                                         generator_config_from_state_dict, generator_from_state_dict,
                                         style_layout, styles_to_flat, w_to_styles)


@pytest.fixture(scope="module")
def gen(small_checkpoint):
    return generator_from_state_dict(small_checkpoint["g_ema"])


def test_ffhq_1024_layout_matches_research_table():
    g = Generator(1024, 512, 8, ffhq_channels(1024))
    layout = style_layout(g)
    assert len(layout) == 26 and g.n_latent == 18
    assert sum(e["channels"] for e in layout) == 9088
    assert sum(e["channels"] for e in layout if not e["toRgb"]) == 6048
    conv_idx = [i for i, e in enumerate(layout) if not e["toRgb"]]
    assert conv_idx == [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24]
    assert [e["wIndex"] for e in layout][:8] == [0, 1, 1, 2, 3, 3, 4, 5]
    assert layout[25] == {"name": "to_rgbs.7", "resolution": 1024, "channels": 32, "wIndex": 17, "toRgb": True}
    assert [e["channels"] for e in layout[14:]] == [512, 256, 256, 256, 128, 128, 128, 64, 64, 64, 32, 32]


def test_state_dict_keys_are_rosinality(gen, small_checkpoint):
    keys = set(small_checkpoint["g_ema"])
    for key in ["style.1.weight", "style.2.bias", "input.input", "conv1.conv.weight", "conv1.conv.modulation.weight",
                "conv1.noise.weight", "conv1.activate.bias", "to_rgb1.conv.weight", "to_rgb1.bias",
                "convs.0.conv.blur.kernel", "to_rgbs.0.upsample.kernel", "noises.noise_0", "noises.noise_8"]:
        assert key in keys
    assert small_checkpoint["g_ema"]["noises.noise_8"].shape == (1, 1, 64, 64)
    assert small_checkpoint["latent_avg"].shape == (SMALL_G["style_dim"],)


def test_config_is_read_from_tensors(small_checkpoint):
    cfg = generator_config_from_state_dict(small_checkpoint["g_ema"])
    assert cfg == {"size": 64, "style_dim": 16, "n_mlp": 2, "channels": {4: 16, 8: 12, 16: 8, 32: 8, 64: 4}}


def test_bad_state_dicts_are_refused(small_checkpoint):
    sd = dict(small_checkpoint["g_ema"])
    del sd["input.input"]
    with pytest.raises(ToolkitError, match="input.input"):
        generator_from_state_dict(sd)
    sd = dict(small_checkpoint["g_ema"])
    sd["convs.1.conv.weight"] = torch.zeros(1, 12, 7, 3, 3)
    with pytest.raises(ToolkitError, match="convs.1.conv.weight"):
        generator_from_state_dict(sd)


def test_grouped_modulated_conv_equals_per_sample_convolution():
    torch.manual_seed(0)
    for upsample in (False, True):
        layer = ModulatedConv2d(6, 5, 3, 8, upsample=upsample)
        x, s = torch.randn(3, 6, 8, 8), torch.randn(3, 6)
        out = layer(x, s)
        for b in range(3):
            w = layer.scale * layer.weight[0] * s[b].view(1, 6, 1, 1)
            w = w * torch.rsqrt(w.pow(2).sum([1, 2, 3]) + 1e-8).view(5, 1, 1, 1)
            if upsample:  # zero-insert ×2 then full 3×3 conv, then the [1,3,3,1] blur (gain 4, pad 1)
                y = F.conv_transpose2d(x[b:b + 1], w.transpose(0, 1), stride=2)
                k = torch.tensor([1., 3., 3., 1.])
                k = (k[:, None] * k[None]) / 64 * 4
                y = F.conv2d(F.pad(y, [1, 1, 1, 1]), k.expand(5, 1, 4, 4), groups=5)
            else:
                y = F.conv2d(x[b:b + 1], w, padding=1)
            assert torch.allclose(out[b:b + 1], y, atol=1e-5)
        assert out.shape == (3, 5, 16, 16) if upsample else (3, 5, 8, 8)


def test_upsample_is_zero_insertion_then_blur():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 2] = 1.0
    y = Upsample()(x)
    assert y.shape == (1, 1, 8, 8)
    assert torch.isclose(y.sum(), torch.tensor(4.0))  # kernel gain 4 = factor²
    # the [1,3,3,1]/8 ⊗ itself × 4 impulse response lands around (2, 4) → rows/cols 1..4 / 3..6
    nz = torch.nonzero(y[0, 0])
    assert nz[:, 0].min() == 1 and nz[:, 0].max() == 4 and nz[:, 1].min() == 3 and nz[:, 1].max() == 6


def test_fused_leaky_relu_bias_axis():
    bias = torch.tensor([1.0, -1.0, 0.5])
    x3 = torch.zeros(2, 4, 3)  # (B, layers, C): StyleCLIP adds the bias on the last axis
    assert torch.allclose(fused_leaky_relu(x3, bias)[0, 0], torch.tensor([1.0, -0.2, 0.5]) * 2 ** 0.5)
    x4 = torch.zeros(1, 3, 2, 2)
    assert torch.allclose(fused_leaky_relu(x4, bias)[0, :, 0, 0], torch.tensor([1.0, -0.2, 0.5]) * 2 ** 0.5)


def test_forward_from_w_equals_forward_from_styles(gen):
    wplus = torch.randn(2, gen.n_latent, gen.style_dim)
    with torch.no_grad():
        styles = w_to_styles(gen, wplus)
        assert [s.shape[1] for s in styles] == [e["channels"] for e in style_layout(gen)]
        assert torch.equal(gen(wplus), gen.forward_styles(styles))


def test_export_formulation_equals_reference(gen):
    wplus = torch.randn(3, gen.n_latent, gen.style_dim)
    with torch.no_grad():
        styles = w_to_styles(gen, wplus)
        ref = gen.forward_styles(styles)
        fast = SynthesisGraph(gen)(styles_to_flat(styles))
    assert ref.shape == (3, 3, 64, 64)
    assert ref.abs().max() > 0.1
    assert torch.allclose(ref, fast, atol=1e-5 * float(ref.abs().max()))
    # each modulated conv on its own, including toRGB (no demodulation)
    torch.manual_seed(3)
    for layer in gen.style_layers():
        x = torch.randn(2, layer.in_channel, 8, 8)
        s = torch.randn(2, layer.in_channel)
        assert torch.allclose(layer(x, s), modulated_conv_fast(layer, x, s), atol=1e-5)
    # noise buffers are used (randomize_noise=False): changing one changes the image
    with torch.no_grad():
        gen.noises.noise_3.add_(1.0)
        changed = gen.forward_styles(styles)
        gen.noises.noise_3.sub_(1.0)
    assert not torch.allclose(changed, ref)
    assert np.isfinite(ref.numpy()).all()
