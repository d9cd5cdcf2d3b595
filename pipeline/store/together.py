"""Files of one cache belong together: the same encoder, the same data set (names, labels, options), one schema.

Every file records its encoder and data-set provenance; a head reads several files at once (train, val, text, and at
evaluation test), and a file copied in from another build, another model config of the same name or another data
set must be refused by name rather than mixed in silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from pipeline.errors import ClipCacheError
from pipeline.store.provenance import fingerprint

SHARED = ("schema_version", "encoder", "dataset")  # provenance fields every file of one cache has in common


class Recorded(Protocol):
    path: Path
    provenance: dict[str, Any]


def first_difference(a: Any, b: Any, key: str) -> tuple[str, Any, Any] | None:
    """(dotted key, a's value, b's value) of the first leaf where two JSON-like values differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for sub in sorted(set(a) | set(b)):
            found = first_difference(a.get(sub, "<absent>"), b.get(sub, "<absent>"), f"{key}.{sub}")
            if found:
                return found
        return None
    same = json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
    return None if same else (key, a, b)


def short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_together(*files: Recorded) -> None:
    """Refuse, in one line naming both files and the field, any two files whose shared provenance differs."""
    first = files[0]
    for other in files[1:]:
        for name in SHARED:
            found = first_difference(first.provenance.get(name, "<absent>"), other.provenance.get(name, "<absent>"),
                                     name)
            if found:
                key, mine, theirs = found
                raise ClipCacheError(f"cache files {str(first.path)!r} and {str(other.path)!r} do not belong together: "
                                     f"{key} is {short(mine)} in the first, {short(theirs)} in the second")


def identity(provenance: dict[str, Any]) -> dict[str, str]:
    """Fingerprints of the shared fields of a file, as recorded by a fitted head (checked again at evaluation)."""
    return {name: fingerprint({name: provenance.get(name)}) for name in SHARED}


def check_identity(recorded: dict[str, str] | None, source: Path, file: Recorded,
                   fields: tuple[str, ...] = SHARED) -> None:
    """Refuse `file` unless its shared fields (or those named) have the fingerprints a head recorded in `source`
    (head.json)."""
    if not isinstance(recorded, dict):
        raise ClipCacheError(f"{str(source)!r} records no cache identity (fitted by an older clipcache): fit it again")
    mine = identity(file.provenance)
    for name in fields:
        if recorded.get(name) != mine[name]:
            raise ClipCacheError(f"{str(file.path)!r} does not belong with the head in {str(source)!r}: its {name} "
                                 f"differs from the one the head was fitted on (fingerprint {mine[name][:12]} != "
                                 f"{str(recorded.get(name))[:12]}); encode and fit again")


def check_encoder(recorded: dict[str, str] | None, source: Path, file: Recorded) -> None:
    """Refuse a file of another data set (a transfer target) unless the encoder and schema are those a head recorded
    in `source` (head.json): the same weights, preprocessing and code must have made both."""
    check_identity(recorded, source, file, ("schema_version", "encoder"))
