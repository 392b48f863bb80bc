"""`npm run toolkit -- <subcommand> …`: one argparse subparser per subcommand.

Each subcommand lives in a module exposing `add_arguments(parser)` and `run(args)`; only the chosen
one is imported (so a broken or missing module affects only its own subcommand). User errors
(ToolkitError, missing files) print one line on stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from styleclip_toolkit.errors import ToolkitError

# subcommand → (module, help)
COMMANDS = {
    "convert-generator": ("convert_generator", "rosinality StyleGAN2 checkpoint (g_ema) -> pack generator"),
    "convert-clip": ("convert_clip", "OpenAI CLIP (state_dict or TorchScript) + BPE vocab -> pack clip/"),
    "convert-mapper": ("mapper", "official StyleCLIP mapper checkpoint -> mappers/<slug>.onnx"),
    "convert-encoder": ("convert_encoder", "official e4e checkpoint -> encoder/encoder.onnx (encoder only)"),
    "import-directions": ("import_directions", "official precomputed fs3 (+ std) -> pack directions/"),
    "stats": ("stats", "per-channel mean/std of S -> directions/s_mean.npy, s_std.npy"),
    "directions": ("directions", "compute fs3 channel relevance for any generator"),
    "tiny-pack": ("tiny_pack", "build the small deterministic test pack"),
    "random-pack": ("random_pack", "full-size random-weight pack for benchmarks (never commit it)"),
    "parity-fixtures": ("parity", "write reference inputs/outputs for the TypeScript parity tests"),
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
        if name != selected:
            continue
        try:
            module = importlib.import_module(f"styleclip_toolkit.{module_name}")
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
        except Exception as e:  # a module still being written must not break the other subcommands
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            p.set_defaults(_unavailable=f"{name} is not available: {type(e).__name__}: {e}")
    return parser


def main(argv: list | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    if args.command is None:
        build_parser([]).print_help(sys.stderr)
        return 2
    if getattr(args, "_unavailable", None):
        print(f"error: {args._unavailable}", file=sys.stderr)
        return 1
    try:
        result = args._run(args)
    except ToolkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        print(f"error: {e.strerror or e}: {e.filename}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0
