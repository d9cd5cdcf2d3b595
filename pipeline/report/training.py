"""The report's training curves: the DVCLive files (dvclive/) that trained heads' runs hold, for the runs
`evaluate.curves` chooses; a figure, a table of what was drawn, and copies for `dvc plots show`.

A run's curves are `<run folder>/dvclive/plots/metrics/{train_loss,val_acc,lr}.tsv` (columns step, <metric>; step =
epoch) and its DVCLive summary `dvclive/metrics.json`, written by pipeline/heads/curves.py (not imported: the report
imports no model code). Every file is checked against the checksum its run's run.json records before it is read.
The runs are those of the evaluation records (load.py); a run's id is its folder under the results folder,
`<head>/<data set>/<model>__<pretrained>/k<K>-s<seed>[-suffix]`, and `evaluate.curves` names runs by id, with '*' and
'?' as in file names, or 'auto': one run of each trained head (its largest shot count, first seed, first data set
and model; transductive runs left out: they train as their head's own run does).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from pipeline.errors import ClipCacheError
from pipeline.report.document import Plot, Section
from pipeline.report.load import Run, check_recorded_checksum
from pipeline.report.tables import Table
from pipeline.report.training_figure import training_figure

CURVES = "dvclive"  # a run's DVCLive folder (pipeline.layout.CURVES)
METRICS_DIR = ("plots", "metrics")  # DVCLive's folder of per-step TSVs, inside it
SUMMARY = "metrics.json"  # DVCLive's summary, inside it
CURVE_NAMES = ("train_loss", "val_acc", "lr")  # pipeline.heads.curves.CURVE_NAMES
AUTO = "auto"
MAX_RUNS = 24  # lines one figure can tell apart; more chosen is an error naming the setting
COPIES = "training"  # <report>/training/<run id>/<metric>.tsv: what dvc.yaml's training_curves plot reads


@dataclass(frozen=True)
class Curves:
    """The curves of one run: (epoch, value) points per metric, and its DVCLive summary."""

    run_id: str
    run: Run
    points: dict[str, list[tuple[int, float]]]  # metric -> [(epoch, value)], by epoch
    summary: dict[str, object]


def curves_folder(run: Run) -> Path:
    return run.source.parent / CURVES


def run_id(run: Run, results: Path) -> str:
    """A run's folder under the results folder, '/'-separated (its folder's name when it lies elsewhere)."""
    folder = run.source.parent
    return folder.relative_to(results).as_posix() if folder.is_relative_to(results) else folder.name


def choose(runs: list[Run], results: Path, patterns: tuple[str, ...]) -> list[tuple[str, Run]]:
    """The (id, run) pairs `patterns` choose among the runs with curves, in id order; a pattern that matches none is
    one line naming it and some ids that exist."""
    trained = {run_id(r, results): r for r in runs if curves_folder(r).is_dir()}
    chosen: dict[str, Run] = {}
    for pattern in patterns:
        if pattern == AUTO:
            chosen |= {run_id(r, results): r for r in auto_choice(list(trained.values()))}
            continue
        found = {key: run for key, run in trained.items() if fnmatchcase(key, pattern)}
        if not found:
            examples = ", ".join(sorted(trained)[:3]) + (f" (and {len(trained) - 3} more)" if len(trained) > 3 else "")
            raise ClipCacheError(f"evaluate.curves: {pattern!r} matches no run with training curves under "
                                 f"{str(results)!r}; " + (f"runs that have them: {examples}" if trained else
                                                          "no run has them (only trained heads write dvclive/)"))
        chosen |= found
    if len(chosen) > MAX_RUNS:
        raise ClipCacheError(f"evaluate.curves chooses {len(chosen)} runs; the report draws at most {MAX_RUNS}: name "
                             "fewer (e.g. one data set, one shot count, one seed)")
    return sorted(chosen.items())


def auto_choice(trained: list[Run]) -> list[Run]:
    """One run of each head label: its largest shot count, first seed, first data set and model."""
    inductive = [r for r in trained if not r.transductive]
    return [min((r for r in inductive if r.head == head),
                key=lambda r: (-r.shots, r.seed, r.dataset, r.model, r.pretrained, r.protocol))
            for head in sorted({r.head for r in inductive})]


def read_points(path: Path, name: str, run_folder: Path) -> list[tuple[int, float]]:
    """[(step, value)] of one DVCLive TSV, checked: its recorded checksum, its header, integer steps, numbers."""
    check_recorded_checksum(path, run_folder)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        points = [(int(row["step"]), float(row[name])) for row in rows]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ClipCacheError(f"{path}: not a readable DVCLive TSV file ({exc})") from exc
    except (KeyError, TypeError, ValueError):
        raise ClipCacheError(f"{path}: not DVCLive's columns step and {name} with a number on every row") from None
    if not points or any(not math.isfinite(value) for _, value in points):
        raise ClipCacheError(f"{path}: holds no points, or a value that is not a finite number")
    return sorted(points)


def read_curves(key: str, run: Run) -> Curves:
    """A run's curves and summary (train_loss must be there; val_acc and lr where the run logged them)."""
    folder = curves_folder(run)
    metrics = folder.joinpath(*METRICS_DIR)
    points = {name: read_points(metrics / f"{name}.tsv", name, run.source.parent) for name in CURVE_NAMES
              if name == "train_loss" or (metrics / f"{name}.tsv").is_file()}
    summary_path = folder / SUMMARY
    check_recorded_checksum(summary_path, run.source.parent)
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ClipCacheError(f"{summary_path}: not a readable DVCLive summary ({exc})") from None
    return Curves(key, run, points, summary if isinstance(summary, dict) else {})


