"""Command-line options shared by the long gradient runs (optimize, train-mapper): device, precision and progress."""

from __future__ import annotations


def add_run_arguments(parser, log_every: int, log_note: str, events: str) -> None:
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--precision", choices=("fp32", "tf32"), default="fp32", help="tf32: CUDA tensor cores")
    parser.add_argument("--log-every", type=int, default=log_every, help=f"progress every N steps ({log_note})")
    parser.add_argument("--progress-jsonl", action="store_true",
                        help=f"machine-readable progress: one JSON object a line on stdout (events {events}) "
                             "instead of text on stderr")
