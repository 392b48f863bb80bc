"""StyleGAN2 generator, a readable re-implementation of rosinality's stylegan2-pytorch as used by
StyleCLIP (models/stylegan2/model.py there), with the same state_dict keys as a checkpoint's
`g_ema`. Pure PyTorch (no custom CUDA ops); the upfirdn2d/fused-lrelu ops are written natively.

This module is the parity reference: `Generator.forward_styles` renders from StyleSpace S, one
style tensor per layer in the pack's styleLayout order, with the checkpoint's noise buffers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from styleclip_toolkit.errors import ToolkitError

BLUR_KERNEL = (1, 3, 3, 1)


def ffhq_channels(size: int, channel_multiplier: int = 2) -> dict:
    """rosinality's width table (config-f is channel_multiplier 2)."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier,
             128: 128 * channel_multiplier, 256: 64 * channel_multiplier,
             512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
    return {r: c for r, c in table.items() if r <= size}


def make_kernel(k) -> torch.Tensor:
    k = torch.tensor(k, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad=(0, 0)) -> torch.Tensor:
    """Zero-insert upsample by `up`, zero-pad (pad0, pad1) on both axes, FIR-filter (true convolution)."""
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(b, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    weight = torch.flip(kernel, [0, 1]).to(x.dtype).expand(c, 1, *kernel.shape)
    return F.conv2d(x, weight, groups=c)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, slope: float = 0.2, scale: float = 2 ** 0.5):
    # StyleCLIP's version: for 3-D input (B, n, C) the bias runs along the last axis.
    if x.ndim == 3:
        bias = bias.view(1, 1, -1)
    else:
        bias = bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x + bias, negative_slope=slope) * scale


class PixelNorm(nn.Module):
    """Normalises over dim 1 (for the mapper's (B, n, C) groups that is the layer axis)."""

    def forward(self, x):
        return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return fused_leaky_relu(x, self.bias)


