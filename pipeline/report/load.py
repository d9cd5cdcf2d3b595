"""Find and read evaluation JSONs: one `Run` per file, its fields checked; confusion matrices re-read on demand.

The folder layout is not relied upon: every `evaluation.json` under the results folder is a run, described by its
own fields. Confusion matrices ([C][C], up to 1000 classes) are not kept in memory with the runs: a figure reads the
few it needs again from the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.digest import file_checksum
from pipeline.errors import ClipCacheError

RUN_RECORD = "run.json"  # as pipeline.layout names it (not imported: the report imports no model or store code)
NUMBER = (int, float)
# the transductive methods a record may name (pipeline.transductive_params.TRANSDUCTIVE_METHODS)
TRANSDUCTIVE = ("transclip",)
TRANSFER = ("cross_dataset", "domain_generalisation")  # fitted on one data set, scored on others too
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "head": str, "shots": int, "seed": int, "dataset": str, "model": str, "pretrained": str, "random_weights": bool,
    "head_params": dict, "selected": dict, "classnames": list, "metrics": dict}
REQUIRED_METRICS: dict[str, type | tuple[type, ...]] = {
    "top1": NUMBER, "mean_per_class_accuracy": NUMBER, "ece": NUMBER, "n_test": int, "confusion": list}
ATTENTION_FIELDS: dict[str, type | tuple[type, ...]] = {
    "image": str, "true": int, "predicted": int, "attention_true": list, "attention_predicted": list}


@dataclass(frozen=True)
class Run:
    """The scalars and provenance of one evaluation.json (fit + evaluation of one head, shots, seed)."""

    source: Path  # the evaluation.json it was read from
    head: str
    shots: int
    seed: int
    dataset: str
    model: str
    pretrained: str
    random_weights: bool
    head_params: dict[str, Any]
    selected: dict[str, Any]
    classnames: list[str]
    metrics: dict[str, float]  # top1, mean_per_class_accuracy, ece: fractions in [0, 1]
    n_test: int
    attention: list[dict[str, Any]] | None  # test images with the attention grids of their true/predicted class
    protocol: str = "all"  # 'all', 'validation_free', or 'base_to_novel' (metrics: the base classes; base_to_novel:
    #                        base, novel, hm)
    base_to_novel: dict[str, Any] | None = None
    layout: str = ""  # the registered layout the data set was read with (its name when the record has none)
    transductive: str = ""  # 'transclip' for a run refined with the test features (its head reads <head>+transclip)
    draw: str = ""  # how its few-shot files were drawn: 'sampler, validation rule' ('' in records before it was kept)
    # cross_dataset / domain_generalisation: target -> its top-1 (a fraction), or None where the head does not apply
    transfer: dict[str, float | None] | None = None
    transfer_layouts: dict[str, str] | None = None  # target -> the layout it was read with (its name when unrecorded)


def find_results(results_dir: str | Path) -> list[Path]:
    """Every evaluation.json under `results_dir`, sorted; an error when there is none."""
    paths = sorted(Path(results_dir).rglob("evaluation.json"))
    if not paths:
        raise ClipCacheError(f"no evaluation.json under {str(results_dir)!r}; run `clipcache evaluate` first")
    return paths


def read_record(path: Path) -> dict[str, Any]:
    """The JSON object of one file, or an error naming the file (a sweep run's file is checked against the checksum
    its run.json records first, so that damage is called damage, with the advice that repairs it)."""
    check_recorded_checksum(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClipCacheError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(record, dict):
        raise ClipCacheError(f"{path}: an evaluation record must be a JSON object")
    return record


def check_recorded_checksum(path: Path, run_folder: Path | None = None) -> None:
    """A sweep run's run.json records the checksum of each of its files, by its path in the run's folder (default:
    the file's own folder): a changed or missing file is refused."""
    folder = run_folder or path.parent
    try:
        recorded = json.loads((folder / RUN_RECORD).read_text()).get("checksums") or {}
    except (OSError, ValueError, AttributeError):
        return  # a run of `clipcache evaluate`, or a run.json from before checksums: nothing recorded to compare
    name = path.relative_to(folder).as_posix()
    if name in recorded and (not path.is_file() or file_checksum(path) != recorded[name]):
        raise ClipCacheError(f"{path}: does not match the checksum in {folder / RUN_RECORD} (changed after "
                             "the run); run `clipcache verify` and sweep again")


def check_fields(record: dict[str, Any], fields: dict[str, type | tuple[type, ...]], path: Path, where: str) -> None:
    """Raise an error naming the file and the field when a field is missing or of the wrong type."""
    for name, kind in fields.items():
        if name not in record:
            raise ClipCacheError(f"{path}: missing field {where}{name}")
        value = record[name]
        wrong_bool = isinstance(value, bool) and kind is not bool
        if wrong_bool or not isinstance(value, kind):
            raise ClipCacheError(f"{path}: field {where}{name} has an unexpected value {str(value)[:40]!r}")


def parse_run(record: dict[str, Any], path: Path) -> Run:
    """A checked `Run` from one record (the confusion matrix is checked for presence, not kept)."""
    check_fields(record, REQUIRED, path, "")
    check_fields(record["metrics"], REQUIRED_METRICS, path, "metrics.")
    attention = record.get("attention")
    if attention is not None:
        if not isinstance(attention, list):
            raise ClipCacheError(f"{path}: field attention must be a list")
        for i, example in enumerate(attention):
            check_fields(example if isinstance(example, dict) else {}, ATTENTION_FIELDS, path, f"attention[{i}].")
    metrics = record["metrics"]
    method = transductive_method(record, path)
    protocol = str(record.get("protocol", "all"))
    label = record["head"] + (f"+{method}" if method else "") + ("+vfree" if protocol == "validation_free" else "")
    return Run(source=path, head=label, shots=record["shots"],
               seed=record["seed"],
               dataset=record["dataset"], model=record["model"], pretrained=record["pretrained"],
               random_weights=record["random_weights"], head_params=record["head_params"],
               selected=record["selected"], classnames=[str(c) for c in record["classnames"]],
               metrics={k: float(metrics[k]) for k in ("top1", "mean_per_class_accuracy", "ece")},
               n_test=metrics["n_test"], attention=attention or None, protocol=protocol,
               base_to_novel=base_to_novel(record, path), layout=str(record.get("layout") or record["dataset"]),
               transductive=method, draw=draw_label(record.get("draw")), transfer=transfer_scores(record, path),
               transfer_layouts=transfer_layouts(record))


def draw_label(draw: Any) -> str:
    """'dassl sampler, coop validation' from a record's `draw` (absent in records written before it was kept)."""
    if not isinstance(draw, dict):
        return ""
    return f"{draw.get('sampler', '?')} sampler, {draw.get('val_rule', '?')} validation"


def transductive_method(record: dict[str, Any], path: Path) -> str:
    """'' for a head's own predictions; the method of a transductive record, checked."""
    found = record.get("transductive")
    if found is None:
        return ""
    method = found.get("method") if isinstance(found, dict) else None
    if method not in TRANSDUCTIVE:
        raise ClipCacheError(f"{path}: field transductive.method has an unexpected value {str(method)[:40]!r}")
    return str(method)


def base_to_novel(record: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """The base / novel / hm accuracies of a base-to-novel record, checked; None for other protocols."""
    if record.get("protocol", "all") != "base_to_novel":
        return None
    found = record.get("base_to_novel")
    found = found if isinstance(found, dict) else {}
    check_fields(found, {"base": NUMBER, "novel": NUMBER, "hm": NUMBER}, path, "base_to_novel.")
    return dict(found)


def transfer_scores(record: dict[str, Any], path: Path) -> dict[str, float | None] | None:
    """Target -> top-1 of a transfer record, in its order (None: not applicable there), checked; None for other
    protocols."""
    if record.get("protocol") not in TRANSFER:
        return None
    found = record.get("transfer")
    targets = found.get("targets") if isinstance(found, dict) else None
    if not isinstance(targets, list) or not targets:
        raise ClipCacheError(f"{path}: field transfer.targets must list each target data set with its scores")
    out: dict[str, float | None] = {}
    for i, scores in enumerate(targets):
        scores = scores if isinstance(scores, dict) else {}
        check_fields(scores, {"dataset": str}, path, f"transfer.targets[{i}].")
        if "not_applicable" not in scores:
            check_fields(scores, {"top1": NUMBER}, path, f"transfer.targets[{i}].")
        out[scores["dataset"]] = None if "not_applicable" in scores else float(scores["top1"])
    return out


def transfer_layouts(record: dict[str, Any]) -> dict[str, str] | None:
    """Target -> its layout, of a transfer record already checked by `transfer_scores`."""
    if record.get("protocol") not in TRANSFER:
        return None
    return {t["dataset"]: str(t.get("layout") or t["dataset"]) for t in record["transfer"]["targets"]}


def load_runs(results_dir: str | Path) -> list[Run]:
    """Every run under `results_dir`, sorted by (dataset, model, pretrained, head, shots, seed)."""
    runs = [parse_run(read_record(path), path) for path in find_results(results_dir)]
    seen: dict[tuple[str, str, str, str, int, int, str], Path] = {}
    for run in runs:
        key = (run.dataset, run.model, run.pretrained, run.head, run.shots, run.seed, run.protocol)
        if key in seen:
            raise ClipCacheError(f"{run.source} and {seen[key]} both hold {run.head}, {run.shots} shots, seed "
                                 f"{run.seed} ({run.protocol}) on {run.dataset} / {run.model} / {run.pretrained}: "
                                 f"keep one")
        seen[key] = run.source
    return sorted(runs, key=lambda r: (r.dataset, r.model, r.pretrained, r.head, r.shots, r.seed))


def read_confusion(run: Run) -> np.ndarray:
    """The [C, C] confusion counts of a run (row = true class), read again from its file and checked."""
    matrix = np.asarray(read_record(run.source)["metrics"]["confusion"])
    n_classes = len(run.classnames)
    if matrix.shape != (n_classes, n_classes) or not np.issubdtype(matrix.dtype, np.integer):
        raise ClipCacheError(f"{run.source}: metrics.confusion must be {n_classes} x {n_classes} integer counts "
                             f"(one row per class name), got shape {matrix.shape}")
    return matrix
