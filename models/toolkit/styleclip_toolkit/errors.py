"""The one exception type for user errors (bad files, formats, packs)."""


class ToolkitError(Exception):
    """A user error: the CLI prints its message as one line on stderr and exits 1."""
