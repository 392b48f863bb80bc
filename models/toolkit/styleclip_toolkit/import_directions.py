"""import-directions: put the official precomputed fs3 and per-channel std into a pack.

fs3 rows are the conv (non-toRGB) style channels in layout order. The official FFHQ file has
6048 rows; the committed SingleChannel.py only covers layers up to 128 px (5376 rows), and the
official SplitS treats the missing layers as zero relevance. We do the same: an fs3 that covers
whole leading conv layers is padded with zero rows (those channels never pass any threshold).
std may cover all style channels [S] or the conv channels only (expanded with 0 at toRGB).
"""

from __future__ import annotations

import numpy as np

from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.pack import (conv_mask, load_numbers, pack_file, pack_layout, read_pack_json, save_npy,
                                    update_pack_json)


def add_arguments(parser):
    parser.add_argument("--fs3", required=True, help="official fs3.npy [conv channels, embed dim]")
    parser.add_argument("--std", required=True, help="per-channel std of S: [all style channels] or [conv channels]")
    parser.add_argument("--out", required=True, help="model pack folder (with pack.json from convert-generator)")


def run(args):
    info = import_directions(args.out, load_numbers(args.fs3, "fs3"), load_numbers(args.std, "std"))
    print(f"directions: fs3 {info['rows']}x{info['embedDim']} ({info['padded']} zero rows added), "
          f"std over {info['stdOver']} channels -> {pack_file(args.out, 'fs3').parent}")


def conv_layer_ends(layout):
    """Cumulative conv-channel counts at the end of each conv layer (valid fs3 row counts)."""
    ends, total = [], 0
    for layer in layout:
        if not layer["toRgb"]:
            total += int(layer["channels"])
            ends.append(total)
    return ends


def check_fs3(fs3, layout, embed_dim=None):
    """Validates fs3 against the layout; returns it float32 with [convChannels] rows."""
    ends = conv_layer_ends(layout)
    conv = ends[-1]
    if fs3.ndim != 2:
        raise ToolkitError(f"fs3 must be 2-D [conv channels, embed dim], got shape {list(fs3.shape)}")
    rows, dim = fs3.shape
    if embed_dim is not None and dim != embed_dim:
        raise ToolkitError(f"fs3 has {dim} columns but the pack's CLIP embedDim is {embed_dim}")
    if rows not in ends:
        raise ToolkitError(
            f"fs3 has {rows} rows but the pack has {conv} conv style channels "
            f"(a partial fs3 must end at a conv layer boundary: {', '.join(map(str, ends))})")
    out = np.zeros((conv, dim), np.float32)
    out[:rows] = fs3
    return out


def expand_std(std, layout):
    """Returns std over all style channels [S]; conv-only input gets 0 at toRGB channels."""
    mask = conv_mask(layout)
    if std.ndim != 1:
        raise ToolkitError(f"std must be 1-D, got shape {list(std.shape)}")
    if np.any(std < 0):
        raise ToolkitError("std has negative entries")
    if std.shape[0] == mask.size:
        return std.astype(np.float32)
    if std.shape[0] == int(mask.sum()):
        full = np.zeros(mask.size, np.float32)
        full[mask] = std
        return full
    raise ToolkitError(
        f"std has {std.shape[0]} entries but the pack has {mask.size} style channels "
        f"({int(mask.sum())} conv channels)")


def import_directions(pack_dir, fs3, std):
    meta = read_pack_json(pack_dir)
    layout = pack_layout(meta)
    embed_dim = (meta.get("clip") or {}).get("embedDim")
    full_fs3 = check_fs3(fs3, layout, embed_dim)
    full_std = expand_std(std, layout)
    save_npy(pack_file(pack_dir, "fs3"), full_fs3)
    save_npy(pack_file(pack_dir, "std"), full_std)
    update_pack_json(pack_dir, directions={"source": "imported"})
    return {"rows": fs3.shape[0], "embedDim": fs3.shape[1], "padded": full_fs3.shape[0] - fs3.shape[0],
            "stdOver": std.shape[0]}
