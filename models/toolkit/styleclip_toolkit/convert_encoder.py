"""convert-encoder: official e4e checkpoint (`e4e_ffhq_encode.pt`) -> the pack's encoder/encoder.onnx.

The checkpoint holds the whole pSp network (`encoder.*` and `decoder.*`), `latent_avg` and `opts`
(a plain dict); only the encoder and latent_avg are exported:
    images [N, 3, 256, 256] in [-1, 1] -> wplus [N, numWs, wDim] = Encoder4Editing(images) + latent_avg
with a dynamic batch axis. pack.json gains `"encoder": {"file", "inputSize", "format"}`.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from styleclip_toolkit.e4e import INPUT_SIZE, EncoderGraph, build_random_e4e_checkpoint, e4e_from_checkpoint
from styleclip_toolkit.irse import DEFAULT_WIDTHS
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.export import export_onnx
from styleclip_toolkit.pack import onnx_initializers, pack_file, read_pack_json, write_pack_json
from styleclip_toolkit.safe_load import safe_torch_load

ENCODER_FILE = "encoder/encoder.onnx"


# Narrow IR-SE widths of the test packs' encoders (16 is the least: the SE modules divide by 16).
TEST_WIDTHS = (16, 16, 16, 16)


def export_encoder(graph: EncoderGraph, path) -> None:
    batch = {0: "batch"}
    with warnings.catch_warnings():  # torch 1.13's Resize export warns about its own empty `roi` input
        warnings.filterwarnings("ignore", message="The shape inference of prim::Constant")
        export_onnx(graph, (torch.zeros(2, 3, INPUT_SIZE, INPUT_SIZE),), path, ["images"], ["wplus"],
                    {"images": batch, "wplus": batch}, eval_mode=True)


def decoder_mismatch(state_dict: dict, pack_dir) -> str | None:
    """A note when the checkpoint's decoder mapping network differs from the pack's generator
    (the encoder was then trained for another generator); None when equal or not comparable."""
    key = "style.1.weight"
    ours = state_dict.get(f"decoder.{key}")
    mapping = pack_file(pack_dir, "mapping")
    if ours is None or not mapping.is_file():
        return None
    theirs = onnx_initializers(mapping).get(key)
    if theirs is not None and theirs.shape == tuple(ours.shape) and np.array_equal(theirs, ours.float().numpy()):
        return None
    return (f"the checkpoint's decoder ({key}) differs from the pack's generator: "
            "the encoder was trained for another generator, its W+ may not reconstruct faces")


def convert_encoder(checkpoint, pack_dir, warn=None) -> dict:
    """Exports encoder/encoder.onnx and records pack.json `encoder`; returns that entry."""
    meta = read_pack_json(pack_dir)
    if "wDim" not in meta or "numWs" not in meta:
        raise ToolkitError(f"pack {pack_dir} has no generator yet: run convert-generator first")
    ckpt = safe_torch_load(checkpoint)
    encoder, latent_avg, _ = e4e_from_checkpoint(ckpt)
    num_ws, w_dim = latent_avg.shape
    if (num_ws, w_dim) != (meta["numWs"], meta["wDim"]):
        raise ToolkitError(f"the e4e encoder outputs W+ [{num_ws}, {w_dim}] but the pack's generator takes "
                           f"[{meta['numWs']}, {meta['wDim']}] (numWs x wDim): it belongs to another generator")
    note = decoder_mismatch(ckpt["state_dict"], pack_dir)
    if note:
        (warn or (lambda m: print(f"warning: {m}", file=sys.stderr)))(note)
    export_encoder(EncoderGraph(encoder, latent_avg), Path(pack_dir) / ENCODER_FILE)
    entry = {"file": ENCODER_FILE, "inputSize": INPUT_SIZE, "format": "e4e"}
    meta["encoder"] = entry
    write_pack_json(pack_dir, meta)
    return entry


def add_random_encoder(pack_dir, work, decoder_state_dict: dict, narrow: bool = False, seed: int = 0) -> dict:
    """Random-weight e4e checkpoint for the pack's generator (official layout, saved in `work`),
    converted like a user's: tiny and random packs. `narrow`: TEST_WIDTHS instead of IR-SE-50's."""
    meta = read_pack_json(pack_dir)
    path = Path(work) / "e4e-random.pt"
    widths = TEST_WIDTHS if narrow else DEFAULT_WIDTHS
    torch.save(build_random_e4e_checkpoint(meta["numWs"], meta["wDim"], widths, seed, decoder_state_dict,
                                           meta["resolution"]), path)
    return convert_encoder(path, pack_dir)


def add_arguments(parser):
    parser.add_argument("--format", default="e4e", help="checkpoint format (only: e4e)")
    parser.add_argument("--checkpoint", required=True, help="official e4e .pt ({'state_dict', 'latent_avg', 'opts'})")
    parser.add_argument("--out", required=True, help="model pack folder (with a generator)")


def run(args):
    if args.format != "e4e":
        raise ToolkitError(f"unknown --format {args.format!r} (supported: e4e)")
    entry = convert_encoder(args.checkpoint, args.out)
    meta = read_pack_json(args.out)
    print(f"e4e encoder ({entry['inputSize']}² -> W+ {meta['numWs']}x{meta['wDim']}) -> {Path(args.out) / entry['file']}")
