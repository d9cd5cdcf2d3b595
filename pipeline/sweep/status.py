"""`clipcache status`: where every run of the grid stands, without fitting anything.

Per head and data set, the runs that are done (their folder holds this fingerprint, every file intact), pending (no
folder yet), stale (the folder holds another fingerprint: a parameter, the cache or the code changed), damaged (this
fingerprint, but a file is missing or fails its checksum) and not encoded (a cache file the run reads is missing).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pipeline.errors import ClipCacheError
from pipeline.grid import grid_pairs
from pipeline.head_names import check_head_names
from pipeline.heads.registry import head_section
from pipeline.params import apply_overrides, load_params, results_dir, train_params, transductive_params
from pipeline.store.provenance import fingerprint
from pipeline.sweep.plan import plan_runs
from pipeline.sweep.record import run_state

STATES = ("done", "pending", "stale", "damaged", "not encoded")
NAMES = {"absent": "pending"}  # run_state's name -> the column's


def sweep_status(params_path: str | Path, overrides: list[str], heads: list[str] | None = None,
                 dataset: str | list[str] | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """One row per (head, data set): {'head', 'dataset', and a count per state of STATES}."""
    params = apply_overrides(load_params(params_path), overrides)
    train = train_params(params.get("train"))
    names = list(heads or train.heads)
    check_head_names(names)
    specs = plan_runs(grid_pairs(params, dataset, model), names, {n: head_section(params, n) for n in names},
                      results_dir(params), "cpu", train.protocol, transductive_params(params.get("transductive")))
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for spec in specs:
        try:
            digest = fingerprint(spec.inputs())
        except ClipCacheError:
            state = "not encoded"
        else:
            state, _ = run_state(spec.folder, digest)
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
