"""The e4e encoder (omertov/encoder4editing `Encoder4Editing`, as wrapped by its pSp class):
an aligned face [N, 3, 256, 256] in [-1, 1] -> W+ [N, L, wDim].

Module tree and state_dict keys as the official checkpoint's `encoder.*` tensors:
- `input_layer`, `body.0…23`: IR-SE-50 (styleclip_toolkit.irse);
- FPN taps after the last unit of stages 2, 3, 4 (body units 6, 20, 23): c1 (64², widths[1]),
  c2 (32², widths[2]), c3 (16², widths[3]); `latlayer1` / `latlayer2` are 1x1 convs to widths[3];
  p2 = bilinear(c3 -> 32², align_corners) + latlayer1(c2), p1 = bilinear(p2 -> 64²) + latlayer2(c1);
- `styles.0…L-1`: GradualStyleBlock on c3 (i < 3), p2 (3 <= i < 7), p1 (i >= 7): stride-2 3x3 convs
  + LeakyReLU(0.01) down to 1x1, then a rosinality EqualLinear (lr_mul 1).
Inference forward (progressive stage "Inference", all deltas): w0 = styles[0](c3),
w[:, i] = w0 + styles[i](features_i) for i >= 1 (w[:, 0] = w0). pSp then adds `latent_avg`
(`start_from_latent_avg`). `widths`/`wDim`/L are read from the tensors, so narrow test variants
run the same code.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.irse import DEFAULT_WIDTHS, ir_blocks, make_body, make_input_layer
from styleclip_toolkit.stylegan2 import EqualLinear

NUM_LAYERS = 50
INPUT_SIZE = 256
COARSE_IND, MIDDLE_IND = 3, 7
STAGE_STARTS = (0, 3, 7, 21)  # first body unit of each IR-50 stage
TAPS = (6, 20, 23)  # c1, c2, c3: last unit of stages 2, 3, 4


def style_spatial(i: int) -> int:
    """Side of the feature map style block i reads at a 256² input (16, 32 or 64)."""
    return 16 if i < COARSE_IND else 32 if i < MIDDLE_IND else 64


class GradualStyleBlock(nn.Module):
    def __init__(self, in_c: int, out_c: int, spatial: int):
        super().__init__()
        self.out_c = out_c
        layers = [nn.Conv2d(in_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        for _ in range(int(math.log2(spatial)) - 1):
            layers += [nn.Conv2d(out_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_c, out_c, lr_mul=1)

    def forward(self, x):
        return self.linear(self.convs(x).reshape(-1, self.out_c))


def upsample_add(x, y):
    """x resized bilinearly (align_corners=True) to y's size, plus y."""
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


class Encoder4Editing(nn.Module):
    def __init__(self, num_ws: int, w_dim: int = 512, widths=DEFAULT_WIDTHS):
        super().__init__()
        self.style_count = num_ws
        self.input_layer = make_input_layer(widths[0])
        self.body = make_body(NUM_LAYERS, "ir_se", widths)
        self.styles = nn.ModuleList([GradualStyleBlock(widths[3], w_dim, style_spatial(i)) for i in range(num_ws)])
        self.latlayer1 = nn.Conv2d(widths[2], widths[3], kernel_size=1, stride=1, padding=0)
        self.latlayer2 = nn.Conv2d(widths[1], widths[3], kernel_size=1, stride=1, padding=0)

    def forward(self, x):
        x = self.input_layer(x)
        taps = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in TAPS:
                taps.append(x)
        c1, c2, c3 = taps
        w0 = self.styles[0](c3)
        rows = [w0]
        features = c3
        for i in range(1, self.style_count):
            if i == COARSE_IND:
                p2 = upsample_add(c3, self.latlayer1(c2))
                features = p2
            elif i == MIDDLE_IND:
                p1 = upsample_add(p2, self.latlayer2(c1))
                features = p1
            rows.append(w0 + self.styles[i](features))
        return torch.stack(rows, dim=1)


