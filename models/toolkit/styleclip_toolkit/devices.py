"""Device and precision selection for the toolkit's torch runs (directions, optimize, train-mapper and their
benchmarks): one place decides what --device and --precision accept and what they do."""

from __future__ import annotations

import contextlib

import torch

from styleclip_toolkit.errors import ToolkitError

PRECISIONS = ("fp32", "tf32")


def pick_device(name):
    """The torch.device for a --device value (cpu, cuda, cuda:N); None: cuda when available, else cpu."""
    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise ToolkitError(f"unknown --device {name!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ToolkitError("--device cuda: this PyTorch has no usable CUDA GPU")
    return device


@contextlib.contextmanager
def precision(mode, device):
    """fp32, or on CUDA TF32 tensor cores for convs and matmuls (about 2x faster at 1024 px; fs3
    rows within a few 1e-3 of fp32 on average). bf16 was measured too far off to offer.
    The global torch flags are restored on exit, so one run's choice does not leak into the next."""
    if mode != "fp32" and device.type != "cuda":
        raise ToolkitError(f"--precision {mode} needs a CUDA device")
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