class EqualLinear(nn.Module):
    """Linear with runtime weight scaling (1/sqrt(in) * lr_mul) and bias * lr_mul."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x):
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class Blur(nn.Module):
    def __init__(self, pad, scale: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", make_kernel(BLUR_KERNEL) * scale)
        self.pad = pad

    def forward(self, x):
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """×2 upsampling of the toRGB skip: zero insertion + [1,3,3,1] blur (gain 4)."""

    factor = 2

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", make_kernel(BLUR_KERNEL) * self.factor ** 2)
        p = len(BLUR_KERNEL) - self.factor
        self.pad = ((p + 1) // 2 + self.factor - 1, p // 2)

    def forward(self, x):
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Style-modulated conv. The style s (modulation output) scales the input channels; with
    demodulation each output channel is renormalised. Upsampling: stride-2 transposed conv + blur."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False):
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        self.scale = 1 / math.sqrt(in_channel * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1.0)
        if upsample:
            factor = 2
            p = (len(BLUR_KERNEL) - factor) - (kernel_size - 1)
            self.blur = Blur(pad=((p + 1) // 2 + factor - 1, p // 2 + 1), scale=factor ** 2)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """x (B, Cin, H, W), style (B, Cin) in S. The official per-sample grouped conv."""
        b, cin, h, w = x.shape
        k, cout = self.kernel_size, self.out_channel
        weight = self.scale * self.weight * style.view(b, 1, cin, 1, 1)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
            weight = weight * demod.view(b, cout, 1, 1, 1)
        x = x.reshape(1, b * cin, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(b * cin, cout, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=b)
            out = self.blur(out.view(b, cout, out.shape[2], out.shape[3]))
        else:
            out = F.conv2d(x, weight.reshape(b * cout, cin, k, k), padding=self.padding, groups=b)
            out = out.view(b, cout, h, w)
        return out


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise):
        return x + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int):
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x, style, noise):
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True):
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class Generator(nn.Module):
    """rosinality Generator(size, style_dim, n_mlp) with an explicit width table `channels`
    (resolution → channels for 4, 8, …, size), so tiny and non-FFHQ widths work."""

    def __init__(self, size: int, style_dim: int, n_mlp: int, channels: dict, lr_mlp: float = 0.01):
        super().__init__()
        self.log_size = int(math.log2(size))
        if 2 ** self.log_size != size or size < 8:
            raise ToolkitError(f"generator size must be a power of two >= 8, got {size}")
        self.channels = {int(r): int(c) for r, c in channels.items()}
        missing = [2 ** i for i in range(2, self.log_size + 1) if 2 ** i not in self.channels]
        if missing:
            raise ToolkitError(f"channel table has no width for resolution(s) {missing}")
        self.size, self.style_dim, self.n_mlp = size, style_dim, n_mlp
        self.style = nn.Sequential(PixelNorm(), *[
            EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True) for _ in range(n_mlp)])

        ch = self.channels
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], style_dim)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        in_channel = ch[4]
        for i in range(3, self.log_size + 1):
            out_channel = ch[2 ** i]
            self.convs.append(StyledConv(in_channel, out_channel, style_dim, upsample=True))
            self.convs.append(StyledConv(out_channel, out_channel, style_dim))
            self.to_rgbs.append(ToRGB(out_channel, style_dim))
            in_channel = out_channel

        self.num_layers = (self.log_size - 2) * 2 + 1
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))
        self.n_latent = self.log_size * 2 - 2

    def noise(self, i: int) -> torch.Tensor:
        return getattr(self.noises, f"noise_{i}")

    def style_layers(self) -> list:
        """The modulated convs in S layout order: conv1, to_rgb1, then convs.2k, convs.2k+1, to_rgbs.k."""
        layers = [self.conv1.conv, self.to_rgb1.conv]
        for k, to_rgb in enumerate(self.to_rgbs):
            layers += [self.convs[2 * k].conv, self.convs[2 * k + 1].conv, to_rgb.conv]
        return layers

    def forward_styles(self, styles: list) -> torch.Tensor:
        """Render from S: `styles` holds one (B, C_l) tensor per layer in layout order."""
        if len(styles) != len(self.style_layers()):
            raise ValueError(f"expected {len(self.style_layers())} style tensors, got {len(styles)}")
        x = self.input(styles[0].shape[0])
        x = self.conv1(x, styles[0], self.noise(0))
        skip = self.to_rgb1(x, styles[1])
        for k, to_rgb in enumerate(self.to_rgbs):
            s = styles[2 + 3 * k: 5 + 3 * k]
            x = self.convs[2 * k](x, s[0], self.noise(2 * k + 1))
            x = self.convs[2 * k + 1](x, s[1], self.noise(2 * k + 2))
            skip = to_rgb(x, s[2], skip)
        return skip

    def forward(self, wplus: torch.Tensor) -> torch.Tensor:
        """Render from W+ (B, numWs, wDim) with the fixed noise buffers (randomize_noise=False)."""
        return self.forward_styles(w_to_styles(self, wplus))


def style_layout(gen: Generator) -> list:
    """pack.json styleLayout: name, resolution, channels (style width = conv input channels), wIndex, toRgb."""
    layout = [
        {"name": "conv1", "resolution": 4, "channels": gen.channels[4], "wIndex": 0, "toRgb": False},
        {"name": "to_rgb1", "resolution": 4, "channels": gen.channels[4], "wIndex": 1, "toRgb": True},
    ]
    for k in range(len(gen.to_rgbs)):
        res = 2 ** (k + 3)
        layout += [
            {"name": f"convs.{2 * k}", "resolution": res, "channels": gen.convs[2 * k].conv.in_channel,
             "wIndex": 1 + 2 * k, "toRgb": False},
            {"name": f"convs.{2 * k + 1}", "resolution": res, "channels": gen.convs[2 * k + 1].conv.in_channel,
             "wIndex": 2 + 2 * k, "toRgb": False},
            {"name": f"to_rgbs.{k}", "resolution": res, "channels": gen.to_rgbs[k].conv.in_channel,
             "wIndex": 3 + 2 * k, "toRgb": True},
        ]
    return layout


def w_to_styles(gen: Generator, wplus: torch.Tensor) -> list:
    """W+ (B, numWs, wDim) → per-layer styles (B, C_l): each layer's affine on its W+ row."""
    return [layer.modulation(wplus[:, entry["wIndex"]])
            for layer, entry in zip(gen.style_layers(), style_layout(gen))]


def styles_to_flat(styles: list) -> torch.Tensor:
    return torch.cat(styles, dim=1)


def flat_to_styles(gen: Generator, flat: torch.Tensor) -> list:
    return list(torch.split(flat, [e["channels"] for e in style_layout(gen)], dim=1))


def truncate(w: torch.Tensor, w_avg: torch.Tensor, psi: float) -> torch.Tensor:
    """rosinality truncation, on every row: w_avg + ψ (w − w_avg)."""
    return w_avg + psi * (w - w_avg)


