"""`clipcache sweep` from a params file: the grid's runs of some heads, the per-head metrics files, pruning."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pipeline.engine import CLUSTER_KEYS, cluster_params
from pipeline.errors import ClipCacheError
from pipeline.evaluate_params import results_dir
from pipeline.grid import check_layouts, grid_pairs, transfer_plan
from pipeline.head_names import check_head_names
from pipeline.head_params import head_section
from pipeline.layout import CURVES_SUMMARY, METRICS, head_metrics_file
from pipeline.params import (
    TRANSFER_PROTOCOLS,
    EncodeParams,
    TrainParams,
    apply_overrides,
    load_params,
    runtime_params,
    runtime_section,
    train_params,
)
from pipeline.store.atomic import write_json_atomic
from pipeline.sweep.plan import SweepReport, Transfer, format_seconds, plan_runs, run_sweep, spec_state
from pipeline.sweep.record import verified_record
from pipeline.sweep.spec import RunSpec
from pipeline.transductive_params import transductive_params

log = logging.getLogger(__name__)


def sweep_from_params(params_path: str | Path, overrides: list[str], heads: list[str] | None, runtime: dict[str, Any],
                      dataset: str | list[str] | None = None, model: str | None = None,
                      prune: bool = False) -> SweepReport:
    """Run every run of the grid for `heads` (default: train.heads) that is not done yet; fail if any run failed."""
    params = apply_overrides(load_params(params_path), overrides)
    train = train_params(params.get("train"))
    names = list(heads or train.heads)
    if not names:
        raise ClipCacheError("no heads to sweep: give --head NAME or list them in train.heads of params.yaml")
    if heads and len(names) == 1 and names[0] in train.heads:  # a DVC stage sweep@<head>: its place in the pipeline
        log.info("sweep of %s: head %d of the %d in train.heads", names[0], train.heads.index(names[0]) + 1,
                 len(train.heads))
    settings = runtime_section(params, runtime)
    device = runtime_params(settings).device
    root = results_dir(params)
    pairs = grid_pairs(params, dataset, model)
    sections = {n: head_section(params, n) for n in names}
    check_layouts(pairs)  # names before any cache file is looked for
    transductive = transductive_params(params.get("transductive"))
    specs = plan_runs(pairs, names, sections, root, device, train.protocol, transductive,
                      transfer_of(params, pairs, train))
    report = run_sweep(specs, cluster_params({k: settings[k] for k in CLUSTER_KEYS if k in settings}),
                       before=check_models)
    if prune:
        prune_runs(specs, names, root, whole=dataset is None and model is None)
    for name in names:
        write_head_metrics([s for s in specs if s.head == name], head_metrics_file(root, name))
    if report.repaired:
        log.warning("sweep: %d damaged run(s) found and fitted again: %s", len(report.repaired),
                    "; ".join(f"{key} ({why})" for key, why in sorted(report.repaired.items())))
    log.info("sweep: %d runs, %d done now (%d of them repairs), %d already done, %d not applicable, %d failed in %s "
             "on %s (%s)", report.total, report.count("done"), len(report.repaired), report.count("skipped"),
             report.count("n/a"), report.count("failed"), format_seconds(report.seconds),
             report.engine or "nothing to run", report.cost())
    failed = [r for r in report.results if r.status == "failed"]
    if failed:
        raise ClipCacheError(f"{len(failed)} of {report.total} runs failed; first: {failed[0].key}: {failed[0].error}")
    return report


def check_models(pending: list[RunSpec], missing: list[RunSpec]) -> None:
    """Before the runs to do: when none of them has its cache files, one line naming the (data set, model) pairs to
    encode; then their model names and tags, named when open_clip does not know them (this loads open_clip and
    torch: a sweep with nothing to do never gets here)."""
    if missing and len(missing) == len(pending):
        pairs = sorted({f"{s.encode.dataset.name} / {s.pair}" for s in missing})
        first = next(path for path in missing[0].cache_files().values() if not path.is_file())
        raise ClipCacheError(f"nothing to fit: {len(pairs)} (data set, model) pair(s) not encoded ({', '.join(pairs)}; "
                             f"e.g. {first} is missing): run clipcache encode first")
    from pipeline.backbone.model import check_names

    for model in {(s.encode.model.name, s.encode.model.pretrained) for s in pending}:
        check_names(next(s.encode.dataset.registered for s in pending), *model)


def transfer_of(params: dict[str, Any], pairs: list[EncodeParams], train: TrainParams) -> Transfer | None:
    """The (source, targets) pairs of a transfer protocol (cross_dataset, domain_generalisation); None otherwise."""
    return transfer_plan(params, pairs, train.transfer) if train.protocol in TRANSFER_PROTOCOLS else None


def run_folders(results_dir: str, head: str) -> list[Path]:
    """Every run folder of a head on disk: <results_dir>/<head>/<data set>/<pair>/k<K>-s<seed>[-b2n][-transclip]."""
    return sorted(p for p in (Path(results_dir) / head).glob("*/*/k*-s*") if p.is_dir())


def prune_runs(specs: list[RunSpec], heads: list[str], results_dir: str, whole: bool) -> None:
    """Remove run folders of the swept heads that the grid no longer holds (within the swept pairs unless `whole`)."""
    wanted = {s.folder for s in specs}
    pairs = {(s.encode.dataset.name, s.pair) for s in specs}
    for head in heads:
        for folder in run_folders(results_dir, head):
            if folder not in wanted and (whole or (folder.parent.parent.name, folder.parent.name) in pairs):
                log.info("pruning %s: not in the grid", folder)
                shutil.rmtree(folder)


def write_head_metrics(specs: list[RunSpec], path: Path) -> None:
    """<data set> -> <pair> -> k<K>-s<seed> -> scalars, of the complete runs of one head (`dvc metrics show`, `dvc exp
    show`), each read from a metrics.json that matches the checksum its run.json records; a trained head's runs add
    the final metrics of their DVCLive summary."""
    tree: dict[str, Any] = {}
    for spec in specs:
        metrics_file = spec.folder / METRICS
        if verified_record(spec.folder) is None:  # absent, or damaged since: its numbers are not published
            continue
        scalars = json.loads(metrics_file.read_text())
        tree.setdefault(spec.encode.dataset.name, {}).setdefault(spec.pair, {})[spec.folder.name] = {
            **{k: scalars[k] for k in ("top1", "mean_per_class_accuracy", "ece") if k in scalars},
            **training_finals(spec.folder / CURVES_SUMMARY)}
    write_json_atomic(path, tree)


def training_finals(path: Path) -> dict[str, Any]:
    """kept_epoch, kept_val_acc (the epoch shipped, its validation accuracy) and final_train_loss from a trained
    head's DVCLive summary (already checked against its run.json); nothing where there is none."""
    if not path.is_file():
        return {}
    summary = json.loads(path.read_text())
    kept = summary.get("kept") or {}
    found = {"kept_epoch": kept.get("epoch"), "kept_val_acc": kept.get("val_acc"),
             "final_train_loss": summary.get("train_loss")}
    return {k: v for k, v in found.items() if v is not None}


