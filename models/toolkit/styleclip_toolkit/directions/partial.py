"""Checkpoints of a running `directions` (fs3) computation, so an interrupted run resumes.

After each finished conv layer the pack gets (plain tensors and JSON, never pickles):
  directions/fs3.partial.npy   float32 [convChannels, embedDim]; rows of unfinished layers are 0
  directions/fs3.partial.json  {"format", "settings": {...}, "layers": [done layout indices], "rowsDone", "rows"}
settings hold the options that change the numbers (images, seed, truncation, batch, precision,
sigmas) and a sha256 of the generator, w_avg, stats and CLIP files, so a partial from other
settings or other files is refused instead of being mixed in. Both files go on success.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from styleclip_toolkit.errors import ToolkitError, changed_settings
from styleclip_toolkit.pack import pack_file

FORMAT = "styleclip-fs3-partial"
FILES = ("mapping", "toStyles", "synthesis", "wAvg", "mean", "std")


def partial_paths(pack_dir):
    fs3 = pack_file(pack_dir, "fs3")
    return fs3.with_name("fs3.partial.npy"), fs3.with_name("fs3.partial.json")


def fingerprint(pack_dir, clip=None):
    """sha256 over the pack files the numbers depend on, plus CLIP: the pack's image encoder, or
    the weights of the CLIP passed in (`--clip`)."""
    h = hashlib.sha256()
    keys = FILES + (() if clip is not None else ("imageEncoder",))
    for key in keys:
        path = pack_file(pack_dir, key)
        h.update(f"{key}\0".encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    if clip is not None:
        for name, tensor in sorted(clip.state_dict().items()):
            h.update(f"clip.{name}\0".encode())
            h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_partial(pack_dir, settings, layout):
    """{layout index: float32 rows} of the layers a matching partial has finished; {} without one.
    A partial from other settings or files is a ToolkitError (resume with the same options, or --restart)."""
    npy, meta_path = partial_paths(pack_dir)
    if not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_text())
        saved, layers = meta["settings"], [int(j) for j in meta["layers"]]
        if meta.get("format") != FORMAT:
            raise ValueError("not an fs3 partial")
    except (ValueError, KeyError, TypeError) as e:
        raise ToolkitError(f"cannot read {meta_path} ({e}): pass --restart to discard it") from None
    if saved != settings:
        diff = changed_settings(saved, settings, "partial", "the generator/stats/CLIP files have changed")
        raise ToolkitError(f"{meta_path} was computed with other settings ({diff}): rerun with the same "
                           f"options to resume it, or pass --restart to discard it")
    if not layers:
        return {}
    try:
        rows = np.load(npy, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ToolkitError(f"cannot read {npy} ({e}): pass --restart to discard it") from None
    conv = [j for j, e in enumerate(layout) if not e["toRgb"]]
    offsets = dict(zip(conv, np.cumsum([0] + [layout[j]["channels"] for j in conv]).tolist()))
    if (not isinstance(rows, np.ndarray) or rows.dtype != np.float32 or rows.ndim != 2
            or rows.shape[0] != offsets[conv[-1]] + layout[conv[-1]]["channels"] or not set(layers) <= set(conv)):
        raise ToolkitError(f"{npy} does not match the pack's style layout: pass --restart to discard it")
    return {j: rows[offsets[j]:offsets[j] + layout[j]["channels"]].copy() for j in layers}


class PartialWriter:
    """on_layer callback for `channel_relevance`: rewrites both files after every finished layer."""

    def __init__(self, pack_dir, settings, layout, done):
        self.npy, self.meta = partial_paths(pack_dir)
        self.settings, self.layout, self.done = settings, layout, dict(done)
        self.conv = [j for j, e in enumerate(layout) if not e["toRgb"]]

    def __call__(self, j, rows):
        self.done[j] = rows
        dim = rows.shape[1]
        full = np.concatenate([self.done.get(k, np.zeros((self.layout[k]["channels"], dim), np.float32))
                               for k in self.conv]).astype("<f4")
        layers = sorted(self.done)
        meta = {"format": FORMAT, "settings": self.settings, "layers": layers,
                "rowsDone": sum(self.layout[k]["channels"] for k in layers),
                "rows": sum(self.layout[k]["channels"] for k in self.conv)}
        self.npy.parent.mkdir(parents=True, exist_ok=True)
        # npy first: until the json names a layer its rows are never read, so a crash between is harmless
        _replace(self.npy, lambda f: np.save(f, np.ascontiguousarray(full)))
        _replace(self.meta, lambda f: f.write(json.dumps(meta, indent=1).encode()))


def remove_partial(pack_dir):
    for path in partial_paths(pack_dir):
        path.unlink(missing_ok=True)


def _replace(path, write):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
