"""CLIP's image tower rebuilt in torch from a pack's clip/image_encoder.onnx (no pickles), so
`directions --pack PACK` needs nothing but the pack.

Initializers keep OpenAI's state_dict names (under the export wrapper's `module.` prefix),
except linear weights that constant folding stored pre-transposed under anonymous names; those
are matched to the transformer's linears in graph order (per block: attn in_proj, attn out_proj,
mlp c_fc, mlp c_proj), and every shape is checked.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from styleclip_toolkit.clip_model import VisionTransformer, heads_for_width
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.pack import pack_file

_LINEARS = ("attn.in_proj_weight", "attn.out_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


class ImageEncoder(nn.Module):
    """The part of `clip_model.CLIP` that `directions` uses: encode_image and image_size."""

    def __init__(self, visual):
        super().__init__()
        self.visual = visual
        self.image_size = visual.image_size

    def encode_image(self, pixels):
        return self.visual(pixels)


def image_encoder_from_pack(pack_dir):
    import onnx
    from onnx import numpy_helper

    path = pack_file(pack_dir, "imageEncoder")
    if not path.is_file():
        raise ToolkitError(f"pack has no {path.name}: run convert-clip first (or pass --clip)")
    try:
        graph = onnx.load(str(path)).graph
    except Exception as e:  # protobuf errors carry no useful type
        raise ToolkitError(f"cannot read ONNX graph {path}: {e}") from None
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    sd = {name.split("visual.", 1)[1]: a for name, a in arrays.items() if "visual." in name}
    try:
        width, _, patch, _ = sd["conv1.weight"].shape
        grid = round((sd["positional_embedding"].shape[0] - 1) ** 0.5)
        layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
        visual = VisionTransformer(patch * grid, patch, width, layers, heads_for_width(width), sd["proj"].shape[1])
    except (KeyError, ValueError) as e:
        raise ToolkitError(f"{path} is not an image encoder written by convert-clip (missing {e})") from None
    expected = visual.state_dict()
    folded = [n.input[1] for n in graph.node if n.op_type == "MatMul" and n.input[1] in arrays
              and "visual." not in n.input[1]]
    missing = [f"transformer.resblocks.{i}.{name}" for i in range(layers) for name in _LINEARS]
    missing = [k for k in missing if k not in sd]
    if len(folded) != len(missing):
        raise ToolkitError(f"{path}: cannot match its weights to CLIP's image tower")
    for key, name in zip(missing, folded):
        sd[key] = arrays[name].T  # folded MatMul weights are the transposed nn.Linear weights
    for key, value in expected.items():
        if key not in sd or tuple(np.shape(sd[key])) != tuple(value.shape):
            raise ToolkitError(f"{path}: weight {key} is missing or has the wrong shape")
    visual.load_state_dict({k: torch.from_numpy(np.array(sd[k], np.float32)) for k in expected})
    return ImageEncoder(visual).eval()
