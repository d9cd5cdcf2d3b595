"""Stage 1 on an engine (`runtime.cluster` set): a text task per (data set, model), one task per pending shard, then
a finalize task per split.

The driver plans: it lists the data set, hashes its images, asks a worker for the encoder's provenance (the text task,
which also writes text.h5), decides every split's pending shards and cleans up what killed writers left, all under
the splits' locks, before any shard is handed out. A shard task writes only its own shard, atomically under a name
unique across hosts and processes; a worker that dies mid-shard loses nothing (the scheduler runs the shard again
elsewhere, in the same fixed batches, so the bytes are the same). A finalize task joins a split's shards once they
are all written. A worker keeps one loaded encoder per (model, weights, device) for all its tasks.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.backbone import Encoder, load_encoder, pick_device
from pipeline.backbone.model import check_names, resolve_architecture, resolve_pretrained
from pipeline.data import DataSet, create_dataset
from pipeline.data.descriptions import Descriptions
from pipeline.data.templates import templates_for
from pipeline.encode.forward import prepare, speed_of
from pipeline.encode.plan import SplitJob, cache_folder, dataset_provenance, plan_jobs, split_provenance
from pipeline.encode.run import EncodeReport, current, descriptions_of, encode_shards, write_text
from pipeline.encode.towers import features_for
from pipeline.engine import ClusterParams, open_engine
from pipeline.errors import ClipCacheError
from pipeline.layout import TEXT_FILE
from pipeline.params import EncodeParams, RuntimeParams, as_dict
from pipeline.store.provenance import build_info
from pipeline.store.writer import Shard, SplitWriter

log = logging.getLogger(__name__)
_ENCODERS: dict[tuple[str, str, str], Encoder] = {}  # (model, weights identity, device) -> encoder, per worker


def worker_encoder(params: EncodeParams, runtime: RuntimeParams) -> Encoder:
    """The frozen pair on this worker's device, built once per (architecture or config content, checkpoint sha256 or
    tag, device)."""
    arch, _config = resolve_architecture(params.model.name)
    weights = resolve_pretrained(arch, params.model.pretrained)
    device = pick_device(runtime.device)
    key = (arch, str(weights.get("checkpoint_sha256") or weights["pretrained"]), str(device))
    if key not in _ENCODERS:
        _ENCODERS[key] = load_encoder(params.model.name, params.model.pretrained, device)
        prepare(_ENCODERS[key], speed_of(runtime))
    return _ENCODERS[key]


@dataclass(frozen=True)
class TextTask:
    params: EncodeParams
    runtime: RuntimeParams
    classnames: list[str]
    templates: dict[str, list[str]]
    dataset_prov: dict[str, Any]
    path: Path
    build: dict[str, Any]
    descriptions: Descriptions | None = None


def text_task(task: TextTask) -> dict[str, Any]:
    """Write text.h5; return what the driver needs to plan the splits: the encoder's provenance and paths, the
    encode params as this model takes them (late tokens are a ViT's), and the notes for the files' provenance."""
    encoder = worker_encoder(task.params, task.runtime)
    params, notes = features_for(task.params, encoder, resolve_architecture(task.params.model.name)[0])
    build = {**task.build, "sources": encoder.sources, "device": str(encoder.device)}
    status = write_text(encoder, task.classnames, task.templates, task.dataset_prov, task.path, build,
                        task.runtime.repair, task.descriptions)
    return {"status": status, "provenance": encoder.provenance, "sources": encoder.sources, "params": params,
            "notes": notes}


@dataclass(frozen=True)
class ShardTask:
    params: EncodeParams
    runtime: RuntimeParams
    job: SplitJob
    provenance: dict[str, Any]
    build: dict[str, Any]
    root: str
    shard: Shard


def writer_of(job: SplitJob, provenance: dict[str, Any], build: dict[str, Any], runtime: RuntimeParams) -> SplitWriter:
    return SplitWriter(job.path, provenance, build, len(job.items), runtime.shard_images)


def shard_task(task: ShardTask) -> tuple[str, int, int, int]:
    """Encode and write one shard: (split path, shard start, images, forwards)."""
    report = EncodeReport(task.job.path.parent)
    encoder = worker_encoder(task.params, task.runtime)
    writer = writer_of(task.job, task.provenance, task.build, task.runtime)
    encode_shards(writer, task.params, task.runtime, encoder, task.root, task.job, [task.shard], report)
    return str(task.job.path), task.shard.start, report.images, report.forwards


@dataclass(frozen=True)
class FinalizeTask:
    job: SplitJob
    provenance: dict[str, Any]
    build: dict[str, Any]
    runtime: RuntimeParams


def finalize_task(task: FinalizeTask) -> str:
    """Join a split's shards into its final file."""
    writer_of(task.job, task.provenance, task.build, task.runtime).finalize()
    return str(task.job.path)


def run_encode_distributed(params: EncodeParams, runtime: RuntimeParams, cluster: ClusterParams) -> EncodeReport:
    """Encode everything `params` asks for on the engine `cluster` names; the files equal a single process's."""
    started = time.perf_counter()
    check_names(params.dataset.registered, params.model.name, params.model.pretrained)
    dataset = create_dataset(params.dataset.registered, params.dataset.root, params.dataset.options,
                             params.dataset.name)
    folder = cache_folder(params)
    jobs = plan_jobs(params, dataset, folder)
    descriptions = descriptions_of(params, dataset)  # checked here, before any worker builds a model
    report = EncodeReport(folder)
    build = build_info({**as_dict(runtime)}) | {"dataset_root": str(dataset.root)}
    templates = {name: templates_for(name, dataset) for name in params.templates}
    with open_engine(cluster) as engine:
        text = TextTask(params, runtime, list(dataset.classnames), templates, dataset_provenance(dataset),
                        folder / TEXT_FILE, build, descriptions)
        (_, probe), = list(engine.map_unordered(text_task, [text], gpu=[True]))
        report.files[str(text.path)] = probe["status"]
        build = {**build, "sources": probe["sources"], "device": "engine: " + engine.name}
        with ExitStack() as locks:
            shard_tasks, finals = plan_shards(probe, runtime, dataset, jobs, build, locks, report)
            for _, (_path, _start, images, forwards) in engine.map_unordered(
                    shard_task, shard_tasks, gpu=[True] * len(shard_tasks)):
                report.images += images
                report.forwards += forwards
            for _, path in engine.map_unordered(finalize_task, finals, gpu=[False] * len(finals)):
                report.files[path] = "written"
    report.seconds = time.perf_counter() - started
    return report


def plan_shards(probe: dict[str, Any], runtime: RuntimeParams, dataset: DataSet, jobs: list[SplitJob],
                build: dict[str, Any], locks: ExitStack,
                report: EncodeReport) -> tuple[list[ShardTask], list[FinalizeTask]]:
    """Under each split's lock (held by the driver until its file is final): the splits to write, their pending
    shards (stale shards and temporaries removed first), and a finalize task per split."""
    params: EncodeParams = probe["params"]
    shard_tasks, finals = [], []
    for job in jobs:
        provenance = split_provenance(params, probe["provenance"], dataset, job, probe["notes"])
        writer = writer_of(job, provenance, build, runtime)
        locks.enter_context(writer.locked())
        if current(writer, runtime):
            writer.drop_leftovers()
            report.files[str(job.path)] = "up to date"
            continue
        for shard in writer.pending():
            shard_tasks.append(ShardTask(params, runtime, job, provenance, build, str(dataset.root), shard))
        finals.append(FinalizeTask(job, provenance, build, runtime))
    if not jobs:
        raise ClipCacheError("nothing to encode: the plan holds no split")
    return shard_tasks, finals
