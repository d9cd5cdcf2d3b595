"""A run folder's record (run.json): written last, so a folder with a readable record holds a complete run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.layout import RUN_RECORD


def read_run_record(folder: Path) -> dict[str, Any] | None:
    """The run.json of a run folder, or None when the folder holds no complete run."""
    try:
        record = json.loads((folder / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
