"""The `runtime.cluster` string parsed: which kind of engine, how many workers, which scheduler address."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import ClipCacheError

KEYWORDS = ("none", "cuda", "slurm")  # kinds without a number
SIZED = ("local", "jobqueue-local")  # kinds written KIND:N
ACCEPTED = (
    "none (in-process), local:N (N worker processes on this machine), cuda (one worker per GPU, dask-cuda), "
    "slurm (runtime.slurm jobs), jobqueue-local:N (testing aid: N local dask-jobqueue jobs), "
    "or a scheduler address tcp://host:port or host:port"
)
_ADDRESS = re.compile(r"^(tcp://)?(?P<host>[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:]+\]):(?P<port>[0-9]{1,5})$")


@dataclass(frozen=True)
class Target:
    kind: str  # none | local | cuda | slurm | jobqueue-local | address
    workers: int = 0  # N of local:N and jobqueue-local:N; 0 otherwise
    address: str = ""  # tcp://host:port for kind 'address'; '' otherwise

    @property
    def name(self) -> str:
        """The engine's display name: 'in-process', 'local:2', 'cuda', 'slurm', 'jobqueue-local:1', 'tcp://h:p'."""
        if self.kind == "none":
            return "in-process"
        if self.kind in SIZED:
            return f"{self.kind}:{self.workers}"
        return self.address or self.kind


def parse_cluster(text: str) -> Target:
    """Parse `runtime.cluster`.

    Raises:
        ClipCacheError: naming runtime.cluster, the value and the accepted forms.
    """
    value = text.strip() if isinstance(text, str) else ""
    if value in KEYWORDS:
        return Target(value)
    kind, sep, count = value.rpartition(":")
    if sep and kind in SIZED:
        if re.fullmatch(r"[0-9]+", count) and int(count) >= 1:
            return Target(kind, workers=int(count))
        raise _bad(text, f"{kind}:N needs a whole number N >= 1")
    match = _ADDRESS.match(value)
    if match and match["host"] not in KEYWORDS + SIZED and 1 <= int(match["port"]) <= 65535:
        return Target("address", address=f"tcp://{match['host']}:{int(match['port'])}")
    raise _bad(text, "")


def _bad(text: object, why: str) -> ClipCacheError:
    """The one error for a bad `runtime.cluster` value."""
    reason = f" ({why})" if why else ""
    return ClipCacheError(f"runtime.cluster {text!r} is not understood{reason}; accepted: {ACCEPTED}")
