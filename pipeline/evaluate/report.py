"""`clipcache report`: tables and figures rebuilt from the evaluation JSON files alone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.evaluate.aggregate import cell_stats, groups, load_runs, markdown_table, title, write_csv
from pipeline.evaluate.plots import accuracy_vs_shots, attention_plot, confusion_plot


def slug(key: tuple[str, ...]) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "__".join(key)).strip("-")


def build_report(results_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write table.md, runs.csv, accuracy_by_shots.csv and figures/ (per data set, model, pretrained); return them."""
    runs = load_runs(results_dir)
    out = Path(out_dir)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for stale in figures.glob("*.png"):
        stale.unlink()
    written = [out / "table.md", out / "runs.csv", out / "accuracy_by_shots.csv"]
    (out / "table.md").write_text("# Results\n\n" + markdown_table(runs) + "\n## ECE\n\n" + markdown_table(runs, "ece"))
    write_csv(runs, out / "runs.csv")
    write_curve(runs, out / "accuracy_by_shots.csv")
    for key, members in groups(runs).items():
        heading = title(key, members)
        written.append(figures / f"accuracy_vs_shots__{slug(key)}.png")
        accuracy_vs_shots(members, heading, written[-1])
        written += confusion_figures(members, heading, figures, slug(key))
        written += attention_figures(members, heading, figures, slug(key))
    return written


def write_curve(runs: list[dict[str, Any]], path: Path) -> None:
    """Long-form (head, shots, top1 mean, std, seeds) rows, for `dvc plots`."""
    stats = cell_stats(runs)
    lines = ["head,shots,top1,top1_std,seeds"] + [
        f"{head},{shots},{mean:.3f},{std:.3f},{n}" for (head, shots), (mean, std, n) in sorted(stats.items())]
    path.write_text("\n".join(lines) + "\n")


def confusion_figures(runs: list[dict[str, Any]], heading: str, out: Path, name: str) -> list[Path]:
    """Per head, the confusion matrix at its largest shot count, summed over seeds."""
    paths = []
    for head in sorted({r["head"] for r in runs}):
        shots = max(r["shots"] for r in runs if r["head"] == head)
        members = [r for r in runs if r["head"] == head and r["shots"] == shots]
        matrix = np.sum([np.asarray(r["metrics"]["confusion"]) for r in members], axis=0)
        paths.append(out / f"confusion__{name}__{head}__k{shots}.png")
        confusion_plot(matrix, members[0]["classnames"], f"{head}, {shots} shots, {len(members)} seed(s)\n{heading}", paths[-1])
    return paths


def attention_figures(runs: list[dict[str, Any]], heading: str, out: Path, name: str) -> list[Path]:
    """Attention maps of each head that recorded them, at its largest shot count, first seed."""
    paths = []
    for head in sorted({r["head"] for r in runs if r.get("attention")}):
        run = max((r for r in runs if r["head"] == head and r.get("attention")), key=lambda r: (r["shots"], -r["seed"]))
        paths.append(out / f"attention__{name}__{head}__k{run['shots']}-s{run['seed']}.png")
        attention_plot(run["attention"], run["classnames"], f"{head}, {run['shots']} shots, seed {run['seed']}\n{heading}",
                       paths[-1])
    return paths
