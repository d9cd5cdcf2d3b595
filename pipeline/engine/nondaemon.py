"""Nanny preload that makes worker processes non-daemonic:
`dask worker ADDRESS --preload-nanny pipeline.engine.nondaemon`.

A daemonic process may not start children, so a run whose DataLoader has workers fails inside a default dask worker
("daemonic processes are not allowed to have children"). The nanny reads `distributed.worker.daemon` each time it
starts its worker process, after its preloads ran. The jobqueue engines add this preload to every job; workers you
start yourself for a scheduler address need it too (or DASK_DISTRIBUTED__WORKER__DAEMON=False in their environment).
"""

from __future__ import annotations

import dask


def dask_setup(nanny: object) -> None:
    """Called by the nanny before it starts its worker process."""
    dask.config.set({"distributed.worker.daemon": False})
