"""The one exception type for user mistakes; the CLI prints its message on one line and exits non-zero."""


class ClipCacheError(Exception):
    """A user-facing error: bad path, unknown name, mismatched cache, corrupt image.

    The message must name the culprit (the file, key or value at fault).
    """
