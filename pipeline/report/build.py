"""`build_report`: every table, CSV and figure of the report, rebuilt from the evaluation JSONs alone.

Outputs under the report folder: table.md, index.html, runs.csv, summary.csv, accuracy_by_shots.csv, curves/*.csv
(see csvs.py), published_vs_ours.csv (the papers' numbers beside ours, published.py), transfer.csv (transfer.py) and
figures/*.png:
- accuracy_vs_shots__<model>__<pretrained>.png: one small plot per data set;
- accuracy_vs_shots_average__<model>__<pretrained>.png: the Average over data sets;
- confusion__<dataset>__<model>__<pretrained>__<head>__k<shots>.png: per head at its largest shot count, the mean
  over seeds;
- attention__<dataset>__<model>__<pretrained>__<head>__k<shots>-s<seed>.png: heads that recorded attention, at
  their largest shot count, first seed;
- training_curves.png: loss, val accuracy and lr against epoch of the runs `evaluate.curves` chooses (training.py),
  whose DVCLive files are copied to training/<run id>/<metric>.tsv for `dvc plots show`.
Figures and curves of a previous report in the same folder are removed first.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from pipeline.errors import ClipCacheError
from pipeline.report.aggregate import (
    METRICS,
    RANDOM_WARNING,
    GroupKey,
    ModelKey,
    by_group,
    by_model,
    cell_summaries,
    heading,
    model_average,
)
from pipeline.report.attention import attention_figure
from pipeline.report.confusion import LABELLED_CLASSES, confused_pairs, confusion_figure
from pipeline.report.csvs import write_csvs, write_rows
from pipeline.report.document import Document, Plot, Section, markdown_document
from pipeline.report.figures import accuracy_grid, average_curves
from pipeline.report.html import html_document
from pipeline.report.load import Run, load_runs, read_confusion
from pipeline.report.names import slug
from pipeline.report.novel import novel_tables, split_protocols
from pipeline.report.published import comparison_table
from pipeline.report.published_transfer import transfer_comparison
from pipeline.report.ranks import rank_section
from pipeline.report.styles import LineStyle, head_styles
from pipeline.report.tables import Table, metric_tables, shots_label
from pipeline.report.training import Curves, chosen_curves, training_section
from pipeline.report.transfer import TRANSFER_FIELDS, split_transfer, transfer_rows, transfer_tables

log = logging.getLogger(__name__)
SECTION_TITLES = {"top1": "Top-1 accuracy (%)", "mean_per_class_accuracy": "Mean per-class accuracy (%)",
                  "ece": "Expected calibration error, ECE (%, lower is better)"}


def write_table_csv(table: Table, path: Path) -> Path:
    """One report table as CSV (header, rows)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(table.header)
        writer.writerows(table.rows)
    return path


def clean(out: Path) -> Path:
    """Create out/figures and out/curves, emptied of a previous report's PNGs and CSVs; return the figures folder."""
    for folder, pattern in ((out / "figures", "*.png"), (out / "curves", "*.csv")):
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(pattern):
            stale.unlink()
    return out / "figures"


def curve_plots(models: dict[ModelKey, dict[str, list[Run]]], styles: dict[str, LineStyle], folder: Path) -> list[Plot]:
    """Per (model, pretrained): the grid of per-data-set curves and the Average curve."""
    plots = []
    for key, by_dataset in models.items():
        random_weights = any(r.random_weights for members in by_dataset.values() for r in members)
        title = heading(key, random_weights)
        per_dataset = {dataset: cell_summaries(members) for dataset, members in by_dataset.items()}
        path = accuracy_grid(per_dataset, f"top-1 (%) ± std over seeds — {title}", styles,
                             folder / f"accuracy_vs_shots__{slug(*key)}.png")
        plots.append(Plot(path, f"Top-1 versus shots per data set, {title}"))
        average = model_average(by_dataset)
        path = average_curves(average, f"Average over data sets — {title}", styles,
                              folder / f"accuracy_vs_shots_average__{slug(*key)}.png")
        plots.append(Plot(path, f"Top-1 versus shots, mean over {', '.join(average.datasets)}, {title}"))
    return plots


def pairs_table(matrix: np.ndarray, run: Run, title: str) -> Table:
    """The most confused class pairs of a confusion matrix (the mean over seeds)."""
    rows = [[true, predicted, f"{count:g}" if count.is_integer() else f"{count:.1f}", f"{100 * rate:.1f}"]
            for true, predicted, count, rate in confused_pairs(matrix, run.classnames)]
    return Table(title, f"most confused class pairs ({len(run.classnames)} classes, images per seed: the mean over "
                 "seeds)", ["true class", "predicted as", "images per seed", "% of the true class"], rows)


def confusion_section(groups: dict[GroupKey, list[Run]], folder: Path) -> Section:
    """Per group and head, the confusion at its largest shot count, the mean over seeds; pair lists for many
    classes."""
    section = Section("Confusion matrices")
    for key, members in groups.items():
        for head in sorted({r.head for r in members}):
            shots = max(r.shots for r in members if r.head == head)
            chosen = [r for r in members if r.head == head and r.shots == shots]
            matrix = np.mean([read_confusion(r) for r in chosen], axis=0)  # [S, C, C] -> [C, C] images per seed
            title = f"{head}, {shots_label(shots)}, {len(chosen)} seed(s) — {heading(key, chosen[0].random_weights)}"
            path = confusion_figure(matrix, chosen[0].classnames, title,
                                    folder / f"confusion__{slug(*key)}__{slug(head)}__k{shots}.png")
            section.figures.append(Plot(path, f"Confusion (row-normalised), {title}"))
            if len(chosen[0].classnames) > LABELLED_CLASSES:
                section.tables.append(pairs_table(matrix, chosen[0], title))
    return section


