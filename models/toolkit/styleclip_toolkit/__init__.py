"""StyleCLIP toolkit: official PyTorch checkpoints -> model packs (ONNX graphs + .npy tensors)."""

__version__ = "0.1.0"
