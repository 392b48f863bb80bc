"""OpenAI CLIP (ViT image tower + text transformer) in one readable file.

Parameter names follow OpenAI's `clip/model.py`, so an official state_dict loads as is, whether it
comes from a plain torch.save file or from the TorchScript archives OpenAI publishes (ViT-B/32.pt…).
Sizes are inferred from the tensors, like OpenAI's `build_model`. Attention is written out with
plain matmuls (no nn.MultiheadAttention) so the ONNX graphs are the same on PyTorch 1.13 and 2.x.

Also here: deterministic random state_dicts for tests and benchmarks, CLIP's image preprocessing
on generator outputs, and the ONNX export of both encoders.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.export import export_onnx
from styleclip_toolkit.safe_load import is_torchscript_archive, safe_torch_load

# CLIP's image normalisation (clip/clip.py `_transform`).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Keys OpenAI's TorchScript archives carry besides the weights (build_model drops them too).
# Keys ending in "attn_mask" (OpenAI's causal mask, should an archive store it) are dropped too.
_ARCHIVE_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


def heads_for_width(width):
    """Attention heads for a transformer width. OpenAI: width // 64 (64-wide heads, all released
    models). Test-sized models narrower than 64 use 16-wide heads, since a state_dict can't say."""
    return width // 64 if width >= 64 else max(1, width // 16)


class Attention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names (batch first)."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.head_dim = width // heads  # plain ints keep the exported graph free of shape arithmetic
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x, mask=None):
        b, n, _ = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        # [B, N, D] -> [B, heads, N, head_dim]
        q, k, v = (t.reshape(b, n, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        att = q @ k.transpose(-2, -1) * self.head_dim ** -0.5
        if mask is not None:
            att = att + mask
        y = att.softmax(dim=-1) @ v
        return self.out_proj(y.transpose(1, 2).reshape(b, n, self.heads * self.head_dim))


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.attn = Attention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, width * 4)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(width * 4, width)),
        ]))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x, mask=None):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x, mask=None):
        for block in self.resblocks:
            x = block(x, mask)
        return x


class VisionTransformer(nn.Module):
    def __init__(self, image_size, patch, width, layers, heads, embed_dim):
        super().__init__()
        self.image_size = image_size
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros((image_size // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, embed_dim))

    def forward(self, pixels):
        x = self.conv1(pixels).flatten(2).transpose(1, 2)  # [B, grid², width]
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    def __init__(self, embed_dim, context_length, vocab_size, width, layers, heads,
                 image_size, patch, vision_width, vision_layers, vision_heads):
        super().__init__()
        self.context_length = context_length
        self.visual = VisionTransformer(image_size, patch, vision_width, vision_layers, vision_heads, embed_dim)
        self.transformer = Transformer(width, layers, heads)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.zeros(context_length, width))
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.zeros(width, embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        # Causal mask: a token sees itself and what precedes it. Not part of the state_dict.
        mask = torch.full((context_length, context_length), float("-inf")).triu(1)
        self.register_buffer("causal_mask", mask, persistent=False)

    @property
    def embed_dim(self):
        return self.text_projection.shape[1]

    @property
    def image_size(self):
        return self.visual.image_size

    def encode_text(self, ids):
        """ids int64 [B, T] -> [B, embed_dim], projected, not normalised. T is context_length, or
        less: with the causal mask the EOT features don't depend on the padding after it, so ids
        cut after the longest row's EOT give the same result for a fraction of the work."""
        n = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:n]
        x = self.ln_final(self.transformer(x, self.causal_mask[:n, :n]))
        # Features at the end-of-text token, the highest id in each row.
        eot = ids.argmax(dim=-1)
        x = x.gather(1, eot[:, None, None].expand(-1, 1, x.shape[-1]))[:, 0]
        return x @ self.text_projection

    def encode_image(self, pixels):
        """pixels [B, 3, S, S], CLIP-normalised -> [B, embed_dim], not normalised."""
        return self.visual(pixels)


# ---------------------------------------------------------------------------------------------
# Building from a state_dict


def config_from_state_dict(sd):
    """Sizes of the model a state_dict holds, inferred as OpenAI's build_model does."""
    if "visual.proj" not in sd:
        if any(k.startswith("visual.layer1.") for k in sd):
            raise ToolkitError("ResNet CLIP not supported (RN50, RN101…): use a ViT model such as ViT-B/32")
        if any(k.startswith(("text_model.", "vision_model.")) for k in sd):
            raise ToolkitError("this is a Hugging Face CLIP checkpoint; convert-clip --format openai takes "
                               "OpenAI's .pt files (e.g. ViT-B/32.pt)")
        missing = [k for k in ("token_embedding.weight", "visual.proj") if k not in sd]
        raise ToolkitError(f"not an OpenAI CLIP checkpoint: missing {', '.join(missing)}")
    need = ["token_embedding.weight", "positional_embedding", "ln_final.weight", "text_projection",
            "visual.conv1.weight", "visual.positional_embedding"]
    missing = [k for k in need if k not in sd]
    if missing:
        raise ToolkitError(f"not an OpenAI CLIP checkpoint: missing {', '.join(missing)}")

    def count_blocks(prefix):
        return len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})

    width = sd["ln_final.weight"].shape[0]
    vision_width = sd["visual.conv1.weight"].shape[0]
    patch = sd["visual.conv1.weight"].shape[-1]
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    return dict(
        embed_dim=sd["text_projection"].shape[1],
        context_length=sd["positional_embedding"].shape[0],
        vocab_size=sd["token_embedding.weight"].shape[0],
        width=width,
        layers=count_blocks("transformer.resblocks."),
        heads=heads_for_width(width),
        image_size=patch * grid,
        patch=patch,
        vision_width=vision_width,
        vision_layers=count_blocks("visual.transformer.resblocks."),
        vision_heads=heads_for_width(vision_width),
    )


