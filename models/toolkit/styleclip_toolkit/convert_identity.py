"""convert-identity: the ArcFace network of StyleCLIP's ID loss (`model_ir_se50.pth`, a state_dict
of TreB1eN's `Backbone(112, 50, 'ir_se')`) → the pack's identity/ folder, in a non-pickle format:

    identity/irse50.npy    float32, every tensor of the state_dict (BatchNorm's num_batches_tracked
                           excepted) flattened and concatenated in state_dict order
    identity/irse50.json   {format, numLayers, mode, inputSize, widths, embeddingSize, affine,
                           tensors: [[name, shape], …]}: how to cut the .npy back into the state_dict

pack.json gets `identity: {format: "irse50", manifest, weights, numLayers, mode, inputSize}`. The
toolkit rebuilds `irse.Backbone` from these files (`identity_from_pack`); nothing is unpickled at
use time, and the .pth is read once, here, through the allow-listed loader. Depth (50/100/152),
IR or IR-SE units, widths and input size are read from the tensors, so narrow test networks take
the same path.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from styleclip_toolkit.errors import ToolkitError

FORMATS = ("irse50",)
MANIFEST = "identity/irse50.json"
WEIGHTS = "identity/irse50.npy"
_SKIP = "num_batches_tracked"


def backbone_config(sd: dict) -> dict:
    """Backbone kwargs of an IR / IR-SE state_dict: num_layers, mode, input_size, widths, embedding_size, affine."""
    from styleclip_toolkit.irse import ir_blocks

    for key in ("input_layer.0.weight", "output_layer.3.weight", "body.0.res_layer.1.weight"):
        if key not in sd:
            raise ToolkitError(f"not an IR-SE ArcFace state_dict (model_ir_se50.pth): tensor '{key}' is missing")
    units = len({k.split(".")[1] for k in sd if k.startswith("body.")})
    by_units = {sum(len(s) for s in ir_blocks(n)): n for n in (50, 100, 152)}
    if units not in by_units:
        raise ToolkitError(f"ArcFace body has {units} units; IR-50/100/152 have {', '.join(map(str, by_units))}")
    num_layers = by_units[units]
    firsts = np.cumsum([0] + [len(s) for s in ir_blocks(num_layers)])[:4]
    widths = [int(sd[f"body.{i}.res_layer.1.weight"].shape[0]) for i in firsts]
    features, flat = sd["output_layer.3.weight"].shape[1], sd["output_layer.3.weight"].shape[0]
    side = math.isqrt(features // widths[-1]) if features % widths[-1] == 0 else 0
    if side * side * widths[-1] != features or side * 16 not in (112, 224):
        raise ToolkitError(f"ArcFace output layer takes {features} features: not a 112 or 224 px network")
    return {"num_layers": num_layers, "mode": "ir_se" if "body.0.res_layer.5.fc1.weight" in sd else "ir",
            "input_size": side * 16, "widths": widths, "embedding_size": int(flat),
            "affine": "output_layer.4.weight" in sd}


def build_backbone(config: dict):
    from styleclip_toolkit.irse import Backbone

    return Backbone(config["input_size"], config["num_layers"], config["mode"], drop_ratio=0.6,
                    affine=config["affine"], widths=tuple(config["widths"]),
                    embedding_size=config["embedding_size"])


def backbone_from_state_dict(sd: dict):
    """irse.Backbone (eval) with these weights, loaded strictly (num_batches_tracked may be absent)."""
    config = backbone_config(sd)
    net = build_backbone(config)
    expected = net.state_dict()
    bad = [k for k in expected if not k.endswith(_SKIP) and (k not in sd or tuple(sd[k].shape) != tuple(expected[k].shape))]
    extra = [k for k in sd if k not in expected]
    if bad or extra:
        raise ToolkitError(f"ArcFace weights do not fit Backbone({config['input_size']}, {config['num_layers']}, "
                           f"{config['mode']!r}): {'missing or misshapen ' + bad[0] if bad else 'unexpected ' + extra[0]}")
    net.load_state_dict({k: torch.as_tensor(sd[k]).float() if not k.endswith(_SKIP) else expected[k] for k in expected})
    return net.eval(), config


def random_identity_state_dict(seed: int = 0, num_layers: int = 50, widths=(64, 128, 256, 512),
                               embedding_size: int = 512) -> dict:
    """A random IR-SE ArcFace state_dict in the official layout (tests, tiny pack): weights with
    moderate scales, BatchNorm statistics away from identity, so every term is exercised."""
    config = {"num_layers": num_layers, "mode": "ir_se", "input_size": 112, "widths": list(widths),
              "embedding_size": embedding_size, "affine": True}
    sd = build_backbone(config).state_dict()
    g = torch.Generator().manual_seed(seed)
    for name, t in sd.items():
        if name.endswith(_SKIP):
            continue
        if name.endswith("running_var"):
            t.copy_(torch.rand(t.shape, generator=g) + 0.5)
        elif t.ndim > 1:  # conv / linear: fan-in scaled
            t.copy_(torch.randn(t.shape, generator=g) * (t[0].numel() ** -0.5))
        else:
            is_bn_scale = name.endswith(".weight") and name[:-len("weight")] + "running_var" in sd
            t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (1.0 if is_bn_scale else 0.0))
    return sd


def convert_identity(checkpoint, pack_dir) -> dict:
    """Writes identity/irse50.{npy,json} and pack.json `identity`; returns that entry."""
    from styleclip_toolkit.pack import read_pack_json, save_npy, write_pack_json
    from styleclip_toolkit.safe_load import safe_torch_load

    sd = safe_torch_load(checkpoint)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise ToolkitError(f"{checkpoint} is not a state_dict of tensors")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    meta = read_pack_json(pack_dir)  # the pack must exist: identity belongs to a generator's pack
    net, config = backbone_from_state_dict(sd)
    tensors = [(k, v) for k, v in net.state_dict().items() if not k.endswith(_SKIP)]
    save_npy(Path(pack_dir) / WEIGHTS, np.concatenate([v.detach().numpy().reshape(-1) for _, v in tensors]))
    manifest = {"format": "irse", "numLayers": config["num_layers"], "mode": config["mode"],
                "inputSize": config["input_size"], "widths": config["widths"],
                "embeddingSize": config["embedding_size"], "affine": config["affine"],
                "tensors": [[k, list(v.shape)] for k, v in tensors]}
    (Path(pack_dir) / MANIFEST).write_text(json.dumps(manifest) + "\n")
    entry = {"format": "irse50", "manifest": MANIFEST, "weights": WEIGHTS, "numLayers": config["num_layers"],
             "mode": config["mode"], "inputSize": config["input_size"]}
    meta["identity"] = entry
    meta["source"] = {**meta.get("source", {}), "identity": f"{config['mode']} {config['num_layers']} {Path(checkpoint).name}"}
    write_pack_json(pack_dir, meta)
    return entry


def identity_from_pack(pack_dir):
    """The pack's ArcFace as irse.Backbone (eval, float32), from identity/*.npy + .json (no pickles)."""
    from styleclip_toolkit.pack import load_npy, read_pack_json

    entry = read_pack_json(pack_dir).get("identity")
    if not isinstance(entry, dict):
        raise ToolkitError(f"pack {pack_dir} has no ArcFace weights: run convert-identity --format irse50 "
                           f"--checkpoint model_ir_se50.pth --out {pack_dir}")
    manifest_path = Path(pack_dir) / entry.get("manifest", MANIFEST)
    try:
        manifest = json.loads(manifest_path.read_text())
        config = {"num_layers": manifest["numLayers"], "mode": manifest["mode"], "input_size": manifest["inputSize"],
                  "widths": manifest["widths"], "embedding_size": manifest["embeddingSize"],
                  "affine": manifest["affine"]}
        shapes = [(str(k), tuple(int(d) for d in s)) for k, s in manifest["tensors"]]
    except FileNotFoundError:
        raise ToolkitError(f"identity manifest not found: {manifest_path}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ToolkitError(f"{manifest_path} is not an identity manifest ({type(e).__name__}: {e})") from None
    flat = load_npy(Path(pack_dir) / entry.get("weights", WEIGHTS), "identity weights").reshape(-1)
    sizes = [int(np.prod(s)) for _, s in shapes]
    if flat.dtype != np.float32 or flat.size != sum(sizes):
        raise ToolkitError(f"identity weights hold {flat.size} {flat.dtype} values; the manifest lists {sum(sizes)} float32")
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    sd = {k: torch.from_numpy(p.reshape(s).copy()) for (k, s), p in zip(shapes, parts)}
    net, _ = backbone_from_state_dict(sd)
    if backbone_config(sd) != config:
        raise ToolkitError(f"{manifest_path}: its settings do not match its tensors")
    return net


def add_arguments(parser):
    parser.add_argument("--format", required=True, help="checkpoint format: irse50 (StyleCLIP's model_ir_se50.pth)")
    parser.add_argument("--checkpoint", required=True, help="model_ir_se50.pth (a state_dict; read with the safe loader)")
    parser.add_argument("--out", required=True, help="model pack folder (must already hold pack.json)")


def run(args):
    if args.format not in FORMATS:
        raise ToolkitError(f"unknown identity format {args.format!r}: supported: {', '.join(FORMATS)}")
    entry = convert_identity(args.checkpoint, args.out)
    print(f"identity: {entry['mode']} {entry['numLayers']} layers, {entry['inputSize']} px -> "
          f"{Path(args.out) / entry['weights']}")
    return 0