class EncoderGraph(nn.Module):
    """What the pack's encoder/encoder.onnx computes: images -> Encoder4Editing(images) + latent_avg.
    Parameter names are the checkpoint's (`encoder.…`, `latent_avg`)."""

    def __init__(self, encoder: Encoder4Editing, latent_avg: torch.Tensor):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("latent_avg", latent_avg.reshape(encoder.style_count, -1).clone())

    def forward(self, images):
        return self.encoder(images) + self.latent_avg


def e4e_config_from_state_dict(sd: dict) -> dict:
    """{num_ws, w_dim, widths} from the encoder's tensors (keys without `encoder.`)."""
    def shape(key):
        if key not in sd:
            raise ToolkitError(f"e4e encoder weights incomplete: missing encoder.{key}")
        return tuple(sd[key].shape)

    units = {int(k.split(".")[1]) for k in sd if k.startswith("body.")}
    if len(units) != sum(len(s) for s in ir_blocks(NUM_LAYERS)):
        raise ToolkitError(f"the encoder body has {len(units)} units; e4e uses IR-SE-50 (24 units)")
    num_ws = len({int(k.split(".")[1]) for k in sd if k.startswith("styles.")})
    if num_ws < 1:
        raise ToolkitError("the encoder has no styles.* tensors (not an Encoder4Editing)")
    widths = tuple(shape(f"body.{start}.res_layer.1.weight")[0] for start in STAGE_STARTS)
    return {"num_ws": num_ws, "w_dim": shape("styles.0.linear.weight")[0], "widths": widths}


def encoder_from_state_dict(sd: dict) -> Encoder4Editing:
    """Encoder4Editing (eval mode) from `encoder.*` tensors with the prefix removed; exact keys and shapes."""
    encoder = Encoder4Editing(**e4e_config_from_state_dict(sd))
    expected = encoder.state_dict()
    for key, tensor in expected.items():
        if key not in sd:
            raise ToolkitError(f"e4e encoder weights incomplete: missing encoder.{key}")
        if tuple(sd[key].shape) != tuple(tensor.shape):
            raise ToolkitError(f"e4e tensor encoder.{key} has shape {tuple(sd[key].shape)}, expected {tuple(tensor.shape)}")
    extra = sorted(set(sd) - set(expected))
    if extra:
        raise ToolkitError(f"unexpected e4e tensor encoder.{extra[0]} (not an Encoder4Editing with an IR-SE-50 body)")
    encoder.load_state_dict(sd)
    return encoder.eval()


def official_opts(stylegan_size: int) -> dict:
    """`vars(opts)` of an e4e training run (options/train_options.py defaults, FFHQ encode)."""
    return {
        "exp_dir": "experiment", "dataset_type": "ffhq_encode", "encoder_type": "Encoder4Editing",
        "batch_size": 8, "test_batch_size": 4, "workers": 8, "test_workers": 4, "learning_rate": 0.0001,
        "optim_name": "ranger", "train_decoder": False, "start_from_latent_avg": True, "lpips_type": "alex",
        "lpips_lambda": 0.8, "id_lambda": 0.5, "l2_lambda": 1.0, "stylegan_weights": "stylegan2-ffhq-config-f.pt",
        "stylegan_size": stylegan_size, "checkpoint_path": None, "max_steps": 200000, "image_interval": 100,
        "board_interval": 50, "val_interval": 10000, "save_interval": 200000, "w_discriminator_lambda": 0.1,
        "w_discriminator_lr": 2e-5, "r1": 10, "d_reg_every": 16, "use_w_pool": True, "w_pool_size": 50,
        "delta_norm": 2, "delta_norm_lambda": 0.0002, "progressive_steps": [0] + list(range(20000, 54000, 2000)),
        "progressive_start": 20000, "progressive_step_every": 2000, "save_training_data": False,
        "sub_exp_dir": None, "keep_optimizer": False, "resume_training_from_ckpt": None, "update_param_list": None,
        "device": "cuda:0",
    }


