"""The encode stage from a params file: what both `clipcache encode` and stages/encode.py call."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.encode.run import EncodeReport, run_encode
from pipeline.engine import CLUSTER_KEYS, cluster_params
from pipeline.grid import grid_pairs
from pipeline.params import apply_overrides, load_params, runtime_params, runtime_section

log = logging.getLogger(__name__)


def encode_from_params(params_path: str | Path, overrides: list[str], runtime: dict[str, Any],
                       dataset: str | list[str] | None = None, model: str | None = None) -> list[EncodeReport]:
    """Encode every (data set, model) pair of the grid (or those chosen); complete files are kept as they are."""
    params = apply_overrides(load_params(params_path), overrides)
    section = runtime_section(params, runtime)
    settings = runtime_params(section)
    cluster = cluster_params({k: section[k] for k in CLUSTER_KEYS if k in section})
    reports = []
    for pair in grid_pairs(params, dataset, model):
        log.info("encoding %s with %s (%s)", pair.dataset.name, pair.model.name, pair.model.pretrained)
        if cluster.cluster == "none":
            report = run_encode(pair, settings)
        else:  # one task per shard on the engine's workers
            from pipeline.encode.distributed import run_encode_distributed

            report = run_encode_distributed(pair, settings, cluster)
        for path, status in report.files.items():
            log.info("%-10s %s", status, path)
        rate = report.forwards / report.seconds if report.seconds else 0.0
        log.info("encoded %d images (%d tensors with views) in %.1f s: %.1f tensors/s",
                 report.images, report.forwards, report.seconds, rate)
        reports.append(report)
    return reports