def summary_table(curves: list[Curves]) -> Table:
    """What each drawn run logged: its points per curve, the epoch kept and its validation accuracy."""
    rows = []
    for item in curves:
        kept = item.summary.get("kept")
        kept = kept if isinstance(kept, dict) else {}
        val = kept.get("val_acc")
        rows.append([item.run_id, *(str(len(item.points.get(name, []))) for name in CURVE_NAMES),
                     str(kept.get("epoch", "—")), f"{100 * val:.1f}" if isinstance(val, int | float) else "—",
                     f"{item.points['train_loss'][-1][1]:.4f}"])
    return Table("Training curves: the runs drawn", "points per curve (one per epoch logged; val acc at the epochs "
                 "the head validated), read from each run's dvclive/ folder (DVCLive)",
                 ["run", "train loss points", "val acc points", "lr points", "epoch kept", "val acc kept (%)",
                  "last train loss"], rows)


def copy_for_dvc(curves: list[Curves], out: Path) -> list[Path]:
    """<out>/training/<run id>/<metric>.tsv: the chosen runs' DVCLive files byte for byte (dvc.yaml's plot reads
    them); a previous report's copies are removed first, and the folder is there even when empty (the plot names
    it)."""
    shutil.rmtree(out / COPIES, ignore_errors=True)
    (out / COPIES).mkdir(parents=True)
    written = []
    for item in curves:
        source = curves_folder(item.run).joinpath(*METRICS_DIR)
        for name in item.points:
            target = out / COPIES / item.run_id / f"{name}.tsv"
            target.parent.mkdir(parents=True, exist_ok=True)
            written.append(Path(shutil.copyfile(source / f"{name}.tsv", target)))
    return written


def chosen_curves(runs: list[Run], results: Path, patterns: tuple[str, ...]) -> list[Curves]:
    """The curves of the runs `patterns` (evaluate.curves) choose, read and checked."""
    return [read_curves(key, run) for key, run in choose(runs, results, patterns)]


def training_section(chosen: list[Curves], figures: Path, out: Path) -> tuple[Section, list[Path]]:
    """The 'Training curves' section of the chosen runs (empty when none is) and the TSV copies written."""
    copies = copy_for_dvc(chosen, out)
    section = Section("Training curves")
    if not chosen:
        return section, copies
    path = training_figure([(c.run_id, c.run.head, c.points) for c in chosen], figures / "training_curves.png")
    section.figures.append(Plot(path, f"Train loss, validation accuracy and learning rate against epoch, "
                                      f"{len(chosen)} run(s) chosen by evaluate.curves"))
    section.tables.append(summary_table(chosen))
    return section, copies