def randomize_encoder(encoder: Encoder4Editing, generator: torch.Generator) -> None:
    """Random weights that keep activations O(1) through the 24 units, with non-trivial BN
    statistics, PReLU slopes and biases, so every parameter shows in the output."""
    with torch.no_grad():
        for name, module in encoder.named_modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                gain = 0.5 if name.startswith("body.") else 1.4  # residual branches add up over 24 units
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * gain / math.sqrt(fan_in))
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
            elif isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                module.weight.copy_(1 + 0.2 * torch.randn(c, generator=generator))
                module.bias.copy_(0.1 * torch.randn(c, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(c, generator=generator))
            elif isinstance(module, nn.PReLU):
                module.weight.copy_(0.25 + 0.1 * torch.randn(module.weight.shape, generator=generator))
            elif isinstance(module, EqualLinear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))


def build_random_e4e_checkpoint(num_ws: int, w_dim: int = 512, widths=DEFAULT_WIDTHS, seed: int = 0,
                                decoder_state_dict: dict | None = None, stylegan_size: int | None = None) -> dict:
    """A random-weight checkpoint in the official layout: {'state_dict': {encoder.*, decoder.*},
    'latent_avg': [L, wDim] (pSp repeats the generator's mean w per row), 'opts': dict}."""
    g = torch.Generator().manual_seed(seed)
    encoder = Encoder4Editing(num_ws, w_dim, widths)
    randomize_encoder(encoder, g)
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state.update({f"decoder.{k}": v for k, v in (decoder_state_dict or {}).items()})
    latent_avg = torch.randn(1, w_dim, generator=g).repeat(num_ws, 1)
    size = stylegan_size or 2 ** ((num_ws + 2) // 2)
    return {"state_dict": state, "latent_avg": latent_avg, "opts": official_opts(size)}


def e4e_from_checkpoint(ckpt) -> tuple[Encoder4Editing, torch.Tensor, dict]:
    """(encoder in eval mode, latent_avg [L, wDim] (zeros when opts.start_from_latent_avg is false),
    opts) from an official e4e checkpoint. Only `encoder.*` tensors and `latent_avg` are used."""
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ToolkitError("not an e4e checkpoint: expected a dict with 'state_dict', 'latent_avg' and 'opts'")
    opts = ckpt.get("opts") or {}
    opts = opts if isinstance(opts, dict) else dict(vars(opts))
    kind = opts.get("encoder_type", "Encoder4Editing")
    if kind != "Encoder4Editing":
        raise ToolkitError(f"unsupported encoder_type {kind!r}: only e4e's Encoder4Editing is supported")
    sd = {k[len("encoder."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    if not sd:
        keys = ", ".join(sorted({k.split(".")[0] for k in ckpt["state_dict"]})[:4]) or "nothing"
        raise ToolkitError(f"not an e4e checkpoint: its state_dict has no encoder.* tensors (has {keys})")
    encoder = encoder_from_state_dict(sd)
    num_ws, w_dim = encoder.style_count, int(sd["styles.0.linear.weight"].shape[0])
    if not opts.get("start_from_latent_avg", True):
        return encoder, torch.zeros(num_ws, w_dim), opts
    avg = ckpt.get("latent_avg")
    if not isinstance(avg, torch.Tensor):
        raise ToolkitError("the e4e checkpoint has no latent_avg tensor (needed with start_from_latent_avg)")
    avg = avg.detach().float()
    if avg.shape[-1] != w_dim or avg.numel() not in (w_dim, num_ws * w_dim):
        raise ToolkitError(f"latent_avg has shape {tuple(avg.shape)}; expected [{w_dim}] or [{num_ws}, {w_dim}]")
    return encoder, avg.reshape(-1, w_dim).expand(num_ws, w_dim).clone(), opts
