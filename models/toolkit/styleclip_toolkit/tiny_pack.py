"""tiny-pack: the small deterministic pack every test uses (committed as models/packs/tiny).

It builds random-weight checkpoints in the OFFICIAL layouts (rosinality G .pt, OpenAI CLIP
state_dict + BPE vocab, two StyleCLIP mapper .pt) and runs the same convert-* / stats /
directions code paths on them as users' real checkpoints go through.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from styleclip_toolkit.convert_encoder import add_random_encoder
from styleclip_toolkit.convert_generator import convert_generator
from styleclip_toolkit.pack_build import add_mappers, clear_pack, finish_pack
from styleclip_toolkit.stats import run_stats
from styleclip_toolkit.stylegan2 import build_random_checkpoint

# 64 px gives 10 W+ rows, so the mapper's fine level (rows 8…) exists.
TINY_GENERATOR = {"size": 64, "style_dim": 32, "n_mlp": 2, "channels": {4: 32, 8: 32, 16: 16, 32: 16, 64: 8}}
TINY_MAPPERS = (("curly hair", True), ("purple hair", False))  # (description, no_fine_mapper)
TINY_STATS_SAMPLES = 2000
TINY_DIRECTION_IMAGES = 4
TINY_IDENTITY = {"widths": (16, 16, 16, 16), "embedding_size": 16}  # IR-SE-50 depth, narrow


def build_tiny_pack(out_dir) -> dict:
    from styleclip_toolkit.bpe import make_tiny_vocab
    from styleclip_toolkit.clip_model import tiny_clip_state_dict
    from styleclip_toolkit.convert_clip import convert_clip

    out_dir = Path(out_dir)
    clear_pack(out_dir)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        ckpt = build_random_checkpoint(**TINY_GENERATOR, seed=0)
        torch.save(ckpt, work / "stylegan2-tiny.pt")
        convert_generator(work / "stylegan2-tiny.pt", out_dir, name="tiny")

        torch.save(tiny_clip_state_dict(seed=0), work / "clip-tiny.pt")
        make_tiny_vocab(work / "bpe_tiny.txt.gz")
        convert_clip(work / "clip-tiny.pt", work / "bpe_tiny.txt.gz", out_dir)

        add_mappers(out_dir, work, TINY_MAPPERS, TINY_GENERATOR["style_dim"], ckpt["g_ema"])
        from styleclip_toolkit.convert_identity import convert_identity, random_identity_state_dict
        torch.save(random_identity_state_dict(seed=0, **TINY_IDENTITY), work / "arcface-tiny.pth")
        convert_identity(work / "arcface-tiny.pth", out_dir)
        add_random_encoder(out_dir, work, ckpt["g_ema"], narrow=True)
    run_stats(out_dir, samples=TINY_STATS_SAMPLES, truncation=0.7, seed=5)

    from styleclip_toolkit.directions import run_directions

    run_directions(out_dir, images=TINY_DIRECTION_IMAGES, batch=64, device="cpu")
    return finish_pack(out_dir, untrained=True, source={"generator": "random rosinality layout (tiny)",
                                                        "clip": "random OpenAI layout (tiny)",
                                                        "identity": "random IR-SE-50 layout (narrow)"})


def add_arguments(parser):
    parser.add_argument("--out", required=True, help="pack folder (its pack files are replaced)")


def run(args):
    meta = build_tiny_pack(args.out)
    print(f"tiny pack ({meta['resolution']}px, {len(meta['mappers'])} mappers) -> {args.out}")
