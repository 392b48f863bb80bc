"""StyleCLIP toolkit: official PyTorch checkpoints -> model packs (ONNX graphs + .npy tensors)."""

from __future__ import annotations

__version__ = "0.1.0"
