"""The encode stage from a params file: what both `clipcache encode` and stages/encode.py call."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.encode.plan import cache_folder
from pipeline.encode.run import EncodeReport, run_encode
from pipeline.engine import CLUSTER_KEYS, ClusterParams, cluster_params
from pipeline.errors import Interrupted
from pipeline.grid import check_pairs, grid_pairs
from pipeline.params import EncodeParams, RuntimeParams, apply_overrides, load_params, runtime_params, runtime_section

log = logging.getLogger(__name__)


def encode_pair(pair: EncodeParams, settings: RuntimeParams, cluster: ClusterParams) -> EncodeReport:
    """One (data set, model) pair, in this process or one task per shard on the engine's workers."""
    if cluster.cluster == "none":
        return run_encode(pair, settings)
    from pipeline.encode.distributed import run_encode_distributed

    return run_encode_distributed(pair, settings, cluster)


def encode_from_params(params_path: str | Path, overrides: list[str], runtime: dict[str, Any],
                       dataset: str | list[str] | None = None, model: str | None = None) -> list[EncodeReport]:
    """Encode every (data set, model) pair of the grid (or those chosen); complete files are kept as they are."""
    params = apply_overrides(load_params(params_path), overrides)
    section = runtime_section(params, runtime)
    settings = runtime_params(section)
    cluster = cluster_params({k: section[k] for k in CLUSTER_KEYS if k in section})
    reports: list[EncodeReport] = []
    pairs = grid_pairs(params, dataset, model)
    check_pairs(pairs)
    for pair in pairs:
        try:
            log.info("encoding %s with %s (%s)", pair.dataset.name, pair.model.name, pair.model.pretrained)
            report = encode_pair(pair, settings, cluster)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted while encoding {pair.dataset.name} with {pair.model.name} "
                              f"({pair.model.pretrained}): {len(reports)} of {len(pairs)} (data set, model) pair(s) "
                              f"done; every complete file and shard in {cache_folder(pair)} is kept (the shard being "
                              "written is not); run the same command to resume from there") from None
        for path, status in report.files.items():
            log.info("%-10s %s", status, path)
        rate = report.forwards / report.seconds if report.seconds else 0.0
        log.info("encoded %d images (%d tensors with views) in %.1f s: %.1f tensors/s",
                 report.images, report.forwards, report.seconds, rate)
        reports.append(report)
    return reports