def mean_w(gen: Generator, n: int = 10_000, seed: int = 0) -> torch.Tensor:
    """Mean of mapped z (the truncation centre when a checkpoint has no latent_avg)."""
    z = torch.from_numpy(np.random.RandomState(seed).randn(n, gen.style_dim).astype(np.float32))
    with torch.no_grad():
        return gen.style(z).mean(0)


def generator_config_from_state_dict(sd: dict) -> dict:
    """size, style_dim, n_mlp and the width table, read from the tensors (never assumed)."""
    for key in ("input.input", "conv1.conv.weight", "style.1.weight", "to_rgb1.conv.weight"):
        if key not in sd:
            raise ToolkitError(f"not a rosinality StyleGAN2 generator: tensor '{key}' is missing")
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in sd:
        n_mlp += 1
    n_blocks = 0
    while f"to_rgbs.{n_blocks}.conv.weight" in sd:
        n_blocks += 1
    channels = {4: int(sd["input.input"].shape[1])}
    for k in range(n_blocks):
        key = f"convs.{2 * k}.conv.weight"
        if key not in sd:
            raise ToolkitError(f"not a rosinality StyleGAN2 generator: tensor '{key}' is missing")
        channels[2 ** (k + 3)] = int(sd[key].shape[1])
    return {"size": 4 * 2 ** n_blocks, "style_dim": int(sd["style.1.weight"].shape[1]), "n_mlp": n_mlp,
            "channels": channels}


def generator_from_state_dict(sd: dict, fill_missing_noise: bool = False) -> Generator:
    """Builds a Generator whose shapes come from `sd` and loads it strictly (blur kernels excepted:
    they are fixed constants and some exports drop them)."""
    cfg = generator_config_from_state_dict(sd)
    gen = Generator(**cfg)
    expected = gen.state_dict()
    sd = {k: torch.as_tensor(v) for k, v in sd.items() if k in expected}
    missing = [k for k in expected if k not in sd and not k.endswith(("blur.kernel", "upsample.kernel"))]
    if fill_missing_noise:
        missing = [k for k in missing if not k.startswith("noises.")]
    if missing:
        raise ToolkitError(f"generator weights incomplete: missing {', '.join(missing[:4])}"
                           + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""))
    for key, value in sd.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ToolkitError(f"generator tensor '{key}' has shape {tuple(value.shape)}, "
                               f"expected {tuple(expected[key].shape)} for this layout")
    gen.load_state_dict(sd, strict=False)
    return gen.eval()


def build_random_checkpoint(size: int, style_dim: int, n_mlp: int, channels: dict, seed: int = 0,
                            with_latent_avg: bool = True) -> dict:
    """A random-weight checkpoint in rosinality's official layout: {'g_ema': state_dict, 'latent_avg'}.
    Biases and noise strengths get small random values (untrained G has them at 0/1) so that
    every term of the forward pass is exercised by parity tests."""
    torch.manual_seed(seed)
    gen = Generator(size, style_dim, n_mlp, channels)
    gen_rng = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in gen.named_parameters():
            if name.endswith((".bias", "noise.weight")):
                p.add_(0.1 * torch.randn(p.shape, generator=gen_rng))
    ckpt = {"g_ema": gen.state_dict()}
    if with_latent_avg:
        ckpt["latent_avg"] = mean_w(gen, n=1000, seed=seed)
    return ckpt


def load_generator_from_pack(pack_dir) -> Generator:
    """The reference Generator rebuilt from a pack's ONNX initializers + pack.json (no pickles)."""
    from styleclip_toolkit.pack import onnx_initializers, pack_file, read_pack_json

    meta = read_pack_json(pack_dir)
    sd = {}
    for key in ("mapping", "toStyles", "synthesis"):
        path = pack_file(pack_dir, key)
        if not Path(path).is_file():
            raise ToolkitError(f"pack {pack_dir} has no {path.relative_to(Path(pack_dir))}")
        sd.update({k: torch.from_numpy(v.copy()) for k, v in onnx_initializers(path).items()})
    gen = generator_from_state_dict(sd)
    if gen.size != meta.get("resolution") or gen.n_latent != meta.get("numWs"):
        raise ToolkitError(f"pack {pack_dir}: graphs are {gen.size}px with {gen.n_latent} W+ rows but pack.json "
                           f"says {meta.get('resolution')}px / {meta.get('numWs')}")
    return gen
