"""convert-generator: a rosinality StyleGAN2 checkpoint (g_ema [+ latent_avg], noise buffers) →
generator/{mapping,to_styles,synthesis}.onnx, generator/w_avg.npy and pack.json's generator fields.
Size, widths, style_dim and n_mlp come from the tensors."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.export import export_generator
from styleclip_toolkit.pack import pack_file, read_or_new_pack_json, save_npy, style_channel_count, write_pack_json
from styleclip_toolkit.safe_load import safe_torch_load
from styleclip_toolkit.stylegan2 import generator_from_state_dict, mean_w, style_layout

DEFAULTS = {"neutral": "face", "targetTemplate": "face with {}", "strength": 4.1, "threshold": None}
W_AVG_SAMPLES = 10_000


def generator_state_dict(ckpt) -> tuple:
    """(g_ema state_dict, latent_avg or None) from a rosinality checkpoint or a bare g_ema state_dict."""
    if not isinstance(ckpt, dict):
        raise ToolkitError("not a rosinality checkpoint: expected a dict with 'g_ema'")
    if "g_ema" in ckpt:
        return ckpt["g_ema"], ckpt.get("latent_avg")
    if "input.input" in ckpt:
        return ckpt, None
    keys = ", ".join(list(ckpt)[:6])
    raise ToolkitError(f"not a rosinality checkpoint: no 'g_ema' (top-level keys: {keys})")


def convert_generator(checkpoint, pack_dir, name: str | None = None) -> dict:
    """Writes the generator part of a pack; returns pack.json as written."""
    sd, latent_avg = generator_state_dict(safe_torch_load(checkpoint))
    torch.manual_seed(0)  # noise buffers a checkpoint lacks are filled from this seed
    gen = generator_from_state_dict(sd, fill_missing_noise=True)
    if not any(k.startswith("noises.") for k in sd):
        print("note: the checkpoint has no noise buffers; using seeded random noise", file=sys.stderr)
    layout = style_layout(gen)

    meta = read_or_new_pack_json(pack_dir)
    old_layout = meta.get("styleLayout")
    if old_layout is not None and old_layout != layout and (Path(pack_dir) / "directions").exists():
        raise ToolkitError(f"pack {pack_dir} already holds directions for a different generator; "
                           "convert into a new --out folder")

    if latent_avg is not None:
        w_avg = torch.as_tensor(latent_avg).float().reshape(-1, gen.style_dim).mean(0)
    else:
        w_avg = mean_w(gen, W_AVG_SAMPLES, seed=0)
    export_generator(gen, Path(pack_dir) / "generator")
    save_npy(pack_file(pack_dir, "wAvg"), w_avg.numpy())

    meta.update({
        "name": name or meta.get("name") or Path(checkpoint).stem,
        "untrained": meta.get("untrained", False),
        "resolution": gen.size, "zDim": gen.style_dim, "wDim": gen.style_dim, "numWs": gen.n_latent,
        "styleLayout": layout,
    })
    meta.setdefault("defaults", dict(DEFAULTS))
    meta.setdefault("mappers", [])
    meta["source"] = {**meta.get("source", {}), "generator": f"rosinality {Path(checkpoint).name}"}
    write_pack_json(pack_dir, meta)
    return meta


def add_arguments(parser):
    parser.add_argument("--format", default="rosinality", help="checkpoint format (only: rosinality)")
    parser.add_argument("--checkpoint", required=True, help="rosinality .pt with g_ema (and latent_avg)")
    parser.add_argument("--out", required=True, help="model pack folder (created or updated)")
    parser.add_argument("--name", help="pack name (default: the checkpoint's file name)")


def run(args):
    if args.format != "rosinality":
        raise ToolkitError(f"unknown --format {args.format!r} (supported: rosinality)")
    meta = convert_generator(args.checkpoint, args.out, args.name)
    layout = meta["styleLayout"]
    print(f"generator {meta['resolution']}px, wDim {meta['wDim']}, {meta['numWs']} W+ rows, "
          f"{len(layout)} style layers ({style_channel_count(layout)} channels) -> {args.out}")
