"""`clipcache report`: tables and figures rebuilt from the evaluation JSON files alone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.evaluate.aggregate import groups, load_runs, markdown_table, title, write_csv
from pipeline.evaluate.plots import accuracy_vs_shots, attention_plot, confusion_plot


def slug(key: tuple[str, ...]) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "__".join(key)).strip("-")


def build_report(results_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write table.md, runs.csv and, per (data set, model, pretrained), the figures; return the files written."""
    runs = load_runs(results_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "table.md", out / "runs.csv"]
    (out / "table.md").write_text("# Results\n\n" + markdown_table(runs) + "\n## ECE\n\n" + markdown_table(runs, "ece"))
    write_csv(runs, out / "runs.csv")
    for key, members in groups(runs).items():
        heading = title(key, members)
        written.append(out / f"accuracy_vs_shots__{slug(key)}.png")
        accuracy_vs_shots(members, heading, written[-1])
        written += confusion_figures(members, heading, out, slug(key))
        written += attention_figures(members, heading, out, slug(key))
    return written


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
