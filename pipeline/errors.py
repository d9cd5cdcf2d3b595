"""The one exception type for user mistakes; the CLI prints its message on one line and exits non-zero."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable


class ClipCacheError(Exception):
    """A user-facing error: bad path, unknown name, mismatched cache, corrupt image.

    The message must name the culprit (the file, key or value at fault).
    """


class NotApplicable(ClipCacheError):
    """A run that cannot exist by design (late visual prompts on a ResNet): a sweep reports it, not as a failure."""


class NoSpace(ClipCacheError):
    """A write refused or failed for want of disk space. After a failed write the HDF5 library may still hold a file
    it could not flush, and the interpreter's teardown would crash inside it (a segfault): a program that stops on
    this error ends with `hard_exit` instead, its message printed."""


def hard_exit(code: int) -> None:
    """End the process now, after flushing the output, skipping the teardown that HDF5 cannot survive."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def file_error(exc: OSError) -> str | None:
    """The one line of an operating-system error about a named file (a folder that cannot be created, a file that
    cannot be written); None for an error that names no file (then it is a bug, and its traceback is kept)."""
    if exc.filename is None:
        return None
    return f"cannot use {str(exc.filename)!r}: {exc.strerror or type(exc).__name__}"


def exit_code(action: Callable[[], object]) -> int:
    """Run an entry point's action: 0, or 1 with the ClipCacheError printed on one line of stderr."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)
    try:
        action()
    except ClipCacheError as exc:
        print(f"clipcache: error: {exc}", file=sys.stderr)
        if isinstance(exc, NoSpace):
            hard_exit(1)
        return 1
    except OSError as exc:
        if file_error(exc) is None:
            raise
        print(f"clipcache: error: {file_error(exc)}", file=sys.stderr)
        return 1
    return 0
