"""The losses and the learning-rate schedule of StyleCLIP's latent optimization
(optimization/run_optimization.py, criteria/clip_loss.py, criteria/id_loss.py), as modules over
torch models rebuilt from a pack.

CLIP loss, official image path ("official"): the generator output in about [-1, 1] is upsampled
×7 (nearest) and average-pooled to CLIP's input size, then fed to the image tower with no
clamping, no [0, 1] rescale and no mean/std (StyleCLIP issue #38; the published mappers were
trained that way). The official pool kernel is stylegan_size // 32, i.e. 224 px for ViT-B/32;
here it is 7·R / imageSize, the same number for a 224 px CLIP and the right one for any other.
"normalized" is the corrected path: (x + 1) / 2 clamped to [0, 1], the same area resize, CLIP's
mean/std. loss = 1 − logitScale · cos(image, text) / 100 (official: 1 − logits_per_image / 100).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from styleclip_toolkit.clip_model import CLIP_MEAN, CLIP_STD
from styleclip_toolkit.errors import ToolkitError

CLIP_INPUTS = ("official", "normalized")
RAMP_UP, RAMP_DOWN = 0.05, 0.25  # hard-wired in the official get_lr (its --lr_rampup is ignored)


def lr_at(t: float, lr0: float) -> float:
    """Official schedule at t = step / steps: linear warm-up over the first 5 %, cosine ramp-down
    over the last 25 %."""
    ramp = 0.5 - 0.5 * math.cos(math.pi * min(1.0, (1.0 - t) / RAMP_DOWN))
    return lr0 * ramp * min(1.0, t / RAMP_UP)


def pool_kernel(resolution: int, image_size: int) -> int:
    if (7 * resolution) % image_size:
        raise ToolkitError(f"the CLIP loss resizes {resolution} px ×7 by average pooling to {image_size} px, "
                           f"which needs 7·{resolution} to be a multiple of {image_size}")
    return 7 * resolution // image_size


class ClipLoss(nn.Module):
    """1 − logitScale·cos(CLIP(image), CLIP(text))/100 per image: [B]. The text embedding is fixed."""

    def __init__(self, clip, text_ids: torch.Tensor, logit_scale: float, resolution: int,
                 clip_input: str = "official"):
        super().__init__()
        if clip_input not in CLIP_INPUTS:
            raise ToolkitError(f"unknown --clip-input {clip_input!r}: use {' or '.join(CLIP_INPUTS)}")
        self.clip, self.logit_scale, self.clip_input = clip, float(logit_scale), clip_input
        self.kernel = pool_kernel(resolution, clip.image_size)
        with torch.no_grad():
            text = clip.encode_text(text_ids)
        self.register_buffer("text", text / text.norm(dim=1, keepdim=True))
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1))

    def pixels(self, image: torch.Tensor) -> torch.Tensor:
        if self.clip_input == "normalized":
            image = ((image + 1) / 2).clamp(0, 1)
        x = F.avg_pool2d(F.interpolate(image, scale_factor=7, mode="nearest"), self.kernel)
        return (x - self.mean) / self.std if self.clip_input == "normalized" else x

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats = self.clip.encode_image(self.pixels(image))
        feats = feats / feats.norm(dim=1, keepdim=True)
        return 1 - (self.logit_scale * feats @ self.text.t())[:, 0] / 100  # official order: (scale·f) @ t


class IdLoss(nn.Module):
    """Official IDLoss between generated images and fixed originals: each image pooled to 256²
    (unless it is 256 px), rows 35:223 / cols 32:220 kept, pooled to 112², embedded by ArcFace
    (L2-normalised); loss = mean over the batch of 1 − <f(generated), f(original)>. The originals'
    features are computed once (the official loop recomputes the same detached values every step)."""

    def __init__(self, facenet: nn.Module, originals: torch.Tensor):
        super().__init__()
        self.facenet = facenet
        with torch.no_grad():
            self.register_buffer("target", self.features(originals))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != 256:
            x = F.adaptive_avg_pool2d(x, (256, 256))
        x = F.adaptive_avg_pool2d(x[:, :, 35:223, 32:220], (112, 112))
        return self.facenet(x)

    def forward(self, generated: torch.Tensor) -> torch.Tensor:
        return (1 - (self.features(generated) * self.target).sum(dim=1)).mean()
