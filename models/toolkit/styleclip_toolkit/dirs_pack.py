"""Small helpers shared by directions, import-directions and parity-fixtures."""

import numpy as np

from .errors import ToolkitError
from .pack import load_npy


def conv_mask(layout):
    """Boolean [S]: True for conv (non-toRGB) style channels, in layout order."""
    return np.concatenate([np.full(int(l["channels"]), not l["toRgb"]) for l in layout])


def load_numbers(path, what):
    """A numeric, finite .npy array (never unpickled), or a one-line ToolkitError."""
    arr = load_npy(path, what)
    if not isinstance(arr, np.ndarray):
        raise ToolkitError(f"{what} {path} must be a single .npy array, not an .npz archive")
    if arr.dtype.kind not in "fiu":
        raise ToolkitError(f"{what} {path} must hold numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ToolkitError(f"{what} {path} contains NaN or infinity")
    return arr


def pack_layout(meta):
    """pack.json styleLayout, or a one-line ToolkitError."""
    layout = meta.get("styleLayout")
    if not isinstance(layout, list) or not layout:
        raise ToolkitError("pack.json has no styleLayout (run convert-generator first)")
    return layout


def parse_channels(text):
    """A width table from "4:24,8:20,16:12" (resolution:width)."""
    try:
        return {int(r): int(c) for r, c in (part.split(":") for part in text.split(","))}
    except ValueError:
        raise ToolkitError(f"--channels must look like 4:24,8:20,16:12 (resolution:width), got {text!r}") from None
