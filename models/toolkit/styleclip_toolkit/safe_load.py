"""Checkpoint loading that never runs arbitrary pickled code.

Every pickle in the file is first dry-run through an Unpickler whose find_class only hands out an
allow-list (tensor rebuild functions, dtypes, storages, plain containers, numpy arrays, argparse
Namespace as a data-only stand-in), with those functions replaced by no-ops. Only a file that
passes is given to torch.load, which also gets the allow-listed unpickler as pickle_module.
(Debian's torch 1.13 ignores pickle_module, and weights_only=True refuses Namespace on 1.13, so
the dry run is what guarantees safety on every version.)
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import io
import pickle
import zipfile
from pathlib import Path

import torch

from styleclip_toolkit.errors import ToolkitError


class NamespaceStandIn:
    """Takes the place of argparse.Namespace (rosinality train.py stores its `args`): data only."""

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __repr__(self):
        return f"NamespaceStandIn({self.__dict__!r})"


def _allowed() -> dict:
    allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("argparse", "Namespace"): NamespaceStandIn,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch", "Tensor"): torch.Tensor,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
        ("builtins", "complex"): complex,
        ("_codecs", "encode"): codecs.encode,  # protocol 2 spells bytes (numpy data) this way
    }
    import torch._utils as tu

    for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                 "_rebuild_parameter_with_state"):
        if hasattr(tu, name):
            allowed[("torch._utils", name)] = getattr(tu, name)
    import torch._tensor as tt

    if hasattr(tt, "_rebuild_from_type_v2"):
        allowed[("torch._tensor", "_rebuild_from_type_v2")] = tt._rebuild_from_type_v2
    for name in dir(torch):  # dtypes, and storage types (named inside tensors' persistent ids)
        if isinstance(getattr(torch, name, None), torch.dtype) or name.endswith("Storage"):
            allowed[("torch", name)] = getattr(torch, name)
    # numpy arrays and scalars inside `opts` dicts; these only build arrays.
    import numpy as np

    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None) or np.core.multiarray  # numpy 2 / 1
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    return allowed


_ALLOWED = _allowed()


class RefusedGlobal(pickle.UnpicklingError):
    pass


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        # protocol-2 pickles name Python 2 modules (__builtin__, copy_reg); map them as pickle does
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = _ALLOWED.get((module, name))
        if found is None:
            raise RefusedGlobal(f"{module}.{name}")
        return found


class _SafePickleModule:
    """The subset of the pickle module that torch.load uses."""

    Unpickler = _SafeUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return _SafeUnpickler(file, **kwargs).load()


class _Placeholder:
    """Stands in for every tensor/storage during the dry run; accepts whatever is done to it."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Placeholder()

    def __setstate__(self, state):
        pass


class _DryRunUnpickler(_SafeUnpickler):
    """Unpickles with every allowed function replaced by a no-op: it only proves that the pickle
    references nothing outside the allow-list (it never builds tensors)."""

    def find_class(self, module, name):
        found = super().find_class(module, name)
        return found if isinstance(found, type) and found is not torch.Tensor else _Placeholder()

    def persistent_load(self, pid):
        return _Placeholder()


def _check_pickles(data: bytes) -> None:
    """Dry-runs every pickle that torch.load could read from these bytes.

    The format is told apart exactly as torch.load does (its `_is_zipfile` looks at the first four
    bytes only; `zipfile.is_zipfile` also accepts a zip appended to a legacy pickle stream, which
    torch would then load as pickles). Zip: every entry named *.pkl, compared case-insensitively
    like torch's record lookup, duplicates included. Legacy: the five pickles torch reads in turn
    (magic, protocol, sys_info, the object, storage keys), whatever protocol each is written in.
    """
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if info.filename.lower().endswith(".pkl"):
                    _DryRunUnpickler(io.BytesIO(zf.read(info)), encoding="latin1").load()
        return
    f = io.BytesIO(data)
    for _ in range(5):
        if f.tell() >= len(data):  # a plain pickle file ends after one (torch.load refuses it anyway)
            return
        _DryRunUnpickler(f, encoding="latin1").load()


def is_torchscript_archive(path) -> bool:
    """TorchScript archives are zips holding code/ and constants.pkl (not plain pickled state)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("constants.pkl") for n in names)


def safe_torch_load(path):
    """torch.load(path) on CPU, after proving the file's pickles only reference allow-listed
    globals. (Some torch builds ignore torch.load's pickle_module, so the check is our own.)"""
    path = Path(path)
    if not path.is_file():
        raise ToolkitError(f"checkpoint not found: {path}")
    if is_torchscript_archive(path):
        raise ToolkitError(f"{path} is a TorchScript archive, not a checkpoint of tensors")
    data = path.read_bytes()  # checked and loaded from the same bytes: the file can't change in between
    try:
        _check_pickles(data)
        return torch.load(io.BytesIO(data), map_location="cpu", pickle_module=_SafePickleModule, weights_only=False)
    except RefusedGlobal as e:
        raise ToolkitError(
            f"refusing to load {path}: it references {e}, which is not allow-listed "
            "(a checkpoint should only hold tensors and plain containers)") from None
    except Exception as e:  # corrupt or foreign files: one line, no traceback
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ToolkitError(f"cannot read checkpoint {path}: {first}") from None
