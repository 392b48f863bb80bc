"""IR-SE blocks: the official key layout (so official checkpoints load strictly) and the maths of a
unit, checked against a functional re-statement of the InsightFace unit."""

import pytest
import torch
from torch.nn import functional as F

from styleclip_toolkit.irse import Backbone, BottleneckIR, BottleneckIRSE, ir_blocks, make_body


def _randomize(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.3)
    return module.eval()


def test_block_tables():
    for layers, units in ((50, [3, 4, 14, 3]), (100, [3, 13, 30, 3]), (152, [3, 8, 36, 3])):
        stages = ir_blocks(layers)
        assert [len(s) for s in stages] == units
        assert [s[0] for s in stages] == [(64, 64, 2), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        assert all(b.stride == 1 and b.in_channel == b.depth for s in stages for b in s[1:])
    with pytest.raises(ValueError):
        ir_blocks(34)


def _official_arcface_keys():
    """The key list of TreB1eN's Backbone(112, 50, 'ir_se', affine=False), written out from its layout."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["input_layer.0.weight"] + [f"input_layer.1.{k}" for k in bn] + ["input_layer.2.weight"]
    n = 0
    for stage, (units, width) in enumerate(zip((3, 4, 14, 3), (64, 128, 256, 512))):
        for u in range(units):
            p = f"body.{n}."
            if u == 0 and stage > 0:
                keys += [p + "shortcut_layer.0.weight"] + [p + f"shortcut_layer.1.{k}" for k in bn]
            keys += [p + f"res_layer.0.{k}" for k in bn] + [p + "res_layer.1.weight", p + "res_layer.2.weight",
                                                             p + "res_layer.3.weight"]
            keys += [p + f"res_layer.4.{k}" for k in bn] + [p + "res_layer.5.fc1.weight", p + "res_layer.5.fc2.weight"]
            n += 1
    keys += [f"output_layer.0.{k}" for k in bn] + ["output_layer.3.weight", "output_layer.3.bias"]
    keys += ["output_layer.4.running_mean", "output_layer.4.running_var", "output_layer.4.num_batches_tracked"]
    return keys


def test_arcface_backbone_has_the_official_keys_and_loads_them():
    net = Backbone(112, 50, "ir_se", drop_ratio=0.6, affine=False)
    sd = net.state_dict()
    assert sorted(sd) == sorted(_official_arcface_keys())
    assert sd["body.3.shortcut_layer.0.weight"].shape == (128, 64, 1, 1)
    assert sd["body.23.res_layer.5.fc1.weight"].shape == (32, 512, 1, 1)
    assert sd["output_layer.3.weight"].shape == (512, 512 * 7 * 7)
    fresh = {k: torch.randn(v.shape) if v.is_floating_point() else v for k, v in sd.items()}
    Backbone(112, 50, "ir_se", affine=False).load_state_dict(fresh, strict=True)


def test_arcface_embedding_is_unit_length():
    net = _randomize(Backbone(112, 50, "ir_se", widths=(16, 16, 32, 32), embedding_size=8), seed=3)
    with torch.no_grad():
        y = net(torch.randn(2, 3, 112, 112))
    assert y.shape == (2, 8)
    torch.testing.assert_close(y.norm(dim=1), torch.ones(2))


def irse_unit_oracle(sd, x, stride, se):
    def bn(prefix, t):
        return F.batch_norm(t, sd[prefix + "running_mean"], sd[prefix + "running_var"], sd[prefix + "weight"],
                            sd[prefix + "bias"], training=False, eps=1e-5)

    if "shortcut_layer.0.weight" in sd:
        short = bn("shortcut_layer.1.", F.conv2d(x, sd["shortcut_layer.0.weight"], stride=stride))
    else:
        short = x[:, :, ::stride, ::stride]
    r = bn("res_layer.0.", x)
    r = F.conv2d(r, sd["res_layer.1.weight"], padding=1)
    r = F.prelu(r, sd["res_layer.2.weight"])
    r = bn("res_layer.4.", F.conv2d(r, sd["res_layer.3.weight"], stride=stride, padding=1))
    if se:
        s = r.mean(dim=(2, 3), keepdim=True)
        s = torch.sigmoid(F.conv2d(F.relu(F.conv2d(s, sd["res_layer.5.fc1.weight"])), sd["res_layer.5.fc2.weight"]))
        r = r * s
    return r + short


@pytest.mark.parametrize("cls,se", [(BottleneckIR, False), (BottleneckIRSE, True)])
@pytest.mark.parametrize("cin,depth,stride", [(32, 32, 2), (32, 32, 1), (16, 32, 2)])
def test_unit_matches_the_functional_oracle(cls, se, cin, depth, stride):
    unit = _randomize(cls(cin, depth, stride), seed=cin + depth + stride)
    x = torch.randn(2, cin, 9, 9)  # odd size: strided shortcut and strided conv must agree in shape
    with torch.no_grad():
        torch.testing.assert_close(unit(x), irse_unit_oracle(unit.state_dict(), x, stride, se), rtol=1e-5, atol=1e-5)


def test_narrow_body_keeps_the_unit_count_and_strides():
    body = make_body(50, "ir_se", widths=(16, 16, 32, 32))
    assert len(body) == 24
    with torch.no_grad():
        y = _randomize(body)(torch.randn(1, 16, 64, 64))
    assert y.shape == (1, 32, 4, 4)
