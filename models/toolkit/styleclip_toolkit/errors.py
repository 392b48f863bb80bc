"""The one exception type for user errors (bad files, formats, packs)."""

from __future__ import annotations


class ToolkitError(Exception):
    """A user error: the CLI prints its message as one line on stderr and exits 1."""


def changed_settings(saved: dict, now: dict, where: str, files_changed: str) -> str:
    """Why saved work (a partial, a checkpoint) cannot be resumed: each setting that differs, in one line."""
    return ", ".join(f"{k} {saved.get(k)!r} in the {where}, {now.get(k)!r} now" if k != "files" else files_changed
                     for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k))
