"""Top-level task functions the engine tests send to workers (importable there as tests.engine.tasks)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Job:
    folder: str  # where the task writes its marker and result files
    index: int
    sleep: float = 0.0  # seconds between the start marker and the result


@dataclass(frozen=True)
class Done:
    index: int
    value: int  # a value computed from the job alone: equal wherever it ran
    pid: int  # the process that ran it


def value_of(index: int) -> int:
    """What `write_result` computes for job `index`, written independently for the tests' expectations."""
    return index * index + 7


def write_result(job: Job) -> Done:
    """Mark the start (started-INDEX-PID), sleep, then write result-INDEX.json atomically; return the value."""
    folder = Path(job.folder)
    pid = os.getpid()
    (folder / f"started-{job.index}-{pid}").write_text("", encoding="utf-8")
    time.sleep(job.sleep)
    value = sum(range(job.index + 1)) * 2 - job.index + 7  # = index**2 + 7, the long way
    tmp = folder / f".result-{job.index}-{pid}.tmp"
    tmp.write_text(json.dumps({"index": job.index, "value": value, "pid": pid}), encoding="utf-8")
    os.replace(tmp, folder / f"result-{job.index}.json")
    return Done(job.index, value, pid)


def _child_square(number: int, conn: object) -> None:
    conn.send((number * number, os.getpid()))  # type: ignore[attr-defined]
    conn.close()  # type: ignore[attr-defined]


def square_in_child(number: int) -> tuple[int, int, int]:
    """(number squared by a multiprocessing child, the child's pid, this process's pid): a DataLoader's pattern."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.Process(target=_child_square, args=(number, sender))
    child.start()
    try:
        if not receiver.poll(30):
            raise TimeoutError("the child process sent nothing within 30 s")
        square, child_pid = receiver.recv()
    finally:
        child.join(30)
    return square, child_pid, os.getpid()


def fail_on_three(index: int) -> int:
    """index + 100, except for 3, which raises a ValueError naming it."""
    if index == 3:
        raise ValueError("task 3 refuses")
    time.sleep(0.1)
    return index + 100


def kill_own_worker(index: int) -> int:
    """SIGKILL the process running this task (as an out-of-memory kill would)."""
    os.kill(os.getpid(), signal.SIGKILL)
    return index
