"""`npm run toolkit -- <subcommand> …`: one argparse subparser per subcommand.

Each subcommand lives in a module exposing `add_arguments(parser)` and `run(args)`; only the chosen
one is imported. A module that fails to import is a bug or a broken install: its traceback is shown.
User errors (ToolkitError, missing files, a full disk) print one line on stderr and exit 1; usage
errors exit 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from styleclip_toolkit.errors import ToolkitError

# subcommand → (module, help)
COMMANDS = {
    "convert-generator": ("convert_generator", "rosinality StyleGAN2 checkpoint (g_ema) -> pack generator"),
    "convert-clip": ("convert_clip", "OpenAI CLIP (state_dict or TorchScript) + BPE vocab -> pack clip/"),
    "convert-mapper": ("convert_mapper", "official StyleCLIP mapper checkpoint -> mappers/<slug>.onnx"),
    "convert-encoder": ("convert_encoder", "official e4e checkpoint -> encoder/encoder.onnx (encoder only)"),
    "import-directions": ("import_directions", "official precomputed fs3 (+ std) -> pack directions/"),
    "stats": ("stats", "per-channel mean/std of S -> directions/s_mean.npy, s_std.npy"),
    "directions": ("directions", "compute fs3 channel relevance for any generator"),
    "tiny-pack": ("tiny_pack", "build the small deterministic test pack"),
    "random-pack": ("random_pack", "full-size random-weight pack for benchmarks (never commit it)"),
    "parity-fixtures": ("parity", "write reference inputs/outputs for the TypeScript parity tests"),
    "convert-identity": ("convert_identity", "ArcFace IR-SE-50 (model_ir_se50.pth) -> pack identity/ for the ID loss"),
    "optimize": ("optimize", "StyleCLIP latent optimization of W+ for a prompt (official loop)"),
    "train-mapper": ("train_mapper", "StyleCLIP latent mapper training for a prompt (official coach) -> mappers/<slug>.onnx"),
}


def _selected(argv: list) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npm run toolkit --",
                                     description="StyleCLIP toolkit: official checkpoints -> model packs.")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    selected = _selected(argv)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            module = importlib.import_module(f"styleclip_toolkit.{module_name}")
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


def main(argv: list | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    if args.command is None:
        build_parser([]).print_help(sys.stderr)
        return 2
    try:
        result = args._run(args)
    except ToolkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        print(f"error: {e.strerror or e}: {e.filename}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" while writing {e.filename}" if e.filename else ""
        print(f"error: no space left on device{where}: free some space and run again", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0