# `clipcache status`: where every run of the grid stands (done, pending, stale, damaged, not encoded), per head and
# data set, from fingerprints and run records, without fitting anything
STATES = ("done", "pending", "stale", "damaged", "not encoded")
NAMES = {"absent": "pending"}  # run_state's name -> the column's


def sweep_status(params_path: str | Path, overrides: list[str], heads: list[str] | None = None,
                 dataset: str | list[str] | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """One row per (head, data set): {'head', 'dataset', and a count per state of STATES}."""
    params = apply_overrides(load_params(params_path), overrides)
    train = train_params(params.get("train"))
    names = list(heads or train.heads)
    check_head_names(names)
    pairs = grid_pairs(params, dataset, model)
    specs = plan_runs(pairs, names, {n: head_section(params, n) for n in names}, results_dir(params), "cpu",
                      train.protocol, transductive_params(params.get("transductive")),
                      transfer_of(params, pairs, train))
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for spec in specs:
        state = spec_state(spec)[0]
        head = spec.head + (f"+{spec.method}" if spec.method else "")
        counts[(head, spec.encode.dataset.name)][NAMES.get(state, state)] += 1
    return [{"head": head, "dataset": name, **{s: counts[(head, name)][s] for s in STATES}}
            for head, name in sorted(counts)]


def status_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table."""
    header = ["head", "data set", *STATES]
    lines = [[str(r["head"]), str(r["dataset"]), *(str(r[s]) for s in STATES)] for r in rows]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *lines])
