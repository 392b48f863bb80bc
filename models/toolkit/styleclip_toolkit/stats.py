"""stats: per-channel mean and population std (ddof 0) of S over sampled images.

Convention (TF GetCode.py, research notes §2.3): z ~ N(0, I) from numpy RandomState(seed), mapped
to w, truncated toward w_avg by ψ, the same w on every W+ row (so ψ applies to all layers; no
cutoff), then S through the affines. The generator is rebuilt from the pack, never from pickles.
"""

from __future__ import annotations

import numpy as np
import torch

from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.pack import load_npy, pack_file, save_npy, update_pack_json
from styleclip_toolkit.stylegan2 import load_generator_from_pack, styles_to_flat, truncate, w_to_styles


def run_stats(pack_dir, samples: int = 100_000, truncation: float = 0.7, seed: int = 5, batch: int = 1000):
    """Writes directions/s_mean.npy, directions/s_std.npy ([S] float32) and pack.json `stats`;
    returns (mean, std) as float64 arrays."""
    if samples < 1 or batch < 1:
        raise ToolkitError("--samples must be >= 1")
    gen = load_generator_from_pack(pack_dir)
    w_avg = torch.from_numpy(load_npy(pack_file(pack_dir, "wAvg"), "w_avg").astype(np.float32))
    rng = np.random.RandomState(seed)
    total = total_sq = None
    with torch.no_grad():
        for start in range(0, samples, batch):
            n = min(batch, samples - start)
            z = torch.from_numpy(rng.randn(n, gen.style_dim).astype(np.float32))
            w = truncate(gen.style(z), w_avg, truncation)
            s = styles_to_flat(w_to_styles(gen, w[:, None].expand(n, gen.n_latent, gen.style_dim))).double()
            total = s.sum(0) if total is None else total + s.sum(0)
            total_sq = (s * s).sum(0) if total_sq is None else total_sq + (s * s).sum(0)
    mean = (total / samples).numpy()
    std = np.sqrt(np.maximum((total_sq / samples).numpy() - mean * mean, 0.0))
    save_npy(pack_file(pack_dir, "mean"), mean)
    save_npy(pack_file(pack_dir, "std"), std)
    update_pack_json(pack_dir, stats={"samples": samples, "truncation": truncation, "truncationCutoff": None,
                                      "seed": seed})
    return mean, std


def add_arguments(parser):
    parser.add_argument("--pack", required=True, help="model pack with a generator")
    parser.add_argument("--samples", type=int, default=100_000, help="sampled z (official: 100000)")
    parser.add_argument("--truncation", type=float, default=0.7, help="ψ, applied to every W+ row (official: 0.7)")
    parser.add_argument("--seed", type=int, default=5, help="numpy RandomState seed (official: 5)")


def run(args):
    mean, std = run_stats(args.pack, args.samples, args.truncation, args.seed)
    print(f"stats over {args.samples} samples (psi {args.truncation}, seed {args.seed}): {std.size} channels, "
          f"mean std {std.mean():.4g} -> {pack_file(args.pack, 'std')}")
