"""What the long gradient runs (optimize, train-mapper) share: their device, precision and progress options,
and the rule that a run stops once the supervisor that started it is gone."""

from __future__ import annotations

import os

from styleclip_toolkit.devices import PRECISIONS


def add_run_arguments(parser, log_every: int, log_note: str, events: str) -> None:
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="tf32: CUDA tensor cores")
    parser.add_argument("--log-every", type=int, default=log_every, help=f"progress every N steps ({log_note})")
    parser.add_argument("--progress-jsonl", action="store_true",
                        help=f"machine-readable progress: one JSON object a line on stdout (events {events}) "
                             "instead of text on stderr")


class SupervisorWatch:
    """Tells a run that its supervisor (the Node worker) is gone, so the run stops as on SIGTERM.

    A supervisor killed with SIGKILL does not take its children along, and its rerun would start the
    work again elsewhere, so the orphan must stop by itself. Gone means: the parent process changed
    (the run was reparented), or the pipe the progress goes to was closed (a write raised
    BrokenPipeError). Create it at the run's start; write every progress line through `write`."""

    def __init__(self):
        self.parent, self.closed = os.getppid(), False

    def gone(self) -> bool:
        return self.closed or os.getppid() != self.parent

    def write(self, line: str, stream) -> None:
        """print(line) to stream, flushed. A closed pipe marks the supervisor gone, quietly."""
        try:
            print(line, file=stream, flush=True)
        except BrokenPipeError:
            self.closed = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())  # later writes (and the exit's flush) must not fail
            os.close(devnull)
