"""Named fault-injection points: the process SIGKILLs itself at the point named by $CLIPCACHE_FAILPOINT.

The fault suite (tests/faults/) kills real processes at exact moments that polling from outside cannot hit reliably
(mid consolidation, between a run's fit and its publication), then resumes them and compares bitwise with an
uninterrupted run. Unset, a failpoint is one dictionary lookup.

    CLIPCACHE_FAILPOINT=<name>[@<n>]   kill at the n-th time (default 1) the process reaches <name>
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "shard-encoding",  # a batch of a shard encoded, the shard not yet written
    "shard-written",  # a shard renamed into the parts folder
    "consolidating",  # the final file half copied from the shards (its temporary on disk)
    "consolidated",  # the final file renamed into place, its parts folder not yet removed
    "run-fitted",  # a sweep run's head written into its temporary folder, not yet scored
    "run-published",  # a sweep run's folder renamed into place, the sweep not yet done
)
_SEEN: dict[str, int] = {}


def failpoint(name: str) -> None:
    """SIGKILL this process if $CLIPCACHE_FAILPOINT names this point (and this is its n-th passage)."""
    wanted = os.environ.get("CLIPCACHE_FAILPOINT")
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _SEEN[name] = _SEEN.get(name, 0) + 1
    if _SEEN[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
