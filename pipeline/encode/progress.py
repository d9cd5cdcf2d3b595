"""Progress of an encode where no terminal shows tqdm's bar (logs, DVC, batch jobs): a line every `every` seconds."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)


class ProgressLines:
    """Logs 'name: done/total images, rate img/s, ETA' at most every `every` seconds, and once at the end."""

    def __init__(self, name: str, total: int, every: float = 30.0, enabled: bool | None = None) -> None:
        self.name, self.total, self.every = name, total, every
        self.enabled = not sys.stderr.isatty() if enabled is None else enabled
        self.done = 0
        self.started = self.last = time.perf_counter()

    def update(self, images: int) -> None:
        self.done += images
        now = time.perf_counter()
        if self.enabled and (now - self.last >= self.every or self.done >= self.total):
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            eta = (self.total - self.done) / rate if rate else 0.0
            log.info("%s: %d/%d images, %.1f img/s, ETA %.0f s", self.name, self.done, self.total, rate, eta)
