"""Pack building steps shared by tiny-pack and random-pack: clear the folder, add mappers, finish pack.json."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import torch

from styleclip_toolkit.convert_generator import DEFAULTS
from styleclip_toolkit.convert_mapper import build_random_mapper_checkpoint, convert_mapper
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.pack import read_pack_json, write_pack_json

PACK_PARTS = ("pack.json", "generator", "clip", "directions", "mappers", "identity", "encoder")


def toolkit_hash() -> str:
    """sha256 over the toolkit's .py sources (paths + contents), recorded as pack.json toolkitHash."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def clear_pack(out_dir) -> None:
    """Removes what a previous build wrote (only the pack's own files and folders). A non-empty
    folder that is not a pack is left alone: nothing of the user's gets deleted."""
    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "pack.json").is_file():
        raise ToolkitError(f"{out_dir} is not empty and holds no pack.json: choose an empty or new folder")
    for part in PACK_PARTS:
        path = Path(out_dir) / part
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def add_mappers(pack_dir, work, mappers, dim, decoder_state_dict) -> None:
    for i, (description, no_fine) in enumerate(mappers):
        path = Path(work) / f"{description.replace(' ', '_')}.pt"
        torch.save(build_random_mapper_checkpoint(description, no_fine, dim=dim, seed=10 + i,
                                                  decoder_state_dict=decoder_state_dict), path)
        convert_mapper(path, pack_dir)


def finish_pack(out_dir, untrained: bool, source: dict) -> dict:
    meta = read_pack_json(out_dir)
    meta.update({"untrained": untrained, "defaults": dict(DEFAULTS), "source": source, "toolkitHash": toolkit_hash()})
    write_pack_json(out_dir, meta)
    return meta
