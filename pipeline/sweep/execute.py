"""One run: fit a head on the few-shot cache, score it on the test split, publish the run folder atomically.

Everything is written into a temporary folder beside the final one (named by host, process and a random token, so
that writers on several hosts never share one) and renamed into place; run.json, the fingerprint, is part of it. A
run killed at any moment leaves either the previous folder or the new complete one, plus a temporary that the next
sweep removes. Two workers finishing the same run keep the first and discard the second.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from pipeline.backbone.device import pick_device
from pipeline.errors import ClipCacheError, NotApplicable
from pipeline.heads import Head
from pipeline.heads.classes import base_and_novel
from pipeline.heads.curves import write_curves
from pipeline.heads.fitting import fit_head, fit_inputs, save_fitted
from pipeline.heads.registry import head_class
from pipeline.layout import CURVES, HEAD_META, RUN_LOG, RUN_RECORD
from pipeline.runlog import run_log
from pipeline.scoring.evaluation import score_base_to_novel, score_head, test_split, write_evaluation
from pipeline.scoring.transductive import labelled, score_transclip
from pipeline.scoring.transfer import open_targets, score_targets, transfer_average
from pipeline.store import FeatureSplit, TextFeatures
from pipeline.store.atomic import replace_folder, temp_folder, write_json_atomic
from pipeline.store.failpoints import failpoint
from pipeline.store.provenance import code_version, fingerprint
from pipeline.store.together import check_identity
from pipeline.sweep.record import folder_checksums, run_state
from pipeline.sweep.spec import RunResult, RunSpec

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def execute_run(spec: RunSpec) -> RunResult:
    """Fit, score and publish one run unless its folder already holds the same fingerprint; never raises."""
    started = time.perf_counter()
    try:
        inputs = spec.inputs()
        digest = fingerprint(inputs)
        if run_state(spec.folder, digest)[0] == "done":  # finished (and intact) since the driver planned it
            return RunResult(spec.key, "skipped", digest, worker=worker_name())
        seconds, metrics = build_run(spec, inputs, digest)
    except NotApplicable as exc:
        return RunResult(spec.key, "n/a", error=str(exc), worker=worker_name())
    except Exception as exc:  # one failed run must not stop a sweep of thousands; it is reported
        if caused_by_interrupt(exc):
            raise KeyboardInterrupt from None  # Ctrl-C inside a library callback (h5py wraps it): stop the sweep
        if not isinstance(exc, ClipCacheError):
            log.error("run %s failed:\n%s", spec.key, traceback.format_exc())
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return RunResult(spec.key, "failed", error=f"{type(exc).__name__}: {message}", worker=worker_name())
    seconds["total"] = round(time.perf_counter() - started, 4)
    return RunResult(spec.key, "done", digest, seconds, metrics, worker=worker_name())


def caused_by_interrupt(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is somewhere in the exception's chain of causes and contexts."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def build_run(spec: RunSpec, inputs: dict[str, Any], digest: str) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit and score into a temporary folder (the run's detail lines into its run.log), then publish it; (seconds of
    fit and evaluate, metrics)."""
    device = pick_device(spec.device)
    tmp = temp_folder(spec.folder)  # never shared by two writers
    try:
        with run_log(tmp / RUN_LOG):
            record, seconds = fit_and_score(spec, device, tmp)
        write_json_atomic(tmp / RUN_RECORD, {
            "key": spec.key, "fingerprint": digest, "inputs": inputs, "dataset": spec.encode.dataset.name,
            "model": spec.encode.model.name, "pretrained": spec.encode.model.pretrained, "head": spec.head,
            "shots": spec.shots, "seed": spec.seed, "protocol": spec.protocol,
            "transductive": spec.method or None, "seconds": seconds,
            "worker": worker_name(), "device": str(device), "code_version": code_version(),
            "finished_at": datetime.now(UTC).isoformat(),
            "checksums": folder_checksums(tmp)})
        publish(tmp, spec.folder, digest)
        failpoint("run-published")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    metrics = {k: v for k, v in record["metrics"].items() if k != "confusion"}
    return seconds, metrics


def fit_and_score(spec: RunSpec, device: torch.device, tmp: Path) -> tuple[dict[str, Any], dict[str, float]]:
    """Fit the run's head, save it into `tmp`, score it on the test split (and the transfer targets, or
    transductively) and write its evaluation there, and a trained head's curves (dvclive/); (the evaluation record,
    seconds of fit and evaluate)."""
    classes = None
    if spec.protocol == "base_to_novel":
        text = TextFeatures(spec.cache_files()["text"])
        if not head_class(spec.head).novel_classes:
            raise NotApplicable(f"{spec.head} has per-class parameters: it cannot score novel classes")
        classes, _ = base_and_novel(len(text.classnames))
    fitted = fit_head(spec.encode, spec.shots, spec.seed, spec.head, spec.head_params, device, classes,
                      validation_free=spec.protocol == "validation_free")
    meta = save_fitted(fitted, tmp)
    failpoint("run-fitted")
    started = time.perf_counter()
    test = test_split(spec.encode, meta, spec.folder / HEAD_META)
    if spec.transductive is not None:
        support = None  # the shots and val split join only in few-shot mode (TransCLIP-FS)
        if spec.transductive.support:
            support = labelled(*fit_inputs(spec.encode, spec.shots, spec.seed)[:2])
        record = score_transclip(fitted.head, meta, test, spec.transductive, support)
    elif spec.targets:
        record = score_transfer(spec, fitted.head, meta, test)
    elif classes is None:
        record = score_head(fitted.head, meta, test)
    else:
        check_identity(meta["provenance"]["identity"], spec.folder / HEAD_META, text)
        record = score_base_to_novel(fitted.head, meta, test, text)
    write_evaluation(record, tmp)
    seconds = {"fit": fitted.metrics["fit_seconds"], "evaluate": round(time.perf_counter() - started, 4)}
    write_curves(tmp / CURVES, fitted.head.history, fitted.head.selected, record["metrics"])  # trained heads only
    return record, seconds


def score_transfer(spec: RunSpec, head: Head, meta: dict[str, Any], test: FeatureSplit) -> dict[str, Any]:
    """The source's evaluation record with each target's scores (cross_dataset, domain_generalisation)."""
    record = score_head(head, meta, test)
    files = spec.cache_files()
    targets = {t.dataset.name: (files[f"test@{t.dataset.name}"], files[f"text@{t.dataset.name}"])
               for t in spec.targets}
    scored = score_targets(head, meta, open_targets(targets, meta["provenance"].get("identity"),
                                                    spec.folder / HEAD_META))
    record["protocol"] = spec.protocol
    record["transfer"] = {"source": spec.encode.dataset.name, "targets": scored, "average": transfer_average(scored)}
    return record


def publish(tmp: Path, folder: Path, digest: str) -> None:
    """Rename `tmp` to `folder`, moving an older (or damaged) run aside first; if another writer published the same
    run intact meanwhile, keep it."""
    replace_folder(tmp, folder, keep=lambda: run_state(folder, digest)[0] == "done")
