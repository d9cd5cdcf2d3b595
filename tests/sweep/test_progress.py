"""Progress lines: encode without a terminal, the training loop per epoch, the sweep's done/total and ETA."""

from __future__ import annotations

import logging

from pipeline.encode.progress import ProgressLines
from pipeline.sweep.plan import format_seconds


def test_encode_progress_lines_are_throttled_and_end_with_the_total(caplog) -> None:
    caplog.set_level(logging.INFO, logger="pipeline")
    lines = ProgressLines("k4-s1/train", total=10, every=3600.0, enabled=True)
    for _ in range(10):
        lines.update(1)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and messages[0].startswith("k4-s1/train: 10/10 images, ")
    quiet = ProgressLines("x", total=2, every=0.0, enabled=False)
    quiet.update(2)
    assert len(caplog.records) == 1


def test_every_update_logs_when_the_interval_is_zero(caplog) -> None:
    caplog.set_level(logging.INFO, logger="pipeline")
    lines = ProgressLines("test", total=4, every=0.0, enabled=True)
    lines.update(1)
    lines.update(3)
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["test: 1/4 images", "test: 4/4 images"]


def test_eta_format() -> None:
    assert [format_seconds(s) for s in (0.4, 6, 65, 3723)] == ["0s", "6s", "1m05s", "1h02m03s"]
