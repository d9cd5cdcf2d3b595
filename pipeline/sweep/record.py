"""A run folder's record (run.json), written last, and whether the folder can be trusted as a finished run.

A folder holds a finished run only when its run.json is readable, records the run's fingerprint, and every file it
records a checksum of still has that checksum. A sweep skips nothing else: a damaged run is fitted again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pipeline.digest import file_checksum
from pipeline.layout import EVALUATION, HEAD_META, HEAD_WEIGHTS, METRICS, RUN_RECORD
from pipeline.store.atomic import OLD_PREFIX, TMP_PREFIX
from pipeline.store.integrity import memo_key, remember, remembered

REQUIRED = (HEAD_META, HEAD_WEIGHTS, EVALUATION, METRICS)  # the files a finished run holds, each checksummed
MEMO_BYTES = 1 << 20  # files at least this large (a head's weights) are verified once, then remembered


def folder_checksums(folder: Path) -> dict[str, str]:
    """The checksum of every file under a run's folder, by its path relative to it ('dvclive/metrics.json')."""
    return {path.relative_to(folder).as_posix(): file_checksum(path) for path in sorted(folder.rglob("*"))
            if path.is_file()}


def read_run_record(folder: Path) -> dict[str, Any] | None:
    """The run.json of a run folder, or None when the folder holds no complete run."""
    try:
        record = json.loads((folder / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def matches(path: Path, checksum: str) -> bool:
    """Whether a file has the checksum recorded for it; large files through the verified-files memo (by path, size,
    modification time and checksum), small ones read every time. OSError when the file cannot be read."""
    large = path.stat().st_size >= MEMO_BYTES
    key = memo_key(path, checksum)
    if large and remembered(key):
        return True
    ok = file_checksum(path) == checksum
    if ok and large:
        remember(key)
    return ok


def damage(folder: Path, record: dict[str, Any]) -> str | None:
    """Why the files of a run folder (its run.json `record`) cannot be trusted, or None when every one matches."""
    recorded = record.get("checksums")
    if not isinstance(recorded, dict):
        return f"{RUN_RECORD} records no checksums"
    missing = [name for name in REQUIRED if name not in recorded]
    if missing:
        return f"{RUN_RECORD} records no checksum of {missing[0]}"
    for name, checksum in sorted(recorded.items()):
        try:
            if not isinstance(checksum, str) or not matches(folder / name, checksum):
                return f"{name} does not match the checksum in {RUN_RECORD}"
        except OSError as exc:
            return f"{name} cannot be read ({exc.strerror or exc})"
    return None


def run_state(folder: Path, digest: str) -> tuple[str, str]:
    """(state, why) of a run folder for the run of fingerprint `digest`: ('done', ''), ('absent', ''), ('stale', '')
    when it holds another fingerprint, or ('damaged', what is wrong) when it holds this one but cannot be trusted."""
    record = read_run_record(folder)
    if record is None:
        return ("damaged", f"{RUN_RECORD} is missing or unreadable") if folder.is_dir() else ("absent", "")
    if record.get("fingerprint") != digest:
        return "stale", ""
    why = damage(folder, record)
    return ("damaged", why) if why else ("done", "")


def verified_record(folder: Path) -> dict[str, Any] | None:
    """The run.json of a run folder whose every recorded file matches its checksum, or None."""
    record = read_run_record(folder)
    return record if record is not None and damage(folder, record) is None else None


def remove_leftovers(folders: set[Path]) -> None:
    """Delete the temporaries and set-aside folders that killed runs left in these run folders' parents; call it
    only when no run of this sweep is in flight."""
    for parent in {folder.parent for folder in folders}:
        if parent.is_dir():
            for stray in parent.iterdir():
                if stray.name.startswith((TMP_PREFIX, OLD_PREFIX)):
                    shutil.rmtree(stray, ignore_errors=True)
