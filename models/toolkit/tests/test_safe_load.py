"""Loading checkpoints never runs pickled code."""

import argparse
import os
import pickle

import pytest
import torch

from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.safe_load import NamespaceStandIn, safe_torch_load


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_torch_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {"w": torch.zeros(2)}, "payload": Evil(marker)}, path)
    with pytest.raises(ToolkitError, match=r"refusing to load .*evil\.pt: it references (posix|os|nt)\.system"):
        safe_torch_load(path)
    assert not marker.exists()


def test_malicious_plain_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Evil(marker), protocol=2))
    with pytest.raises(ToolkitError, match="refusing|cannot read"):
        safe_torch_load(path)
    assert not marker.exists()


def test_rosinality_train_checkpoint_with_args_loads(tmp_path):
    path = tmp_path / "train.pt"
    state = {"g_ema": {"style.1.weight": torch.randn(4, 4)}, "args": argparse.Namespace(size=256, lr=0.002),
             "latent_avg": torch.nn.Parameter(torch.ones(4)), "ada_aug_p": 0.1}
    torch.save(state, path)
    ckpt = safe_torch_load(path)
    assert torch.equal(ckpt["g_ema"]["style.1.weight"], state["g_ema"]["style.1.weight"])
    # torch builds that honour pickle_module give the stand-in, others the (data-only) Namespace
    assert isinstance(ckpt["args"], (NamespaceStandIn, argparse.Namespace)) and ckpt["args"].size == 256
    assert torch.equal(ckpt["latent_avg"], torch.ones(4))


def test_bad_files_give_one_line_errors(tmp_path):
    with pytest.raises(ToolkitError, match="checkpoint not found"):
        safe_torch_load(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ToolkitError, match="cannot read checkpoint") as e:
        safe_torch_load(junk)
    assert "\n" not in str(e.value)


def test_numpy_opts_and_legacy_format_load(tmp_path):
    import numpy as np

    torch.save({"opts": {"lr": np.float64(0.5), "ids": np.arange(3)}, "w": torch.ones(2, dtype=torch.float16)},
               tmp_path / "np.pt")
    ckpt = safe_torch_load(tmp_path / "np.pt")
    assert ckpt["opts"]["lr"] == 0.5 and list(ckpt["opts"]["ids"]) == [0, 1, 2] and ckpt["w"].dtype == torch.float16
    torch.save({"x": torch.arange(4.0)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert torch.equal(safe_torch_load(tmp_path / "legacy.pt")["x"], torch.arange(4.0))


def test_malicious_legacy_format_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"x": torch.ones(1), "p": Evil(marker)}, tmp_path / "evil.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(ToolkitError, match="refusing to load"):
        safe_torch_load(tmp_path / "evil.pt")
    assert not marker.exists()


def _legacy_header(protocol):
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

    return pickle.dumps(MAGIC_NUMBER, protocol=protocol) + pickle.dumps(PROTOCOL_VERSION, protocol=protocol)


def test_legacy_pickles_in_old_protocols_are_checked(tmp_path):
    # Protocol-0 pickles don't start with \x80: each of torch's five legacy pickles is checked anyway.
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(_legacy_header(0) + pickle.dumps({}, protocol=0) + pickle.dumps(Evil(marker), protocol=0))
    with pytest.raises(ToolkitError, match="refusing to load"):
        safe_torch_load(path)
    assert not marker.exists()


def test_legacy_pickles_with_a_zip_appended_are_checked(tmp_path):
    # zipfile.is_zipfile finds a zip at the end; torch.load looks at the first bytes and unpickles.
    import io
    import zipfile

    marker = tmp_path / "pwned"
    tail = io.BytesIO()
    with zipfile.ZipFile(tail, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
    path = tmp_path / "evil.pt"
    path.write_bytes(_legacy_header(2) + pickle.dumps({}, protocol=2) + pickle.dumps(Evil(marker), protocol=2)
                     + tail.getvalue())
    with pytest.raises(ToolkitError, match="refusing to load"):
        safe_torch_load(path)
    assert not marker.exists()


def _rewrite_zip(src, dst, data_pkl):
    """Copies a torch zip checkpoint, replacing its data.pkl entry by data_pkl(name) → [(name, bytes)]."""
    import warnings
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        for name in zin.namelist():
            for new_name, data in (data_pkl(name, zin.read(name)) if name.endswith("/data.pkl") else [(name, zin.read(name))]):
                zout.writestr(new_name, data)


def test_zip_pickles_are_found_whatever_their_case(tmp_path):
    # torch finds a zip record by name case-insensitively: "archive/DATA.PKL" is loaded as data.pkl.
    marker = tmp_path / "pwned"
    torch.save({"x": torch.ones(1)}, tmp_path / "good.pt")
    _rewrite_zip(tmp_path / "good.pt", tmp_path / "evil.pt",
                 lambda name, _: [(name[: -len("data.pkl")] + "DATA.PKL", pickle.dumps(Evil(marker), protocol=2))])
    with pytest.raises(ToolkitError, match="refusing to load"):
        safe_torch_load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_every_zip_entry_of_a_repeated_name_is_checked(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"x": torch.ones(1)}, tmp_path / "good.pt")
    for evil_first in (True, False):
        entries = lambda name, data: [(name, pickle.dumps(Evil(marker), protocol=2)), (name, data)]
        _rewrite_zip(tmp_path / "good.pt", tmp_path / "evil.pt",
                     entries if evil_first else (lambda name, data: entries(name, data)[::-1]))
        with pytest.raises(ToolkitError, match="refusing to load"):
            safe_torch_load(tmp_path / "evil.pt")
    assert not marker.exists()
