"""Helpers of the engine tests: bounded collection of results, jobs and their expected values."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from pipeline.engine import Engine, InProcessEngine
from tests.engine.tasks import Job, write_result

REPO = Path(__file__).resolve().parents[2]


def collect(
    engine: Engine, fn: Callable[[Any], Any], items: Sequence[Any], gpu: Sequence[bool] | None = None,
    timeout: float = 60.0, stop_after: int | None = None,
) -> dict[int, Any]:
    """{index: result} from map_unordered, run in a thread so that a stuck engine fails the test instead of hanging.

    Args:
        stop_after: leave the loop after this many results (the generator is closed, as a caller breaking out).
    """
    out: dict[int, Any] = {}
    errors: list[BaseException] = []
    flags = list(gpu) if gpu is not None else [False] * len(items)

    def consume() -> None:
        try:
            with closing(engine.map_unordered(fn, items, flags)) as results:
                for index, result in results:
                    assert index not in out, f"index {index} yielded twice"
                    out[index] = result
                    if stop_after is not None and len(out) >= stop_after:
                        break
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"engine {engine.name} did not finish {len(items)} items within {timeout} s ({len(out)} done)")
    if errors:
        raise errors[0]
    return out


def make_jobs(folder: Path, count: int, sleep: float = 0.0) -> list[Job]:
    """`count` jobs writing into `folder` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [Job(str(folder), index, sleep) for index in range(count)]


def in_process_values(folder: Path, count: int) -> dict[int, int]:
    """{index: value} of the same jobs run by the in-process engine, the reference every engine must equal."""
    jobs = make_jobs(folder, count)
    return {index: done.value for index, done in InProcessEngine().map_unordered(write_result, jobs, [False] * count)}