def clip_from_state_dict(sd):
    """A float32 CLIP in eval mode from an OpenAI-layout state_dict (fp16 weights are widened)."""
    sd = {k: v for k, v in sd.items() if k not in _ARCHIVE_EXTRA_KEYS and not k.endswith("attn_mask")}
    bad = [k for k, v in sd.items() if not torch.is_tensor(v)]
    if bad:
        raise ToolkitError(f"not a CLIP state_dict: {bad[0]} is a {type(sd[bad[0]]).__name__}, not a tensor")
    model = CLIP(**config_from_state_dict(sd))
    try:
        model.load_state_dict({k: v.float() for k, v in sd.items()})
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        raise ToolkitError(f"CLIP checkpoint does not match OpenAI's layout: {detail[:300]}") from None
    return model.eval()


def load_clip_checkpoint(path):
    """Loads OpenAI CLIP from a TorchScript archive (OpenAI's .pt downloads) or a plain state_dict."""
    if not os.path.isfile(path):
        raise ToolkitError(f"CLIP checkpoint not found: {path}")
    if is_torchscript_archive(path):
        # TorchScript code is not pickle; OpenAI's clip.load(jit=False) reads the files the same way.
        try:
            sd = torch.jit.load(path, map_location="cpu").state_dict()
        except Exception as e:  # noqa: BLE001
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ToolkitError(f"cannot read TorchScript archive {path}: {first[:200]}") from None
    else:
        sd = safe_torch_load(path)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ToolkitError(f"{path} holds a {type(sd).__name__}, not a CLIP state_dict")
    return clip_from_state_dict(sd)


# ---------------------------------------------------------------------------------------------
# Random weights in OpenAI's layout


