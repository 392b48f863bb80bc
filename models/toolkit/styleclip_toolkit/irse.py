"""IR / IR-SE ResNet building blocks (the InsightFace "improved residual" backbone).

Shared by the e4e encoder's body (`encoder.input_layer…`, `encoder.body.N…`) and the ArcFace
identity network `Backbone(112, 50, 'ir_se')` (`input_layer…`, `body…`, `output_layer…`). Module
attribute names and Sequential indices reproduce the official state_dict keys, so both official
checkpoints load with `load_state_dict(strict=True)`:

    body.N.shortcut_layer.{0: Conv2d 1x1, 1: BatchNorm2d}     (only where the width changes)
    body.N.res_layer.{0: BN, 1: Conv 3x3, 2: PReLU, 3: Conv 3x3 (stride), 4: BN, 5: SE.fc1/fc2}
    input_layer.{0: Conv 3x3, 1: BN, 2: PReLU}
    output_layer.{0: BN2d, 1: Dropout, 2: Flatten, 3: Linear, 4: BN1d}

`widths` (default 64, 128, 256, 512) exists for narrow test variants of the same code path.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

DEFAULT_WIDTHS = (64, 128, 256, 512)

# num_layers -> units per stage (each stage starts with a stride-2 unit)
_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}


class BlockSpec(NamedTuple):
    in_channel: int
    depth: int
    stride: int


def ir_blocks(num_layers: int, widths=DEFAULT_WIDTHS) -> list[list[BlockSpec]]:
    """The per-stage unit table of an IR-50/100/152: 4 stages, the first unit of each has stride 2
    and takes the previous stage's width (the stem's width, widths[0], for stage 1)."""
    if num_layers not in _UNITS:
        raise ValueError(f"num_layers must be one of 50, 100, 152 (got {num_layers})")
    if len(widths) != 4:
        raise ValueError(f"widths must have 4 entries (got {tuple(widths)})")
    stages = []
    prev = widths[0]
    for units, depth in zip(_UNITS[num_layers], widths):
        stages.append([BlockSpec(prev, depth, 2)] + [BlockSpec(depth, depth, 1)] * (units - 1))
        prev = depth
    return stages


class SEModule(nn.Module):
    """Squeeze-and-excitation: x * sigmoid(fc2(relu(fc1(avgpool(x))))), 1x1 convs without bias."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, padding=0, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, padding=0, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        s = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * s


class BottleneckIR(nn.Module):
    """Pre-activation residual unit: BN, conv3x3, PReLU, conv3x3 (stride), BN (+ SE in IR-SE);
    the shortcut is a strided identity (MaxPool2d(1, stride)) or a 1x1 conv + BN where the width
    changes."""

    se = False

    def __init__(self, in_channel: int, depth: int, stride: int):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False),
                nn.BatchNorm2d(depth))
        layers = [
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if self.se:
            layers.append(SEModule(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


class BottleneckIRSE(BottleneckIR):
    se = True


def unit_module(mode: str) -> type[BottleneckIR]:
    if mode == "ir":
        return BottleneckIR
    if mode == "ir_se":
        return BottleneckIRSE
    raise ValueError(f"mode must be 'ir' or 'ir_se' (got {mode!r})")


def make_input_layer(width: int = 64) -> nn.Sequential:
    """The stem: conv3x3 (3 -> width, stride 1, no bias), BN, PReLU."""
    return nn.Sequential(nn.Conv2d(3, width, (3, 3), 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width))


def make_body(num_layers: int, mode: str = "ir_se", widths=DEFAULT_WIDTHS) -> nn.Sequential:
    """All units of all stages in one flat Sequential (`body.0` … `body.23` for IR-50)."""
    unit = unit_module(mode)
    return nn.Sequential(*[unit(*spec) for stage in ir_blocks(num_layers, widths) for spec in stage])


def l2_normalize(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return x / torch.linalg.vector_norm(x, ord=2, dim=dim, keepdim=True)


class Backbone(nn.Module):
    """The ArcFace identity network (TreB1eN InsightFace layout): input [N, 3, S, S] with S = 112
    or 224, output an L2-normalised embedding [N, embedding_size]."""

    def __init__(self, input_size: int, num_layers: int, mode: str = "ir_se", drop_ratio: float = 0.4,
                 affine: bool = True, *, widths=DEFAULT_WIDTHS, embedding_size: int = 512):
        super().__init__()
        if input_size not in (112, 224):
            raise ValueError(f"input_size must be 112 or 224 (got {input_size})")
        self.input_layer = make_input_layer(widths[0])
        self.body = make_body(num_layers, mode, widths)
        side = input_size // 16  # four stride-2 stages
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(widths[-1]),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(widths[-1] * side * side, embedding_size),
            nn.BatchNorm1d(embedding_size, affine=affine))

    def forward(self, x):
        return l2_normalize(self.output_layer(self.body(self.input_layer(x))))
