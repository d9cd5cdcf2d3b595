"""The encode stage from a params file: what both `clipcache encode` and stages/encode.py call."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.encode.config import encode_params, runtime_params
from pipeline.encode.run import EncodeReport, run_encode
from pipeline.params import apply_overrides, load_params

log = logging.getLogger(__name__)


def encode_from_params(params_path: str | Path, overrides: list[str], runtime: dict[str, Any]) -> EncodeReport:
    """Read params.yaml's `encode` and `runtime` sections, apply overrides, run stage 1 and log what it did."""
    params = apply_overrides(load_params(params_path), overrides)
    settings = {**(params.get("runtime") or {}), **{k: v for k, v in runtime.items() if v is not None}}
    report = run_encode(encode_params(params.get("encode")), runtime_params(settings))
    for path, status in report.files.items():
        log.info("%-10s %s", status, path)
    rate = report.forwards / report.seconds if report.seconds else 0.0
    log.info("encoded %d images (%d tensors with views) in %.1f s: %.1f tensors/s",
             report.images, report.forwards, report.seconds, rate)
    return report