def tiny_clip_state_dict(seed=0, vocab_size=None, embed_dim=32, width=32, layers=2, heads=2,
                         vision_width=32, vision_layers=2, patch=8, image_size=32, context_length=77):
    """A deterministic random state_dict with OpenAI's keys and initialisation scales.

    vocab_size None means the size of `bpe.make_tiny_vocab`'s default vocabulary."""
    if heads != heads_for_width(width) or image_size % patch:
        raise ValueError(f"heads must be {heads_for_width(width)} for width {width} (a state_dict can't "
                         f"store it) and image_size a multiple of patch")
    if vocab_size is None:
        from styleclip_toolkit.bpe import tiny_vocab_size
        vocab_size = tiny_vocab_size()
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, std=1.0):
        return torch.randn(*shape, generator=g) * std

    def norm(prefix, w):
        return {f"{prefix}.weight": 1 + randn(w, std=0.1), f"{prefix}.bias": randn(w, std=0.1)}

    def tower(prefix, w, n):
        sd = {}
        for i in range(n):
            p = f"{prefix}resblocks.{i}."
            sd.update({
                p + "attn.in_proj_weight": randn(3 * w, w, std=w ** -0.5),
                p + "attn.in_proj_bias": randn(3 * w, std=0.02),
                p + "attn.out_proj.weight": randn(w, w, std=(w * 2 * n) ** -0.5),
                p + "attn.out_proj.bias": randn(w, std=0.02),
                p + "mlp.c_fc.weight": randn(4 * w, w, std=(2 * w) ** -0.5),
                p + "mlp.c_fc.bias": randn(4 * w, std=0.02),
                p + "mlp.c_proj.weight": randn(w, 4 * w, std=(w * 2 * n) ** -0.5),
                p + "mlp.c_proj.bias": randn(w, std=0.02),
                **norm(p + "ln_1", w),
                **norm(p + "ln_2", w),
            })
        return sd

    vs = vision_width ** -0.5
    sd = {
        "positional_embedding": randn(context_length, width, std=0.01),
        "text_projection": randn(width, embed_dim, std=width ** -0.5),
        "logit_scale": torch.tensor(math.log(1 / 0.07)),
        "visual.class_embedding": randn(vision_width, std=vs),
        "visual.positional_embedding": randn((image_size // patch) ** 2 + 1, vision_width, std=vs),
        "visual.proj": randn(vision_width, embed_dim, std=vs),
        "visual.conv1.weight": randn(vision_width, 3, patch, patch, std=(3 * patch * patch) ** -0.5),
        **norm("visual.ln_pre", vision_width),
        **tower("visual.transformer.", vision_width, vision_layers),
        **norm("visual.ln_post", vision_width),
        **tower("transformer.", width, layers),
        "token_embedding.weight": randn(vocab_size, width, std=0.02),
        **norm("ln_final", width),
    }
    return sd


def vit_b32_state_dict(seed=0):
    """Random weights in ViT-B/32's shapes (for benchmark packs; ~151M parameters)."""
    return tiny_clip_state_dict(seed, vocab_size=49408, embed_dim=512, width=512, layers=12, heads=8,
                                vision_width=768, vision_layers=12, patch=32, image_size=224)


# ---------------------------------------------------------------------------------------------
# Preprocessing and export


def preprocess_tensor(images, image_size=224):
    """CLIP's standard preprocessing for generator outputs [B, 3, H, W] in about [-1, 1].

    Mirrors clip.load's transform on the uint8 image the engine would save: quantise to 0…255,
    bicubic-resize the shorter side to image_size (antialiased, PIL's a = -0.5 kernel, PIL's two
    rounded passes), centre crop, /255, mean/std normalise. PIL computes with fixed-point weights,
    so a few pixels (well under 1 %) land one uint8 step (1/255) away from PIL's; never more."""
    x = ((images.float() + 1) * 127.5).clamp(0, 255).round()
    h, w = x.shape[-2:]
    # torchvision Resize(int): the shorter side becomes image_size, the longer keeps the aspect ratio.
    if h <= w:
        size = (image_size, int(image_size * w / h))
    else:
        size = (int(image_size * h / w), image_size)
    # PIL resizes horizontally, rounds to uint8, then vertically (and rounds again).
    for pass_size in ((h, size[1]), size):
        if tuple(x.shape[-2:]) != pass_size:
            x = F.interpolate(x, size=pass_size, mode="bicubic", align_corners=False, antialias=True)
            x = x.clamp(0, 255).round()
    top = int(round((size[0] - image_size) / 2.0))
    left = int(round((size[1] - image_size) / 2.0))
    x = x[..., top:top + image_size, left:left + image_size] / 255.0
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class _Method(nn.Module):
    """Exposes one method of a module as forward, for torch.onnx.export."""

    def __init__(self, module, method):
        super().__init__()
        self.module = module
        self.method = method

    def forward(self, x):
        return getattr(self.module, self.method)(x)


def export_clip(model, out_dir):
    """Writes OUT/clip/text_encoder.onnx and OUT/clip/image_encoder.onnx (dynamic batch).

    Returns pack.json's "clip" entry."""
    model = model.float().eval()
    clip_dir = os.path.join(out_dir, "clip")
    os.makedirs(clip_dir, exist_ok=True)
    ids = torch.zeros(2, model.context_length, dtype=torch.long)
    ids[:, 0], ids[:, 1] = 1, model.token_embedding.num_embeddings - 1
    batch = {0: "batch"}
    export_onnx(_Method(model, "encode_text"), (ids,), os.path.join(clip_dir, "text_encoder.onnx"),
                ["input_ids"], ["text_embeds"], {"input_ids": {0: "batch", 1: "sequence"}, "text_embeds": batch})
    pixels = torch.zeros(2, 3, model.image_size, model.image_size)
    export_onnx(_Method(model, "encode_image"), (pixels,), os.path.join(clip_dir, "image_encoder.onnx"),
                ["pixel_values"], ["image_embeds"], {"pixel_values": batch, "image_embeds": batch})
    return {"embedDim": int(model.embed_dim), "contextLength": int(model.context_length),
            "imageSize": int(model.image_size)}
