"""Shared test helpers: run ONNX graphs in onnxruntime-node (Python has no onnxruntime here) and
small random checkpoints in the official layouts."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from styleclip_toolkit.convert_generator import convert_generator
from styleclip_toolkit.stylegan2 import build_random_checkpoint

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

# Small but not uniform widths (the toRGB/conv widths differ across resolutions).
SMALL_G = {"size": 64, "style_dim": 16, "n_mlp": 2, "channels": {4: 16, 8: 12, 16: 8, 32: 8, 64: 4}}


def run_ort(model, workdir, **inputs):
    """Runs `model` in onnxruntime-node on numpy inputs; returns {output name: array}."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    args = []
    for name, array in inputs.items():
        path = workdir / f"in_{name}.npy"
        np.save(path, np.ascontiguousarray(array))
        args.append(f"{name}={path}")
    out = workdir / "ort_out"
    out.mkdir(exist_ok=True)
    subprocess.run(["node", str(HERE / "ort_run.mjs"), str(model), str(out), *args], check=True, cwd=REPO)
    return {p.stem: np.load(p) for p in out.glob("*.npy")}


@pytest.fixture(scope="session")
def small_checkpoint():
    return build_random_checkpoint(**SMALL_G, seed=1)


@pytest.fixture(scope="session")
def small_checkpoint_path(small_checkpoint, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "stylegan2-small.pt"
    torch.save(small_checkpoint, path)
    return path


@pytest.fixture(scope="session")
def small_pack(small_checkpoint_path, tmp_path_factory):
    """A pack with only the generator converted (treat as read-only; copy it to modify)."""
    pack = tmp_path_factory.mktemp("pack") / "small"
    convert_generator(small_checkpoint_path, pack)
    return pack


def interrupt_at_first_step(args, timeout=60, close_pipe=False):
    """Runs `python -m styleclip_toolkit ARGS --progress-jsonl` and, at the first step event, sends SIGTERM
    (the supervisor stops it) or, with `close_pipe`, closes its stdout (the supervisor was killed). Returns
    (exit code, stderr, every JSON event read)."""
    import json
    import os
    import signal
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "styleclip_toolkit", *args, "--progress-jsonl"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "models/toolkit")})
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["event"] == "step":
            break
    if close_pipe:
        proc.stdout.close()
        err = proc.stderr.read()
        proc.wait(timeout=timeout)
        return proc.returncode, err, events
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=timeout)
    events += [json.loads(line) for line in rest.splitlines()]
    return proc.returncode, err, events


def one_line_error(capsys, argv):
    """Runs the toolkit CLI in-process, expecting a user error: exit 1 and one `error: …` line on stderr."""
    from styleclip_toolkit.cli import main

    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    return err
