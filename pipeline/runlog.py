"""Where log lines go: the console shows what a person follows (one line per run, progress, warnings); the detail of
each run (every epoch's loss and validation accuracy, what was selected, its scores) goes to the log file in its run
folder, and to the console too with --verbose. Torch-free.

Detail lines are logged to `DETAIL` ('pipeline.run'); the CLI keeps them off the console (`console_logging`), and
`run_log` writes them, with everything else the run's thread logs under 'pipeline', into the run's `run.log`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DETAIL = "pipeline.run"  # the logger of per-epoch and per-run detail lines
FORMAT = "%(levelname)s %(name)s: %(message)s"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def detail_log() -> logging.Logger:
    """The logger a head's epochs and a run's summary lines go to."""
    return logging.getLogger(DETAIL)


def console_logging(verbose: bool = False) -> None:
    """The console of a command: warnings of every library, the pipeline's INFO lines; a run's detail lines only with
    `verbose` (and then the pipeline's DEBUG lines too)."""
    logging.basicConfig(level=logging.WARNING, format=FORMAT)
    logging.getLogger("pipeline").setLevel(logging.DEBUG if verbose else logging.INFO)
    detail_log().propagate = verbose


@contextmanager
def run_log(path: Path) -> Iterator[None]:
    """While inside, every record this thread logs under 'pipeline' at INFO or above, the detail lines included, is
    appended to `path` (other threads' runs are filtered out; the console is left as it is)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    thread = threading.get_ident()
    handler.addFilter(lambda record: record.thread == thread)
    pipeline, detail = logging.getLogger("pipeline"), detail_log()
    levels = (pipeline.level, detail.level)
    if not pipeline.isEnabledFor(logging.INFO):  # a worker process: nothing configured its logging
        pipeline.setLevel(logging.INFO)
    targets = [pipeline] if detail.propagate else [pipeline, detail]  # each record reaches the file once
    for logger in targets:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in targets:
            logger.removeHandler(handler)
        handler.close()
        pipeline.setLevel(levels[0])
        detail.setLevel(levels[1])
