"""random-pack: full-size random weights for benchmarks (FFHQ config-f generator: style 512, n_mlp 8,
channel multiplier 2; CLIP ViT-B/32 shapes). Never committed. Built through the same convert-*
code paths as tiny-pack; fs3 is random (row-normalised) because computing it at full size takes
hours and benchmarks only need its shape."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from styleclip_toolkit.convert_encoder import add_random_encoder
from styleclip_toolkit.convert_generator import convert_generator
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.pack import conv_channel_count, read_pack_json, update_pack_json
from styleclip_toolkit.pack_build import add_mappers, clear_pack, finish_pack
from styleclip_toolkit.stats import run_stats
from styleclip_toolkit.stylegan2 import build_random_checkpoint, ffhq_channels

STATS_SAMPLES = 1000


def build_random_pack(out_dir, resolution: int = 1024, full_clip: bool = True,
                      stats_samples: int = STATS_SAMPLES, full_encoder: bool = True) -> dict:
    """full_clip False swaps in the tiny CLIP, full_encoder False a narrow e4e (tests only)."""
    from styleclip_toolkit.bpe import make_random_vocab, make_tiny_vocab
    from styleclip_toolkit.clip_model import tiny_clip_state_dict, vit_b32_state_dict
    from styleclip_toolkit.convert_clip import convert_clip
    from styleclip_toolkit.import_directions import import_directions

    if resolution not in ffhq_channels(1024) or resolution < 8:
        raise ToolkitError(f"--resolution must be a power of two from 8 to 1024, got {resolution}")
    out_dir = Path(out_dir)
    clear_pack(out_dir)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        ckpt = build_random_checkpoint(resolution, 512, 8, ffhq_channels(resolution), seed=0)
        torch.save(ckpt, work / f"stylegan2-random-{resolution}.pt")
        convert_generator(work / f"stylegan2-random-{resolution}.pt", out_dir, name=f"random-{resolution}")

        vocab = work / "bpe_random.txt.gz"
        if full_clip:
            torch.save(vit_b32_state_dict(seed=0), work / "clip.pt")
            make_random_vocab(vocab)
        else:
            torch.save(tiny_clip_state_dict(seed=0), work / "clip.pt")
            make_tiny_vocab(vocab)
        convert_clip(work / "clip.pt", vocab, out_dir)

        add_random_encoder(out_dir, work, ckpt["g_ema"], narrow=not full_encoder)
        meta = read_pack_json(out_dir)
        if meta["numWs"] > 8:
            add_mappers(out_dir, work, [("purple hair", False)], 512, {})
    _, std = run_stats(out_dir, samples=stats_samples, truncation=0.7, seed=5)
    fs3 = np.random.RandomState(0).randn(conv_channel_count(meta["styleLayout"]), meta["clip"]["embedDim"])
    import_directions(out_dir, (fs3 / np.linalg.norm(fs3, axis=1, keepdims=True)).astype(np.float32), std)
    update_pack_json(out_dir, directions={"source": "random"})
    return finish_pack(out_dir, untrained=True, source={"generator": "random rosinality config-f layout",
                                                        "clip": "random ViT-B/32 layout" if full_clip else "random tiny"})


def add_arguments(parser):
    parser.add_argument("--resolution", type=int, default=1024, help="generator resolution (FFHQ widths)")
    parser.add_argument("--out", required=True, help="pack folder (its pack files are replaced)")


def run(args):
    meta = build_random_pack(args.out, args.resolution)
    print(f"random pack ({meta['resolution']}px, untrained) -> {args.out}")
