"""The one exception type for user mistakes; the CLI prints its message on one line and exits non-zero."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class ClipCacheError(Exception):
    """A user-facing error: bad path, unknown name, mismatched cache, corrupt image.

    The message must name the culprit (the file, key or value at fault).
    """


class NotApplicable(ClipCacheError):
    """A run that cannot exist by design (late visual prompts on a ResNet): a sweep reports it, not as a failure."""


class Interrupted(ClipCacheError):
    """The user stopped a command (Ctrl-C, SIGTERM); the message says what was saved, what was lost, and that the
    same command resumes. Printed as one line, exit status 130."""


INTERRUPTED_EXIT = 130  # the shell's code for a program ended by SIGINT


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM (a scheduler's or `kill`'s stop) raises KeyboardInterrupt as Ctrl-C does, so that both
    end in the same one-line account; the previous handler comes back on exit (main thread only, else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    """Run an entry point's action: 0, or 1 with the ClipCacheError printed on one line of stderr (130 with the
    account of an interrupted one)."""
    from pipeline.runlog import console_logging

    console_logging()
    try:
        with terminate_as_interrupt():
            action()
    except Interrupted as exc:
        print(f"clipcache: {exc}", file=sys.stderr)
        return INTERRUPTED_EXIT
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
