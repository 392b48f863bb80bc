"""Writing generator outputs as files, with no imaging library: `.png` (8-bit RGB, the engine's
mapping (x + 1)·127.5, clamped, rounded; a batch becomes a horizontal strip) or `.npy` (the raw
float32 [N, 3, H, W] output, unclamped), like the engine's `--out`."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.pack import save_npy

IMAGE_SUFFIXES = (".png", ".npy")


def check_image_path(path) -> None:
    if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        raise ToolkitError(f"cannot write {path}: use a .png or .npy file name")


def to_uint8_strip(images: np.ndarray) -> np.ndarray:
    """[N, 3, H, W] in about [-1, 1] → uint8 [H, N·W, 3]."""
    pixels = np.clip(np.rint((np.asarray(images, np.float64) + 1) * 127.5), 0, 255).astype(np.uint8)
    return np.concatenate(list(pixels.transpose(0, 2, 3, 1)), axis=1)


def png_bytes(rgb: np.ndarray) -> bytes:
    """A PNG file of a uint8 [H, W, 3] array (colour type 2, no filtering)."""
    h, w, _ = rgb.shape
    rows = b"".join(b"\x00" + np.ascontiguousarray(rgb[y]).tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")


def save_image(path, images) -> None:
    """images: float [N, 3, H, W] (numpy or a CPU tensor)."""
    check_image_path(path)
    images = np.asarray(images, dtype=np.float32)
    if Path(path).suffix.lower() == ".npy":
        save_npy(path, images)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(png_bytes(to_uint8_strip(images)))
