"""Model pack files: pack.json, .npy tensors, ONNX initializers (see models/README.md)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from styleclip_toolkit.errors import ToolkitError

# Default file of each `files` key (models/README.md).
DEFAULT_FILES = {
    "mapping": "generator/mapping.onnx",
    "toStyles": "generator/to_styles.onnx",
    "synthesis": "generator/synthesis.onnx",
    "wAvg": "generator/w_avg.npy",
    "textEncoder": "clip/text_encoder.onnx",
    "imageEncoder": "clip/image_encoder.onnx",
    "tokenizer": "clip/tokenizer.json",
    "fs3": "directions/fs3.npy",
    "std": "directions/s_std.npy",
    "mean": "directions/s_mean.npy",
}


def read_pack_json(pack_dir) -> dict:
    path = Path(pack_dir) / "pack.json"
    if not path.is_file():
        raise ToolkitError(f"not a model pack: {path} is missing")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ToolkitError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("format") != "styleclip-pack":
        raise ToolkitError(f"{path} is not a styleclip-pack pack.json")
    return data


def pack_layout(meta: dict) -> list:
    """pack.json styleLayout, or a one-line ToolkitError."""
    layout = meta.get("styleLayout")
    if not isinstance(layout, list) or not layout:
        raise ToolkitError("pack.json has no styleLayout (run convert-generator first)")
    return layout


def read_or_new_pack_json(pack_dir) -> dict:
    """pack.json if the folder has one, else the skeleton of a new pack."""
    if (Path(pack_dir) / "pack.json").is_file():
        return read_pack_json(pack_dir)
    return {"format": "styleclip-pack", "version": 1}


def atomic_write(path, write) -> None:
    """write(tmp) into a temporary file beside `path`, then rename it over `path`, so readers see the
    old file or the whole new one, never a half-written one. The temporary file is removed on any
    failure; an OSError names `path` (not the temporary file), for the CLI's one-line message."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if e.errno is not None and e.filename in (None, str(tmp), tmp):
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def write_pack_json(pack_dir, data: dict) -> None:
    """pack.json, written atomically (atomic_write)."""
    text = json.dumps(data, indent=2) + "\n"
    atomic_write(Path(pack_dir) / "pack.json", lambda tmp: tmp.write_text(text))


def update_pack_json(pack_dir, **fields) -> dict:
    data = read_pack_json(pack_dir)
    data.update(fields)
    write_pack_json(pack_dir, data)
    return data


def pack_file(pack_dir, key: str) -> Path:
    """Path of a pack file, honouring pack.json's optional `files` overrides."""
    files = {}
    path = Path(pack_dir) / "pack.json"
    if path.is_file():
        files = read_pack_json(pack_dir).get("files") or {}
    return Path(pack_dir) / files.get(key, DEFAULT_FILES[key])


def save_npy(path, array) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(np.asarray(array, dtype="<f4")))


def load_npy(path, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise ToolkitError(f"{what} not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ToolkitError(f"cannot read {what} {path}: {e}") from None


def load_numbers(path, what: str) -> np.ndarray:
    """A numeric, finite .npy array (never unpickled), or a one-line ToolkitError."""
    arr = load_npy(path, what)
    if not isinstance(arr, np.ndarray):
        raise ToolkitError(f"{what} {path} must be a single .npy array, not an .npz archive")
    if arr.dtype.kind not in "fiu":
        raise ToolkitError(f"{what} {path} must hold numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ToolkitError(f"{what} {path} contains NaN or infinity")
    return arr


def onnx_initializers(path) -> dict:
    """name → array for every initializer of an ONNX graph."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf errors carry no useful type
        raise ToolkitError(f"cannot read ONNX graph {path}: {e}") from None
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def slugify(text: str) -> str:
    """lowercase; every run of non-alphanumerics becomes one '_' (trimmed at the ends)."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not slug:
        raise ToolkitError(f"cannot make a file name from {text!r}: it has no letters or digits")
    return slug


def style_channel_count(layout: list) -> int:
    return sum(e["channels"] for e in layout)


def conv_channel_count(layout: list) -> int:
    return sum(e["channels"] for e in layout if not e["toRgb"])


def conv_mask(layout: list) -> np.ndarray:
    """Boolean [S]: True for conv (non-toRGB) style channels, in layout order."""
    return np.concatenate([np.full(int(l["channels"]), not l["toRgb"]) for l in layout])


def parse_channels(text: str) -> dict:
    """A width table from "4:24,8:20,16:12" (resolution:width)."""
    try:
        return {int(r): int(c) for r, c in (part.split(":") for part in text.split(","))}
    except ValueError:
        raise ToolkitError(f"--channels must look like 4:24,8:20,16:12 (resolution:width), got {text!r}") from None
