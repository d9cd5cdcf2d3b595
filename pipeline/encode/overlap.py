"""Writes behind the model: finished shards are assembled and written on one background thread while the next
batches go through the image tower (which releases the GIL), so that neither waits for the other.

At most `depth` finished shards wait in memory. The bytes written are those a serial loop writes (the same arrays,
the same atomic shard files, in the same order); the first failure of a write (a full disk, say) is raised in the
encoding thread at the next hand-over or at the end, and a shard already handed over is written before the encode
stops (an interrupt loses only the shard being encoded).
"""

from __future__ import annotations

import queue
import threading
from types import TracebackType

from pipeline.encode.buffer import ShardBuffer
from pipeline.store.writer import Shard, SplitWriter


class ShardWrites:
    """A background writer of one split's shards; use as a context manager around the encoding loop."""

    def __init__(self, writer: SplitWriter, depth: int = 1) -> None:
        self.writer = writer
        self.pending: queue.Queue[tuple[Shard, ShardBuffer] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self.run, name="shard-writer", daemon=True)

    def run(self) -> None:
        """Write each handed-over shard in turn until told to stop (after a failure, drop the rest)."""
        while (item := self.pending.get()) is not None:
            if self.error is None:
                shard, buffer = item
                try:
                    self.writer.write_shard(shard, buffer.arrays(), buffer.skipped)
                except BaseException as exc:  # re-raised in the encoding thread, whatever it is
                    self.error = exc

    def put(self, shard: Shard, buffer: ShardBuffer) -> None:
        """Hand over a finished shard (blocks while `depth` shards already wait); raises an earlier write's error."""
        self.check()
        self.pending.put((shard, buffer))

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def __enter__(self) -> ShardWrites:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.pending.put(None)
        self.thread.join()
        if kind is None:  # the encoding loop's own exception, if any, goes first
            self.check()