def attention_section(groups: dict[GroupKey, list[Run]], folder: Path) -> Section:
    """Per group and head that recorded attention: its largest shot count, first seed."""
    section = Section("Attention maps")
    for key, members in groups.items():
        for head in sorted({r.head for r in members if r.attention}):
            run = max((r for r in members if r.head == head and r.attention), key=lambda r: (r.shots, -r.seed))
            title = f"{head}, {shots_label(run.shots)}, seed {run.seed} — {heading(key, run.random_weights)}"
            name = f"attention__{slug(*key)}__{slug(head)}__k{run.shots}-s{run.seed}.png"
            path = attention_figure(run.attention or [], run.classnames, title, run.source, folder / name)
            section.figures.append(Plot(path, f"Attention of the true and predicted class, {title}"))
    return section


def introduction(runs: list[Run], results_dir: Path) -> list[str]:
    """Where the numbers come from, and the random-weights warning when it applies."""
    datasets = ", ".join(sorted({r.dataset for r in runs}))
    models = ", ".join(sorted({f"{r.model} ({r.pretrained})" for r in runs}))
    lines = [(f"{len(runs)} runs read from {results_dir}: data sets {datasets}; models {models}. Tables are titled "
             "data set / model / pretrained weights; runs.csv lists every run with its head parameters.")]
    transductive = sorted({r.head for r in runs if r.transductive})
    if transductive:
        lines.append("Transductive rows (" + ", ".join(transductive) + "): each refines its head's test predictions "
                     "with the test split's image features (never its labels), so they are not comparable with "
                     "inductive rows as equals; the record keeps the head's own metrics beside them.")
    free = sorted({r.head for r in runs if r.protocol == "validation_free"})
    if free:
        lines.append("Validation-free rows (" + ", ".join(free) + "): fitted without reading a validation image, with "
                     "each head's authors' fixed choices (train.protocol: validation_free).")
    draws = sorted({r.draw for r in runs if r.draw})
    if draws:
        lines.append("Few-shot sets: " + "; ".join(draws) + " (dassl: the images Dassl's sampler draws for the seed, "
                     "as CoOp and Tip-Adapter; coop validation: min(K, 4) images per class; full: the whole val "
                     "split).")
    random_models = sorted({f"{r.model} ({r.pretrained})" for r in runs if r.random_weights})
    if random_models:
        lines.append(f"{RANDOM_WARNING}: {', '.join(random_models)}")
    return lines


def build_report(results_dir: str | Path, out_dir: str | Path, curves: tuple[str, ...] = ("auto",)) -> list[Path]:
    """Write the report of every evaluation.json under `results_dir` into `out_dir`, with the training curves of the
    runs `curves` chooses (evaluate.curves); a write that fails (a full disk, a read-only folder, the file-size
    limit) is one line naming the folder and the reason.

    Returns:
        The files written: table.md first, then index.html, the CSVs and the figures.
    """
    results, out = Path(results_dir), Path(out_dir)
    loaded = load_runs(results)
    chosen = chosen_curves(loaded, results, curves)  # a bad choice or a damaged curve stops before anything is written
    others, transfer = split_transfer(loaded)
    runs, novel = split_protocols(others)
    try:
        return write_report(runs, novel, transfer, results, out, chosen)
    except OSError as exc:
        where = exc.filename or out
        raise ClipCacheError(f"cannot write the report into {str(out)!r} ({where}): "
                             f"{exc.strerror or type(exc).__name__}; the results are untouched") from None


def write_report(runs: list[Run], novel: list[Run], transfer: list[Run], results: Path, out: Path,
                 curves: list[Curves]) -> list[Path]:
    """The report's files (see build_report)."""
    groups, models = by_group(runs), by_model(runs)
    folder = clean(out)
    styles = head_styles({r.head for r in runs})
    sections = [Section(SECTION_TITLES[m], metric_tables(groups, models, m)) for m in METRICS]
    sections[0].figures = curve_plots(models, styles, folder)
    published = comparison_table(groups)
    sections.insert(1, Section(published.title, [published]))
    sections.insert(2, rank_section(runs, folder))
    confusion = confusion_section(groups, folder)
    training, copies = training_section(curves, folder, out)
    sections += [Section("Most confused class pairs", confusion.tables),
                 Section(confusion.title, [], confusion.figures),
                 attention_section(groups, folder), training, Section("Base-to-novel", novel_tables(novel)),
                 Section("Transfer to other data sets",
                         [*transfer_tables(transfer), transfer_comparison(transfer)] if transfer else [])]
    document = Document("Results", introduction(runs + novel + transfer, results), sections)
    (out / "table.md").write_text(markdown_document(document), encoding="utf-8")
    (out / "index.html").write_text(html_document(document), encoding="utf-8")
    figures = [p.path for s in sections for p in s.figures]
    log.info("report of %d runs written to %s (%d figures)", len(runs), out, len(figures))
    return [out / "table.md", out / "index.html", *write_csvs(runs, groups, models, results, out),
            write_table_csv(published, out / "published_vs_ours.csv"),
            write_rows(out / "transfer.csv", TRANSFER_FIELDS, transfer_rows(transfer, results)), *figures, *copies]
