"""runtime cluster keys: parsed values, and one ClipCacheError naming the key for every bad one."""

from __future__ import annotations

import pytest

from pipeline.engine import CLUSTER_KEYS, ClusterParams, SlurmParams, cluster_params
from pipeline.engine.config import gres_has_gpu
from pipeline.engine.target import Target
from pipeline.errors import ClipCacheError

BAD_CLUSTERS = [
    "local:0", "local:x", "local:-1", "local:", "local", "gpu", "GPU", "", "cuda:0", "slurm:2", "none:1",
    "jobqueue-local:0", "jobqueue-local", "tcp://host", "host:0", "host:65536", "http://host:8786", "local:1.5",
]


@pytest.mark.parametrize("value", BAD_CLUSTERS)
def test_bad_cluster_names_the_key_the_value_and_the_accepted_forms(value: str) -> None:
    with pytest.raises(ClipCacheError) as info:
        cluster_params({"cluster": value})
    message = str(info.value)
    assert message.startswith(f"runtime.cluster {value!r} ")
    for form in ("none", "local:N", "cuda", "slurm", "jobqueue-local:N", "tcp://host:port"):
        assert form in message


def test_a_number_for_local_is_explained() -> None:
    with pytest.raises(ClipCacheError, match=r"local:N needs a whole number N >= 1"):
        cluster_params({"cluster": "local:0"})


def test_cluster_must_be_a_string() -> None:
    with pytest.raises(ClipCacheError, match=r"runtime\.cluster must be str"):
        cluster_params({"cluster": 8786})


@pytest.mark.parametrize(
    ("value", "target", "name"),
    [
        ("none", Target("none"), "in-process"),
        ("local:1", Target("local", workers=1), "local:1"),
        ("local:12", Target("local", workers=12), "local:12"),
        ("cuda", Target("cuda"), "cuda"),
        ("slurm", Target("slurm"), "slurm"),
        ("jobqueue-local:2", Target("jobqueue-local", workers=2), "jobqueue-local:2"),
        ("tcp://10.1.2.3:8786", Target("address", address="tcp://10.1.2.3:8786"), "tcp://10.1.2.3:8786"),
        ("node-7.cluster:9000", Target("address", address="tcp://node-7.cluster:9000"), "tcp://node-7.cluster:9000"),
        (" local:3 ", Target("local", workers=3), "local:3"),
    ],
)
def test_good_cluster_strings(value: str, target: Target, name: str) -> None:
    params = cluster_params({"cluster": value})
    assert params.target == target
    assert params.target.name == name


def test_defaults_and_keys() -> None:
    params = cluster_params(None)
    assert params == ClusterParams()
    assert params.target == Target("none")
    assert (params.threads_per_worker, params.worker_timeout) == (1, 60.0)
    assert params.slurm == SlurmParams()
    slurm = params.slurm
    assert (slurm.walltime, slurm.cores, slurm.memory, slurm.jobs) == ("02:00:00", 4, "16GB", 1)
    assert {"cluster", "threads_per_worker", "worker_timeout", "slurm"} == CLUSTER_KEYS


def test_slurm_section_is_built_with_tuples() -> None:
    params = cluster_params({"cluster": "slurm", "slurm": {"partition": "gpu", "gres": "gpu:1", "jobs": 3,
                                                            "job_extra": ["--qos=short"], "prologue": ["module load "
                                                                                                       "cuda"]}})
    assert params.slurm.partition == "gpu" and params.slurm.jobs == 3
    assert params.slurm.job_extra == ("--qos=short",)
    assert params.slurm.prologue == ("module load cuda",)


@pytest.mark.parametrize(
    ("section", "culprit"),
    [
        ({"clustre": "none"}, "unknown key runtime.clustre"),
        ({"slurm": {"partiton": "gpu"}}, "unknown key runtime.slurm.partiton"),
        ({"threads_per_worker": 0}, "runtime.threads_per_worker must be >= 1"),
        ({"worker_timeout": 0}, "runtime.worker_timeout must be > 0"),
        ({"slurm": {"cores": 0, "processes": 0}}, "runtime.slurm.cores must be >= 1"),
        ({"slurm": {"jobs": 0}}, "runtime.slurm.jobs must be >= 1"),
        ({"slurm": {"processes": 0}}, "runtime.slurm.processes must be >= 1"),
        ({"slurm": {"cores": 2, "processes": 3}}, "runtime.slurm.processes (3) must be <= runtime.slurm.cores (2)"),
        ({"slurm": {"memory": "lots"}}, "runtime.slurm.memory must look like"),
        ({"slurm": {"python": "/my env/bin/python"}}, "runtime.slurm.python must be a path without spaces"),
        ({"slurm": {"local_directory": "/scratch/my dir"}}, "runtime.slurm.local_directory must be a path"),
        ({"slurm": {"cores": "4"}}, "runtime.slurm.cores must be int"),
    ],
)
def test_bad_settings_name_their_key(section: dict, culprit: str) -> None:
    with pytest.raises(ClipCacheError) as info:
        cluster_params(section)
    assert culprit in str(info.value)


def test_edge_settings_are_accepted() -> None:
    params = cluster_params({"threads_per_worker": 1, "worker_timeout": 0.5,
                             "slurm": {"cores": 2, "processes": 2, "jobs": 1, "memory": "500 MiB"}})
    assert (params.slurm.cores, params.slurm.processes, params.worker_timeout) == (2, 2, 0.5)
    for memory in ("16GB", "16G", "1.5TB", "512MiB", "1000000"):
        assert cluster_params({"slurm": {"memory": memory}}).slurm.memory == memory


@pytest.mark.parametrize(
    ("gres", "gpu"),
    [("gpu:1", True), ("gpu", True), ("gpu:a100:2", True), ("GPU:1", True), (None, False), ("tmpfs:10G", False),
     ("gpus:1", False), ("mps:50", False)],
)
def test_gres_names_a_gpu(gres: str | None, gpu: bool) -> None:
    assert gres_has_gpu(gres) is gpu
