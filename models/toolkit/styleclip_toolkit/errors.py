"""The one exception type for user errors (bad files, formats, packs)."""

from __future__ import annotations


class ToolkitError(Exception):
    """A user error: the CLI prints its message as one line on stderr and exits 1."""
