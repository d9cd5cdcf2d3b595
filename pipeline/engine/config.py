"""Typed engine settings: the cluster keys of params.yaml's untracked `runtime` section."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from pipeline.engine.target import Target, parse_cluster
from pipeline.errors import ClipCacheError
from pipeline.params import build

_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([kmgtp]i?)?b?$", re.IGNORECASE)


@dataclass(frozen=True)
class SlurmParams:
    """One SLURM job = one `dask worker` command (with `processes` worker processes); also used by jobqueue-local:N."""

    partition: str | None = None  # `#SBATCH -p`; None: the site's default partition
    account: str | None = None  # `#SBATCH -A`, the account charged
    walltime: str = "02:00:00"  # `#SBATCH -t`; a worker is lost when its job hits this limit (its run is retried)
    cores: int = 4  # `#SBATCH --cpus-per-task`; threads per worker process = cores // processes
    memory: str = "16GB"  # memory per job (`#SBATCH --mem`, rounded up to GiB), split between its worker processes
    gres: str | None = None  # `#SBATCH --gres`, e.g. "gpu:1"; a gpu gres gives each worker process resource GPU=1
    jobs: int = 1  # SLURM jobs to request (`cluster.scale(jobs=...)`)
    processes: int = 1  # dask worker processes per job (keep 1 per GPU: they would share the job's GPUs)
    job_extra: tuple[str, ...] = ()  # more `#SBATCH` directives, e.g. ["--qos=short", "--constraint=a100"]
    python: str | None = None  # python executable on the compute nodes; None: this one (sys.executable)
    local_directory: str | None = None  # worker scratch space on the nodes, e.g. "$TMPDIR" or "/scratch/me"
    interface: str | None = None  # network interface the scheduler and workers use, e.g. "ib0"; None: default route
    prologue: tuple[str, ...] = ()  # shell lines run before the worker starts, e.g. ["module load cuda/12.1"]
    log_directory: str | None = None  # where the jobs' stdout/stderr files go (`#SBATCH -o/-e`); None: cwd


@dataclass(frozen=True)
class ClusterParams:
    """Where runs execute. Changing these changes speed only, never a result."""

    cluster: str = "none"  # none | local:N | cuda | slurm | jobqueue-local:N | a scheduler address (tcp://host:8786)
    threads_per_worker: int = 1  # runs executing at once in one worker process (local:N and cuda)
    worker_timeout: float = 60.0  # seconds to wait for the first worker of a scheduler address
    slurm: SlurmParams = field(default_factory=SlurmParams)  # slurm and jobqueue-local:N

    @property
    def target(self) -> Target:
        """The parsed `cluster` string."""
        return parse_cluster(self.cluster)


CLUSTER_KEYS = frozenset(f.name for f in dataclasses.fields(ClusterParams))  # the runtime keys this section owns


def cluster_params(section: dict[str, Any] | None) -> ClusterParams:
    """The checked cluster keys of the `runtime` section (only these keys: see `CLUSTER_KEYS`).

    Raises:
        ClipCacheError: an unknown key, a bad `runtime.cluster` string or an impossible number, named.
    """
    params = build(ClusterParams, section, "runtime")
    parse_cluster(params.cluster)
    if params.threads_per_worker < 1:
        raise ClipCacheError(f"runtime.threads_per_worker must be >= 1, got {params.threads_per_worker}")
    if params.worker_timeout <= 0:
        raise ClipCacheError(f"runtime.worker_timeout must be > 0 seconds, got {params.worker_timeout}")
    _check_slurm(params.slurm)
    return params


def _check_slurm(slurm: SlurmParams) -> None:
    """Numbers and strings of the `runtime.slurm` section that dask-jobqueue would reject late or silently."""
    for name in ("cores", "jobs", "processes"):
        if getattr(slurm, name) < 1:
            raise ClipCacheError(f"runtime.slurm.{name} must be >= 1, got {getattr(slurm, name)}")
    if slurm.processes > slurm.cores:
        raise ClipCacheError(
            f"runtime.slurm.processes ({slurm.processes}) must be <= runtime.slurm.cores ({slurm.cores}): "
            "each worker process needs at least one core"
        )
    if not _MEMORY.match(slurm.memory.strip()):
        raise ClipCacheError(f"runtime.slurm.memory must look like '16GB' or '500MiB', got {slurm.memory!r}")
    for name in ("python", "local_directory", "log_directory"):
        value = getattr(slurm, name)
        if value is not None and (not value or any(ch.isspace() for ch in value)):
            raise ClipCacheError(f"runtime.slurm.{name} must be a path without spaces (the job script does not quote "
                                 f"it), got {value!r}")


def gres_has_gpu(gres: str | None) -> bool:
    """Whether a `--gres` value asks for GPUs ('gpu', 'gpu:2', 'gpu:a100:1')."""
    return gres is not None and gres.split(":", 1)[0].strip().lower() == "gpu"
