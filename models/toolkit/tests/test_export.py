"""Exported graphs: ONNX (onnxruntime-node) == torch reference, names, pack round trip."""

import numpy as np
import onnx
import torch

from conftest import run_ort
from styleclip_toolkit.pack import onnx_initializers, read_pack_json
from styleclip_toolkit.stylegan2 import generator_from_state_dict, load_generator_from_pack, styles_to_flat, w_to_styles


def test_graphs_match_torch_in_onnxruntime(small_pack, small_checkpoint, tmp_path):
    gen = generator_from_state_dict(small_checkpoint["g_ema"])
    rng = np.random.RandomState(0)
    z = rng.randn(3, gen.style_dim).astype(np.float32)  # batch 3: the export used 2, so the axis is dynamic
    wplus = rng.randn(3, gen.n_latent, gen.style_dim).astype(np.float32)
    with torch.no_grad():
        w_ref = gen.style(torch.from_numpy(z)).numpy()
        s_ref = styles_to_flat(w_to_styles(gen, torch.from_numpy(wplus))).numpy()
        img_ref = gen.forward_styles(w_to_styles(gen, torch.from_numpy(wplus))).numpy()

    w = run_ort(small_pack / "generator/mapping.onnx", tmp_path / "m", z=z)["w"]
    s = run_ort(small_pack / "generator/to_styles.onnx", tmp_path / "t", wplus=wplus)["styles"]
    img = run_ort(small_pack / "generator/synthesis.onnx", tmp_path / "s", styles=s_ref)["image"]
    assert w.shape == (3, gen.style_dim) and s.shape == s_ref.shape and img.shape == (3, 3, 64, 64)
    np.testing.assert_allclose(w, w_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(s, s_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(img, img_ref, rtol=1e-4, atol=1e-4 * np.abs(img_ref).max())


def test_initializers_are_named_by_state_dict_keys(small_pack, small_checkpoint):
    names = {}
    for graph in ("mapping", "to_styles", "synthesis"):
        path = small_pack / f"generator/{graph}.onnx"
        model = onnx.load(str(path))
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= 17
        assert [i.name for i in model.graph.input] == {"mapping": ["z"], "to_styles": ["wplus"],
                                                        "synthesis": ["styles"]}[graph]
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        names.update(onnx_initializers(path))
    sd = small_checkpoint["g_ema"]
    assert set(names) == set(sd)  # blur kernels too: equal-valued initializers are not merged
    for key, value in sd.items():
        np.testing.assert_array_equal(names[key], value.numpy())


def test_load_generator_from_pack_rebuilds_the_reference(small_pack, small_checkpoint):
    gen = load_generator_from_pack(small_pack)
    meta = read_pack_json(small_pack)
    assert (gen.size, gen.n_latent, gen.style_dim) == (meta["resolution"], meta["numWs"], meta["wDim"])
    for key, value in small_checkpoint["g_ema"].items():
        assert torch.equal(gen.state_dict()[key], value), key
