"""convert-mapper: a StyleCLIP latent mapper checkpoint → mappers/<slug>.onnx + pack.json's mappers entry.

Rebuilds the official mapper (mapper/latent_mappers.py): LevelsMapper semantics and the official
checkpoint layout.

LevelsMapper: W+ rows 0–3 (coarse), 4–7 (medium), 8… (fine) each go through their own Mapper =
PixelNorm over dim 1 (the LAYER axis of the (B, n, C) group) → 4 × EqualLinear(lr_mul 0.01,
fused lrelu, the last one included). A disabled level outputs zeros. The graph returns the raw
M(w); the engine applies ŵ = w + α·0.1·M(w).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.export import export_onnx
from styleclip_toolkit.pack import atomic_write, read_pack_json, slugify
from styleclip_toolkit.safe_load import safe_torch_load
from styleclip_toolkit.stylegan2 import EqualLinear, PixelNorm

LEVELS = (("coarse", "course_mapping", 0, 4), ("medium", "medium_mapping", 4, 8), ("fine", "fine_mapping", 8, None))


class Mapper(nn.Module):
    def __init__(self, dim: int = 512):
        super().__init__()
        self.mapping = nn.Sequential(PixelNorm(), *[EqualLinear(dim, dim, lr_mul=0.01, activation=True)
                                                    for _ in range(4)])

    def forward(self, x):
        return self.mapping(x)


class LevelsMapper(nn.Module):
    """`levels` = {"coarse": bool, "medium": bool, "fine": bool}; attribute names as official
    (`course_mapping` [sic]), so state_dict keys match checkpoints without the `mapper.` prefix."""

    def __init__(self, levels: dict, dim: int = 512):
        super().__init__()
        self.levels = dict(levels)
        for level, attr, _, _ in LEVELS:
            if self.levels[level]:
                setattr(self, attr, Mapper(dim))

    def forward(self, wplus):
        parts = []
        for level, attr, start, end in LEVELS:
            x = wplus[:, start:end]
            parts.append(getattr(self, attr)(x) if self.levels[level] else torch.zeros_like(x))
        return torch.cat(parts, dim=1)


def official_opts(description: str, no_fine_mapper: bool) -> dict:
    """`vars(opts)` as mapper/options/train_options.py saves it (defaults of the official trainer)."""
    return {
        "exp_dir": "results/" + slugify(description), "mapper_type": "LevelsMapper",
        "no_coarse_mapper": False, "no_medium_mapper": False, "no_fine_mapper": no_fine_mapper,
        "latents_train_path": "train_faces.pt", "latents_test_path": "test_faces.pt",
        "train_dataset_size": 5000, "test_dataset_size": 1000, "batch_size": 2, "test_batch_size": 1,
        "workers": 4, "test_workers": 2, "learning_rate": 0.5, "optim_name": "ranger", "id_lambda": 0.1,
        "clip_lambda": 1.0, "latent_l2_lambda": 0.8, "stylegan_weights": "stylegan2-ffhq-config-f.pt",
        "stylegan_size": 1024, "ir_se50_weights": "model_ir_se50.pth", "max_steps": 50000,
        "board_interval": 50, "image_interval": 100, "val_interval": 2000, "save_interval": 2000,
        "description": description, "checkpoint_path": None, "work_in_stylespace": False,
    }


def build_random_mapper_checkpoint(description: str, no_fine_mapper: bool = False, dim: int = 512, seed: int = 0,
                                   decoder_state_dict: dict | None = None) -> dict:
    """A random-weight checkpoint in the official layout: {'state_dict': {mapper.*, decoder.*}, 'opts'}."""
    torch.manual_seed(seed)
    levels = {"coarse": True, "medium": True, "fine": not no_fine_mapper}
    mapper = LevelsMapper(levels, dim)
    with torch.no_grad():
        for name, p in mapper.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 10.0)  # stored ×100 (lr_mul 0.01): effective bias ~0.1
    state = {f"mapper.{k}": v for k, v in mapper.state_dict().items()}
    state.update({f"decoder.{k}": v for k, v in (decoder_state_dict or {}).items()})
    return {"state_dict": state, "opts": official_opts(description, no_fine_mapper)}


def _opts_dict(opts) -> dict:
    if opts is None:
        return {}
    if isinstance(opts, dict):
        return opts
    return dict(vars(opts))  # argparse.Namespace stand-in


def mapper_from_checkpoint(ckpt) -> tuple:
    """(LevelsMapper, opts dict) from an official checkpoint; only the `mapper.*` tensors are kept."""
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ToolkitError("not a StyleCLIP mapper checkpoint: expected a dict with 'state_dict' and 'opts'")
    opts = _opts_dict(ckpt.get("opts"))
    if opts.get("work_in_stylespace"):
        raise ToolkitError("StyleSpace mappers (work_in_stylespace) are not supported; use a W+ LevelsMapper")
    if opts.get("mapper_type", "LevelsMapper") != "LevelsMapper":
        raise ToolkitError(f"unsupported mapper_type {opts.get('mapper_type')!r} (only LevelsMapper)")
    sd = {k[len("mapper."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("mapper.")}
    if not sd:
        raise ToolkitError("checkpoint has no mapper.* tensors")
    levels = {}
    for level, attr, _, _ in LEVELS:
        present = f"{attr}.mapping.1.weight" in sd
        flag = opts.get(f"no_{level}_mapper")
        levels[level] = present if flag is None else not flag
        if levels[level] and not present:
            raise ToolkitError(f"opts enable the {level} mapper but the checkpoint has no mapper.{attr}.* tensors")
    if not any(levels.values()):
        raise ToolkitError("all mapper levels are disabled")
    first = next(attr for level, attr, _, _ in LEVELS if levels[level])
    dim = int(sd[f"{first}.mapping.1.weight"].shape[1])
    mapper = LevelsMapper(levels, dim)
    expected = mapper.state_dict()
    sd = {k: v for k, v in sd.items() if k in expected}
    missing = [k for k in expected if k not in sd]
    if missing:
        raise ToolkitError(f"mapper weights incomplete: missing mapper.{missing[0]}")
    for k, v in sd.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise ToolkitError(f"mapper tensor mapper.{k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}")
    mapper.load_state_dict(sd)
    return mapper.eval(), opts


def convert_mapper(checkpoint, pack_dir, prompt: str | None = None) -> dict:
    """Exports mappers/<slug>.onnx (wplus → delta) and adds/replaces the pack.json `mappers` entry."""
    meta = read_pack_json(pack_dir)
    if "wDim" not in meta or "numWs" not in meta:
        raise ToolkitError(f"pack {pack_dir} has no generator yet: run convert-generator first")
    mapper, opts = mapper_from_checkpoint(safe_torch_load(checkpoint))
    name = prompt or opts.get("description")
    if not name:
        raise ToolkitError("the checkpoint's opts has no description: pass --prompt TEXT")
    dim = mapper.state_dict()[next(iter(mapper.state_dict()))].shape[1]
    if dim != meta["wDim"]:
        raise ToolkitError(f"mapper works on W of width {dim} but the pack's generator has wDim {meta['wDim']}")
    if meta["numWs"] <= 8 and mapper.levels["fine"]:
        raise ToolkitError(f"the pack has {meta['numWs']} W+ rows: no fine rows (8…) for the fine mapper")
    return write_mapper(mapper, pack_dir, name, meta["numWs"], Path(pack_dir) / "pack.json", meta)


def write_mapper(mapper: LevelsMapper, out_dir, name: str, num_ws: int, index_path, index: dict,
                 extra: dict | None = None) -> dict:
    """The one writer of mapper graphs: mappers/<slug>.onnx (wplus -> delta) under out_dir, then the
    entry {name, slug, file, levels, **extra} added to (or replacing its slug in) the `mappers` list of
    `index` (pack.json of a pack, or a mapper folder's mappers.json), written to index_path. Both
    writes are atomic (temporary file + rename) and the index goes last, so a reader never finds an
    entry whose graph is missing or half-written."""
    slug = slugify(name)
    rel = f"mappers/{slug}.onnx"
    dim = mapper.state_dict()[next(iter(mapper.state_dict()))].shape[1]
    atomic_write(Path(out_dir) / rel, lambda tmp: export_onnx(
        mapper, (torch.zeros(2, num_ws, dim),), tmp, ["wplus"], ["delta"], {"wplus": {0: "batch"}, "delta": {0: "batch"}}))
    entry = {"name": name, "slug": slug, "file": rel, "levels": dict(mapper.levels), **(extra or {})}
    index["mappers"] = [m for m in index.get("mappers", []) if m.get("slug") != slug] + [entry]
    text = json.dumps(index, indent=2) + "\n"
    atomic_write(index_path, lambda tmp: tmp.write_text(text))
    return entry


def add_arguments(parser):
    parser.add_argument("--format", default="styleclip", help="checkpoint format (only: styleclip)")
    parser.add_argument("--checkpoint", required=True, help="official mapper .pt ({'state_dict', 'opts'})")
    parser.add_argument("--prompt", help="mapper name (default: the checkpoint's opts.description)")
    parser.add_argument("--out", required=True, help="model pack folder (with a generator)")


def run(args):
    if args.format != "styleclip":
        raise ToolkitError(f"unknown --format {args.format!r} (supported: styleclip)")
    entry = convert_mapper(args.checkpoint, args.out, args.prompt)
    levels = ", ".join(k for k, v in entry["levels"].items() if v)
    print(f"mapper '{entry['name']}' ({levels}) -> {Path(args.out) / entry['file']}")
