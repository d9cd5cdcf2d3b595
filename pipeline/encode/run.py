"""Stage 1 as a library call: data set -> few-shot splits -> frozen encoders -> atomic, resumable HDF5 files."""

from __future__ import annotations

import functools
import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.backbone import (
    Encoder,
    encode_classes,
    encode_sentences,
    load_encoder,
    pick_device,
)
from pipeline.backbone.model import check_names, resolve_architecture
from pipeline.data import DataSet, create_dataset
from pipeline.data.decode import ImageReader
from pipeline.data.descriptions import Descriptions, load_descriptions
from pipeline.data.templates import templates_for
from pipeline.data.views import ViewSpec
from pipeline.encode.buffer import ShardBuffer
from pipeline.encode.forward import forward_batch, prepare, probe_shapes, speed_of
from pipeline.encode.jpeg import check_preprocess, decode_batch
from pipeline.encode.loader import PairLoader, pin
from pipeline.encode.overlap import ShardWrites
from pipeline.encode.plan import (
    SplitJob,
    cache_folder,
    dataset_provenance,
    plan_jobs,
    split_provenance,
    text_provenance,
)
from pipeline.encode.progress import ProgressLines
from pipeline.encode.towers import features_for
from pipeline.errors import ClipCacheError
from pipeline.layout import TEXT_FILE
from pipeline.params import EncodeParams, RuntimeParams, as_dict
from pipeline.store.failpoints import failpoint
from pipeline.store.provenance import build_info, fingerprint
from pipeline.store.writer import Shard, SplitWriter, is_complete, write_whole

log = logging.getLogger(__name__)


@dataclass
class EncodeReport:
    """What a run did: per file, 'written' or 'up to date', and the images it encoded."""

    folder: Path
    files: dict[str, str] = field(default_factory=dict)  # path -> status
    timings: dict[str, tuple[int, float]] = field(default_factory=dict)  # path -> (images encoded, seconds)
    images: int = 0  # images decoded and encoded in this run (views not counted)
    forwards: int = 0  # image tensors through the model (views counted)
    seconds: float = 0.0


def run_encode(params: EncodeParams, runtime: RuntimeParams) -> EncodeReport:
    """Encode everything `params` asks for; files already complete with the same provenance are kept."""
    started = time.perf_counter()
    check_names(params.dataset.registered, params.model.name, params.model.pretrained)  # before any file is listed
    arch, _ = resolve_architecture(params.model.name)
    dataset = create_dataset(params.dataset.registered, params.dataset.root, params.dataset.options,
                             params.dataset.name)
    folder = cache_folder(params)
    jobs = plan_jobs(params, dataset, folder)  # checks K against every class before a model is built
    descriptions = descriptions_of(params, dataset)  # and the descriptions file against every class
    encoder = load_encoder(params.model.name, params.model.pretrained, pick_device(runtime.device))
    prepare(encoder, speed_of(runtime))
    params, notes = features_for(params, encoder, arch)
    report = EncodeReport(folder)
    build = build_info({**as_dict(runtime), "device": str(encoder.device)})
    # paths: where, not what (not fingerprinted)
    build |= {"dataset_root": str(dataset.root), "sources": encoder.sources}
    templates = {name: templates_for(name, dataset) for name in params.templates}
    report.files[str(folder / TEXT_FILE)] = write_text(encoder, list(dataset.classnames), templates,
                                                       dataset_provenance(dataset), folder / TEXT_FILE, build,
                                                       runtime.repair, descriptions)
    loader = PairLoader([split_reader(params, encoder, job) for job in jobs], int(runtime.workers),
                        params.features.decode == "gpu", pin(encoder.device))  # one set of workers for every split
    try:
        for index, job in enumerate(jobs):
            encode_split(params, runtime, encoder, dataset, job, build, report, notes, (loader, index))
    finally:
        loader.close()
    report.seconds = time.perf_counter() - started
    return report


