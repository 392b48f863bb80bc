"""parity-fixtures: official-format checkpoints → packs, plus what the official PyTorch code
computes for them, so the TypeScript engine can be checked against it (models/toolkit/PARITY.md).

Every case builds random-weight checkpoints in the official layouts (rosinality generator, OpenAI
CLIP state_dict + BPE vocab, StyleCLIP mapper, official-format fs3 + conv std) and converts them
with the toolkit's converters. The expected outputs come from the checkpoints themselves, through
the reference modules (grouped-conv rosinality generator, OpenAI CLIP, LevelsMapper) and the
official global maths in `directions.official` — never from the pack.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from styleclip_toolkit.bpe import SimpleTokenizer, make_tiny_vocab, tokenize
from styleclip_toolkit.clip_model import clip_from_state_dict, tiny_clip_state_dict
from styleclip_toolkit.convert_clip import convert_clip
from styleclip_toolkit.convert_encoder import TEST_WIDTHS, convert_encoder
from styleclip_toolkit.convert_generator import convert_generator
from styleclip_toolkit.convert_mapper import build_random_mapper_checkpoint, convert_mapper, mapper_from_checkpoint
from styleclip_toolkit.directions.official import style_delta, text_direction
from styleclip_toolkit.e4e import INPUT_SIZE, build_random_e4e_checkpoint, e4e_from_checkpoint
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.import_directions import import_directions
from styleclip_toolkit.pack import conv_mask, parse_channels, save_npy, slugify
from styleclip_toolkit.stylegan2 import (build_random_checkpoint, flat_to_styles, generator_from_state_dict,
                                         style_layout, styles_to_flat, truncate, w_to_styles)
from styleclip_toolkit.templates import IMAGENET_TEMPLATES_79
from styleclip_toolkit.tiny_pack import TINY_GENERATOR

# name → (generator config, mapper (description, no_fine_mapper))
CASES = {
    "tiny": (TINY_GENERATOR, ("curly hair", True)),
    "uneven128": (dict(size=128, style_dim=24, n_mlp=3, channels={4: 24, 8: 20, 16: 12, 32: 10, 64: 6, 128: 5}),
                  ("purple hair", False)),
}
N_IMAGES = 2
SAMPLE = {"seed": 42, "truncation": 0.7}
GLOBAL = {"target": "face with curly hair", "neutral": "face", "strength": 4.1}
MAPPER_STRENGTH = 1.5


def add_arguments(parser):
    parser.add_argument("--out", required=True, help="folder for the fixtures (one sub-folder per case)")
    parser.add_argument("--resolution", type=int, help="replace the non-FFHQ case by one of this size…")
    parser.add_argument("--channels", help="…with these widths, e.g. 4:24,8:20,16:12,32:10")
    parser.add_argument("--style-dim", type=int, default=24, help="W width of that case (default 24)")


def run(args):
    cases = dict(CASES)
    if args.resolution or args.channels:
        if not (args.resolution and args.channels):
            raise ToolkitError("--resolution and --channels go together")
        del cases["uneven128"]
        cases[f"custom{args.resolution}"] = (
            dict(size=args.resolution, style_dim=args.style_dim, n_mlp=2, channels=parse_channels(args.channels)),
            ("purple hair", args.resolution < 64))  # under 64 px there are no fine W+ rows
    out = Path(args.out)
    for seed, (name, (config, mapper)) in enumerate(cases.items(), start=1):
        info = write_case(out / name, name, config, mapper, seed)
        print(f"{name}: {info['resolution']}px, {info['styleChannels']} style channels, "
              f"{info['global']['channels']} moved by the global edit -> {out / name}")
    (out / "index.json").write_text(json.dumps({"cases": list(cases)}, indent=2) + "\n")


def write_case(case_dir, name, config, mapper_spec, seed):
    """Builds the case's checkpoints and pack, writes the expected outputs; returns cases.json."""
    case_dir = Path(case_dir)
    if case_dir.exists():
        if not (case_dir / "cases.json").exists() and any(case_dir.iterdir()):
            raise ToolkitError(f"{case_dir} exists and is not a parity case folder; choose another --out")
        shutil.rmtree(case_dir)
    pack = case_dir / "pack"
    description, no_fine = mapper_spec
    g_ckpt = build_random_checkpoint(**config, seed=seed)
    clip_sd = tiny_clip_state_dict(seed=seed)
    m_ckpt = build_random_mapper_checkpoint(description, no_fine, dim=config["style_dim"], seed=seed + 10)
    e_ckpt = build_random_e4e_checkpoint(2 * int(np.log2(config["size"])) - 2, config["style_dim"], TEST_WIDTHS,
                                         seed=seed + 20, decoder_state_dict=g_ckpt["g_ema"])
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        torch.save(g_ckpt, work / "generator.pt")
        convert_generator(work / "generator.pt", pack, name=f"parity-{name}")
        torch.save(clip_sd, work / "clip.pt")
        make_tiny_vocab(work / "bpe.txt.gz")
        convert_clip(work / "clip.pt", work / "bpe.txt.gz", pack)
        torch.save(m_ckpt, work / "mapper.pt")
        convert_mapper(work / "mapper.pt", pack)
        torch.save(e_ckpt, work / "e4e.pt")
        convert_encoder(work / "e4e.pt", pack)
        tokenizer = SimpleTokenizer(work / "bpe.txt.gz")

    gen = generator_from_state_dict(g_ckpt["g_ema"])
    layout = style_layout(gen)
    mask = conv_mask(layout)
    rng = np.random.RandomState(seed)
    with torch.no_grad():  # official-format std: population std of the conv channels of S
        w = gen.style(torch.from_numpy(rng.randn(500, gen.style_dim).astype(np.float32)))
        s = styles_to_flat(w_to_styles(gen, w[:, None].expand(-1, gen.n_latent, -1))).numpy()
    std = s.std(0)[mask]
    fs3 = rng.randn(int(mask.sum()), clip_sd["text_projection"].shape[1])
    fs3 /= np.linalg.norm(fs3, axis=1, keepdims=True)
    import_directions(pack, fs3.astype(np.float32), std)
    std_full = np.zeros(mask.size)
    std_full[mask] = std

    clip = clip_from_state_dict(clip_sd)
    mapper = mapper_from_checkpoint(m_ckpt)[0]
    files = {}

    def save(key, array):
        files[key] = f"{key}.npy"
        save_npy(case_dir / files[key], array)
        return files[key]

    with torch.no_grad():
        z = torch.from_numpy(rng.randn(N_IMAGES, gen.n_latent, gen.style_dim).astype(np.float32))
        wplus = gen.style(z)  # W+ with a different w per row, like an inversion
        generate = {"wplus": save("wplus", wplus), "raw": save("generate_raw", gen(wplus))}

        z1 = np.random.RandomState(SAMPLE["seed"]).randn(gen.style_dim)
        w1 = gen.style(torch.from_numpy(z1.astype(np.float32))[None])
        w1 = truncate(w1, torch.as_tensor(g_ckpt["latent_avg"]).float(), SAMPLE["truncation"])
        sample_wplus = w1[:, None].repeat(1, gen.n_latent, 1)
        sample = {**SAMPLE, "z": save("sample_z", z1), "wplus": save("sample_wplus", sample_wplus),
                  "raw": save("sample_raw", gen(sample_wplus))}

        dt, dt_norm = text_direction(clip.encode_text, lambda texts: tokenize(tokenizer, texts, clip.context_length),
                                     GLOBAL["target"], GLOBAL["neutral"], IMAGENET_TEMPLATES_79)
        beta = threshold_in_gap(fs3.astype(np.float32).astype(np.float64) @ dt)
        delta, channels = style_delta(fs3.astype(np.float32), dt, beta, std_full.astype(np.float32), mask)
        edited = styles_to_flat(w_to_styles(gen, wplus)) + GLOBAL["strength"] * torch.from_numpy(
            delta.astype(np.float32))
        glob = {**GLOBAL, "threshold": beta, "channels": channels, "deltaTNorm": dt_norm, "wplus": files["wplus"],
                "deltaT": save("global_delta_t", dt), "deltaS": save("global_delta_s", delta),
                "raw": save("global_raw", gen.forward_styles(flat_to_styles(gen, edited)))}

        w_hat = wplus + MAPPER_STRENGTH * 0.1 * mapper(wplus)
        mapped = {"mapper": slugify(description), "strength": MAPPER_STRENGTH, "wplus": files["wplus"],
                  "wplusEdited": save("mapper_wplus", w_hat), "raw": save("mapper_raw", gen(w_hat))}

        encoder, latent_avg, _ = e4e_from_checkpoint(e_ckpt)  # aligned faces in [-1, 1] -> W+
        faces = torch.from_numpy(rng.uniform(-1, 1, (N_IMAGES, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32))
        encode = {"images": save("encode_images", faces), "wplus": save("encode_wplus", encoder(faces) + latent_avg)}

    info = {"case": name, "pack": "pack", "resolution": gen.size, "zDim": gen.style_dim, "wDim": gen.style_dim,
            "numWs": gen.n_latent, "styleChannels": int(mask.size), "convChannels": int(mask.sum()),
            "generate": generate, "sample": sample, "global": glob, "mapper": mapped, "encode": encode}
    (case_dir / "cases.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def threshold_in_gap(r):
    """β in the middle of the widest gap between sorted |r| values, keeping 10–50 % of the
    channels, so float rounding elsewhere cannot change which channels survive."""
    a = np.sort(np.abs(r))[::-1]
    low = max(3, a.size // 10)
    k = max(range(low, max(low + 1, a.size // 2)), key=lambda k: a[k - 1] - a[k])
    return round(float(a[k - 1] + a[k]) / 2, 6)
