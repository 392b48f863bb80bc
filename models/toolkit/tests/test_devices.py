"""`devices`: what --device and --precision accept, and that a precision choice does not outlive its run."""

import pytest
import torch

from styleclip_toolkit.devices import PRECISIONS, pick_device, precision
from styleclip_toolkit.errors import ToolkitError


def test_pick_device_names_and_errors(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ToolkitError, match=r"^unknown --device 'gpu': use cpu, cuda or cuda:N$"):
        pick_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None) == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ToolkitError, match=r"^--device cuda: this PyTorch has no usable CUDA GPU$"):
            pick_device(name)


def test_precision_needs_cuda_for_tf32_and_restores_the_flags():
    assert PRECISIONS == ("fp32", "tf32")
    with pytest.raises(ToolkitError, match=r"^--precision tf32 needs a CUDA device$"):
        with precision("tf32", torch.device("cpu")):
            pass
    flags = lambda: (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)  # noqa: E731
    before = flags()
    with pytest.raises(RuntimeError, match="inside"):
        with precision("fp32", torch.device("cpu")):
            assert flags() == (False, False)
            raise RuntimeError("inside")
    assert flags() == before