def split_reader(params: EncodeParams, encoder: Encoder, job: SplitJob) -> ImageReader:
    """What decodes a split's images: the base tensor, and the views of few-shot training images."""
    views = params.views if job.with_views else None
    spec = ViewSpec(views.count, views.seed, (views.scale[0], views.scale[1])) if views else None
    pre = encoder.provenance["preprocess"]
    return ImageReader(job.items, job.item_index, encoder.preprocess, spec, encoder.image_size, pre["mean"],
                       pre["std"])


def descriptions_of(params: EncodeParams, dataset: DataSet) -> Descriptions | None:
    """The descriptions file encode.descriptions names for this data set, read and matched to its classes."""
    path = params.descriptions.get(dataset.name)
    return load_descriptions(path, list(dataset.classnames), dataset.name) if path else None


def write_text(encoder: Encoder, classnames: list[str], templates: dict[str, list[str]], dataset_prov: dict,
               path: Path, build: dict, repair: bool = False, descriptions: Descriptions | None = None) -> str:
    """Write text.h5 unless it is complete with this provenance; 'written' or 'up to date'."""
    provenance = text_provenance(encoder.provenance, dataset_prov, templates,
                                 descriptions.record() if descriptions else None)
    if is_complete(path, fingerprint(provenance), check_data=repair):
        return "up to date"
    groups = {}
    for name, texts in templates.items():
        per_template, mean = encode_classes(encoder.model, encoder.tokenizer, classnames, texts, encoder.device)
        groups[f"text/{name}/per_template"], groups[f"text/{name}/mean"] = per_template.numpy(), mean.numpy()
    if descriptions:
        groups |= description_groups(encoder, descriptions)
    write_whole(path, provenance, build, groups)
    return "written"


def description_groups(encoder: Encoder, descriptions: Descriptions) -> dict[str, np.ndarray]:
    """descriptions/embeddings [S, D] raw, offsets [C + 1] (class c owns rows offsets[c]:offsets[c + 1]), sentences
    [S] (UTF-8), and mean [C, D]: per class the mean of its normalised embeddings, normalised (CuPL's classifier)."""
    sentences = descriptions.flat()
    embeddings = encode_sentences(encoder.model, encoder.tokenizer, sentences, encoder.device)  # [S, D]
    offsets = np.concatenate([[0], np.cumsum(descriptions.counts)]).astype(np.int64)  # [C + 1]
    unit = F.normalize(embeddings, dim=-1)
    mean = torch.stack([unit[a:b].mean(dim=0) for a, b in itertools.pairwise(offsets)])  # [C, D]
    return {"descriptions/embeddings": embeddings.numpy(), "descriptions/offsets": offsets,
            "descriptions/sentences": np.array([s.encode("utf-8") for s in sentences]),
            "descriptions/mean": F.normalize(mean, dim=-1).numpy()}


def encode_split(params: EncodeParams, runtime: RuntimeParams, encoder: Encoder, dataset: DataSet,
                 job: SplitJob, build: dict, report: EncodeReport, notes: dict[str, str] | None = None,
                 source: tuple[PairLoader, int] | None = None) -> None:
    """One split file: encode the pending shards in fixed batches, then consolidate."""
    writer = SplitWriter(job.path, split_provenance(params, encoder.provenance, dataset, job, notes), build,
                         len(job.items), runtime.shard_images)
    with writer.locked():  # a second encode of this split waits here, then finds it complete
        write_split(writer, params, runtime, encoder, dataset, job, report, source)


def current(writer: SplitWriter, runtime: RuntimeParams) -> bool:
    """The split's final file needs no work: complete with this provenance (read in full against its checksums with
    --repair), and it skipped no image unless --skip-bad-images is given again."""
    return writer.up_to_date(runtime.repair) and (runtime.skip_bad_images or not writer.skipped())


