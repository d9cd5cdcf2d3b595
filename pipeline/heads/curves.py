"""A trained head's training curves, written with DVCLive (DVC's own logger) into its run folder.

What `write_curves` writes into `<run folder>/dvclive/` (DVCLive's layout, so that `dvc plots show <that folder>/plots
/metrics` and the report read it as it is):
```
plots/metrics/train_loss.tsv   step (the epoch, 1-based) and the epoch's mean minibatch loss
plots/metrics/val_acc.tsv      step and the validation accuracy of the epochs the head validated (every epoch when
                               it keeps the best on validation; the last one when it keeps the last; none
                               validation-free)
plots/metrics/lr.tsv           step and the learning rate of the epoch's last step (the first parameter group)
metrics.json                   DVCLive's summary: the last value of each curve and `step` (the last epoch), `kept`
                               (the epoch shipped and its val accuracy) and `test` (top1, mean_per_class_accuracy,
                               ece) when the run was scored
```
The curves come from the head's `history` (one record per epoch: the shared loop's, and CLAP's, CLIP-LoRA's and
ProLIP's own loops), after the fit: writing them changes no number a run computes. A head that trains nothing has no
history and gets no folder.

DVCLive is used as a file writer and nothing else. Its `Live` looks for a DVC repository from the working directory
when it starts (and runs `dvc init` in a Git repository that has none), names an experiment, posts to DVC Studio when
a token is in the environment, writes VS Code signal files into the repository's .dvc/tmp at each `next_step`, and
inside `dvc exp run` adds its folder to Git at `end`. A run executes in a worker, in parallel with others, inside a
temporary folder, under `dvc repro` or `dvc exp run`: `FilesOnlyLive` switches the repository and Studio hook-ups off
(whatever DVC_ROOT, DVC_EXP_*, DVC_STUDIO_*, STUDIO_TOKEN or DVCLIVE_TEST say), and only `step`, `log_metric` and
`make_summary` are called (never `next_step`, `sync` or `end`). No network, no account, nothing written outside the
folder.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from dvclive import Live

CURVE_NAMES = ("train_loss", "val_acc", "lr")  # the per-epoch metrics, as named in a head's history
TEST_METRICS = ("top1", "mean_per_class_accuracy", "ece")  # the run's test scalars copied into the summary


class FilesOnlyLive(Live):
    """DVCLive's `Live` without its repository, experiment and Studio hook-ups: it writes its files, nothing else."""

    def _init_dvc(self) -> None:
        """Instead of finding (or creating) a DVC repository and naming an experiment: nothing (`dvcyaml=None`: no
        dvc.yaml is written)."""
        self._dvc_file = os.path.join(self.dir, "dvc.yaml")

    _init_test = _init_dvc  # DVCLIVE_TEST=1 would move the files to a temporary folder of its own

    def _init_studio(self) -> None:
        """Instead of reading a Studio token and posting a 'start' event: every Studio event skipped."""
        self._studio_events_to_skip |= {"start", "data", "done"}


def finite(value: Any) -> float | None:
    """A number of a record as a float; None when absent or not finite (DVCLive would write it as a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def write_curves(folder: Path, history: list[dict[str, Any]], selected: dict[str, Any],
                 test: dict[str, Any] | None = None) -> Path | None:
    """Log each epoch of `history` (step = its epoch) and the final metrics into `folder` with DVCLive.

    Args:
        folder: the DVCLive folder (inside a run's temporary folder); created.
        history: the head's per-epoch records ('epoch', 'train_loss', 'val_acc' and 'lr' where present).
        selected: the head's selection ('epoch' kept, its 'val_acc').
        test: the run's test metrics, when it was scored.

    Returns:
        The folder, or None when the history is empty (a head that trains nothing writes no curves).
    """
    if not history:
        return None
    live = FilesOnlyLive(str(folder), save_dvc_exp=False, dvcyaml=None, report=None, monitor_system=False)
    for record in history:
        live.step = int(record["epoch"])
        for name in CURVE_NAMES:
            value = finite(record.get(name))
            if value is not None:
                live.log_metric(name, value)
    epoch = selected.get("epoch")
    finals = {"kept/epoch": epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
              "kept/val_acc": finite(selected.get("val_acc")),
              **{f"test/{k}": finite((test or {}).get(k)) for k in TEST_METRICS}}
    for name, value in finals.items():
        if value is not None:
            live.log_metric(name, value, plot=False)  # the summary only: metrics.json {"kept": {...}, "test": {...}}
    live.step = int(history[-1]["epoch"])
    live.make_summary()
    return folder
