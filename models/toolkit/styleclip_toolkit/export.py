"""ONNX export of the generator as three graphs (models/README.md): mapping, to_styles, synthesis.

The synthesis graph uses the non-fused modulation that onnxruntime runs fast: scale the input
channels by s, convolve with the one shared weight, then demodulate the output with
rsqrt(s² · (Σ_k W²)ᵀ + 1e-8). It equals the official per-sample grouped conv (proved in tests).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from styleclip_toolkit.stylegan2 import Generator, ModulatedConv2d, style_layout

OPSET = 17


def export_onnx(module: nn.Module, args: tuple, path, input_names: list, output_names: list,
                dynamic_axes: dict, eval_mode: bool = False) -> None:
    """The toolkit's one ONNX export call. Initializers keep their state_dict names: no constant
    folding, and the module stays in train mode because the exporter merges equal-valued
    initializers (e.g. identical blur kernels) in eval mode. Our graphs behave the same in both,
    except those with BatchNorm (the encoder): `eval_mode=True` exports inference behaviour."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    kwargs = dict(opset_version=OPSET, do_constant_folding=False, input_names=input_names,
                  output_names=output_names, dynamic_axes=dynamic_axes)
    params = inspect.signature(torch.onnx.export).parameters
    if "training" in params:
        kwargs["training"] = torch.onnx.TrainingMode.PRESERVE
    if "dynamo" in params:  # torch >= 2.5 has it (and defaults to True from 2.9); 1.13 lacks it
        kwargs["dynamo"] = False
    was_training = module.training
    module.train(not eval_mode)
    try:
        with torch.no_grad():
            torch.onnx.export(module, args, str(path), **kwargs)
    finally:
        module.train(was_training)


def modulated_conv_fast(layer: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The export formulation of ModulatedConv2d.forward (same result, batch-independent weights)."""
    weight = layer.weight[0] * layer.scale  # (out, in, k, k)
    x = x * style[:, :, None, None]
    if layer.upsample:
        out = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
        # [1,3,3,1] blur is symmetric, so correlation == upfirdn2d's convolution; pads are (1, 1).
        pad0, pad1 = layer.blur.pad
        assert pad0 == pad1, "asymmetric blur padding is not used by 3x3 kernels"
        kernel = layer.blur.kernel.expand(layer.out_channel, 1, *layer.blur.kernel.shape)
        out = F.conv2d(out, kernel, padding=pad0, groups=layer.out_channel)
    else:
        out = F.conv2d(x, weight, padding=layer.padding)
    if layer.demodulate:
        demod = torch.rsqrt(torch.matmul(style * style, weight.pow(2).sum([2, 3]).t()) + 1e-8)
        out = out * demod[:, :, None, None]
    return out


def upsample_skip_fast(upsample: nn.Module, skip: torch.Tensor) -> torch.Tensor:
    """Zero-insert ×2 + blur (pad (2, 1)) as one depthwise transposed conv with padding 1."""
    channels = 3  # RGB; a Python int keeps the kernel shape static in the graph
    kernel = upsample.kernel.expand(channels, 1, *upsample.kernel.shape)
    return F.conv_transpose2d(skip, kernel, stride=2, padding=1, groups=channels)


class _GeneratorView(nn.Module):
    """Holds the generator's modules under their own names, so exported initializers are named
    exactly by the generator's state_dict keys."""

    def __init__(self, gen: Generator):
        super().__init__()
        self.gen_layout = style_layout(gen)
        self.style = gen.style
        self.input = gen.input
        self.conv1, self.to_rgb1 = gen.conv1, gen.to_rgb1
        self.convs, self.to_rgbs = gen.convs, gen.to_rgbs
        self.noises = gen.noises
        self.style_layers = gen.style_layers


class MappingGraph(_GeneratorView):
    def forward(self, z):
        return self.style(z)


class ToStylesGraph(_GeneratorView):
    def forward(self, wplus):
        styles = [layer.modulation(wplus[:, e["wIndex"]])
                  for layer, e in zip(self.style_layers(), self.gen_layout)]
        return torch.cat(styles, dim=1)


class SynthesisGraph(_GeneratorView):
    def _styled(self, block, x, style, noise):
        out = modulated_conv_fast(block.conv, x, style)
        out = out + block.noise.weight * noise
        return block.activate(out)

    def _to_rgb(self, block, x, style, skip):
        out = modulated_conv_fast(block.conv, x, style) + block.bias
        return out if skip is None else out + upsample_skip_fast(block.upsample, skip)

    def forward(self, styles):
        s = torch.split(styles, [e["channels"] for e in self.gen_layout], dim=1)
        x = self.input.input.expand(styles.shape[0], -1, -1, -1)
        x = self._styled(self.conv1, x, s[0], self.noises.noise_0)
        skip = self._to_rgb(self.to_rgb1, x, s[1], None)
        for k, to_rgb in enumerate(self.to_rgbs):
            x = self._styled(self.convs[2 * k], x, s[2 + 3 * k], getattr(self.noises, f"noise_{2 * k + 1}"))
            x = self._styled(self.convs[2 * k + 1], x, s[3 + 3 * k], getattr(self.noises, f"noise_{2 * k + 2}"))
            skip = self._to_rgb(to_rgb, x, s[4 + 3 * k], skip)
        return skip


def export_generator(gen: Generator, generator_dir) -> None:
    """Writes mapping.onnx, to_styles.onnx, synthesis.onnx into generator_dir (batch axis dynamic)."""
    out = Path(generator_dir)
    total = sum(e["channels"] for e in style_layout(gen))
    batch = {0: "batch"}
    export_onnx(MappingGraph(gen), (torch.zeros(2, gen.style_dim),), out / "mapping.onnx",
                ["z"], ["w"], {"z": batch, "w": batch})
    export_onnx(ToStylesGraph(gen), (torch.zeros(2, gen.n_latent, gen.style_dim),), out / "to_styles.onnx",
                ["wplus"], ["styles"], {"wplus": batch, "styles": batch})
    export_onnx(SynthesisGraph(gen), (torch.ones(2, total),), out / "synthesis.onnx",
                ["styles"], ["image"], {"styles": batch, "image": batch})
