"""The official global-direction maths (orpatashnik/StyleCLIP global_torch/StyleCLIP.py and
SingleChannel.py), written plainly as the reference the fast code and the TypeScript engine
are checked against. Research notes §2.1, §2.2, §2.4.
"""

from __future__ import annotations

import numpy as np
import torch

from styleclip_toolkit.errors import ToolkitError


def class_embedding(encode_text, tokenize, text, templates):
    """One text through all templates: normalise each embedding, average, normalise (zeroshot_classifier)."""
    with torch.no_grad():
        emb = encode_text(tokenize([t.format(text) for t in templates])).double()
    emb = emb / emb.norm(dim=-1, keepdim=True)
    mean = emb.mean(dim=0)
    return (mean / mean.norm()).numpy()


def text_direction(encode_text, tokenize, target, neutral, templates):
    """GetDt: Δt = e(target) − e(neutral), normalised. Returns (Δt float64, norm before normalising)."""
    dt = class_embedding(encode_text, tokenize, target, templates) - class_embedding(
        encode_text, tokenize, neutral, templates)
    norm = float(np.linalg.norm(dt))
    if norm == 0.0:
        raise ToolkitError("target and neutral texts give the same CLIP embedding; use different texts")
    return dt / norm, norm


def style_delta(fs3, dt, beta, std, conv_mask):
    """GetBoundary + SplitS(if_std=True): ΔS over all style channels and the number of channels moved.

    r = fs3·Δt; |r| < β → 0; divide by max|r|; × std; toRGB channels 0. Nothing left → error
    (the official code would divide by zero and return NaN).
    """
    r = np.asarray(fs3, np.float64) @ np.asarray(dt, np.float64)
    keep = np.abs(r) >= beta
    channels = int(keep.sum())
    r[~keep] = 0.0
    if channels == 0 or not np.any(r):
        raise ToolkitError(f"no channel has relevance >= {beta}; use a lower threshold")
    r /= np.abs(r).max()
    delta = np.zeros(conv_mask.size, np.float64)
    delta[conv_mask] = r * np.asarray(std, np.float64)[conv_mask]
    return delta, channels


def relevance_from_embeddings(feats):
    """GetFs: feats [C, N, 2, D] CLIP image embeddings at (mean − 5σ, mean + 5σ) → fs3 [C, D]."""
    f = feats / np.linalg.norm(feats, axis=-1, keepdims=True)
    d = f[:, :, 1] - f[:, :, 0]
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    m = d.mean(axis=1)
    return m / np.linalg.norm(m, axis=-1, keepdims=True)