def write_split(writer: SplitWriter, params: EncodeParams, runtime: RuntimeParams, encoder: Encoder,
                dataset: DataSet, job: SplitJob, report: EncodeReport,
                source: tuple[PairLoader, int] | None = None) -> None:
    """The split's pending shards, then its final file (the caller holds the split's lock)."""
    if current(writer, runtime):
        writer.drop_leftovers()
        report.files[str(job.path)] = "up to date"
        return
    started = time.perf_counter()
    pending = writer.pending()
    total = encode_shards(writer, params, runtime, encoder, str(dataset.root), job, pending, report, source)
    writer.finalize()
    report.files[str(job.path)] = "written"
    report.timings[str(job.path)] = (total, time.perf_counter() - started)


def encode_shards(writer: SplitWriter, params: EncodeParams, runtime: RuntimeParams, encoder: Encoder, root: str,
                  job: SplitJob, pending: list[Shard], report: EncodeReport,
                  source: tuple[PairLoader, int] | None = None) -> int:
    """Encode these shards of a split, each in the same fixed batches whoever runs it (a resumed or a distributed
    encode writes the same bytes), and write each atomically, behind the next batches' forward (overlap.py); the
    number of input images. `source`: the pair's loader and this split's index in it (a loader of its own when
    none, as a distributed shard task)."""
    own = source is None
    loader, index = source or (PairLoader([split_reader(params, encoder, job)], int(runtime.workers),
                                          params.features.decode == "gpu", pin(encoder.device)), 0)
    try:
        return encode_batches(writer, params, runtime, encoder, root, job, pending, report, loader, index)
    finally:
        if own:
            loader.close()


def encode_batches(writer: SplitWriter, params: EncodeParams, runtime: RuntimeParams, encoder: Encoder, root: str,
                   job: SplitJob, pending: list[Shard], report: EncodeReport, loader: PairLoader, index: int) -> int:
    """The body of `encode_shards`, on the loader's split `index`."""
    views = params.views if job.with_views else None
    per_image = 1 + (views.count if views else 0)
    step = max(1, runtime.batch_size // per_image)
    batches = [list(range(s, min(s + step, shard.stop)))
               for shard in pending for s in range(shard.start, shard.stop, step)]
    reader = loader.readers[index]
    on_device = params.features.decode == "gpu"
    if on_device:
        check_preprocess(encoder.provenance["preprocess"])
    shapes = functools.cache(lambda: probe_shapes(encoder, params.features, views))  # for all-skipped shards only
    shards = iter(pending)
    shard, buffer = next(shards, None), ShardBuffer(job, shapes, root)
    total = sum(s.stop - s.start for s in pending)
    name = f"{job.path.parent.name}/{job.path.stem}"
    lines = ProgressLines(name, total)
    with tqdm(total=total, unit="img", desc=name, disable=None) as bar, ShardWrites(writer) as writes:
        for loaded in loader.batches(index, batches):
            batch = decode_batch(loaded, reader, encoder.device) if on_device else loaded
            take_errors(batch["errors"], job, runtime, buffer)
            if batch["pixels"] is not None:
                features = forward_batch(encoder, batch["pixels"], params.features, views, speed_of(runtime))
                buffer.add(batch["pos"], features, batch["boxes"])
                report.images += len(batch["pos"])
                report.forwards += len(batch["pos"]) * per_image
            bar.update(len(batch["positions"]))
            lines.update(len(batch["positions"]))
            failpoint("shard-encoding")
            if shard is not None and max(batch["positions"]) == shard.stop - 1:  # (batches come from pending shards)
                writes.put(shard, buffer)  # written behind the next batches' forward
                shard, buffer = next(shards, None), ShardBuffer(job, shapes, root)
    return total


def take_errors(errors: list[tuple[int, str]], job: SplitJob, runtime: RuntimeParams, buffer: ShardBuffer) -> None:
    """Stop at the first undecodable image, or record it when skipping is allowed."""
    for _, message in errors:
        if not runtime.skip_bad_images:
            raise ClipCacheError(f"cannot decode image {message} (pass --skip-bad-images to skip and list it)")
        log.warning("skipping undecodable image %s", message)
        buffer.skipped.append(message)


__all__ = ["EncodeReport", "run_encode"]
