"""Per-class descriptions (CuPL / APE's JSON: class name -> list of sentences, any number per class), read and matched
to a data set's classes before any model is built.

A file is matched by class name, underscores read as spaces on both sides (APE's `classname.replace('_', ' ')`);
a class without an entry, an entry with no sentence, an entry that names no class, a duplicate key, or anything other
than a list of non-empty strings is one line naming the file and the class.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ClipCacheError

MAX_BYTES = 256 * 1024 * 1024  # a description file larger than this is refused before it is read


@dataclass(frozen=True)
class Descriptions:
    """The sentences of every class of one data set, in class order."""

    file: str  # the file as named in encode.descriptions
    sentences: tuple[tuple[str, ...], ...]  # per class

    @property
    def counts(self) -> list[int]:
        return [len(s) for s in self.sentences]

    def flat(self) -> list[str]:
        """Every sentence, class after class ([sum_c n_c])."""
        return [s for per_class in self.sentences for s in per_class]

    def record(self) -> dict[str, Any]:
        """What the text file's provenance keeps: the file's name, the sentences' hash and the counts per class."""
        digest = hashlib.sha256(json.dumps(self.sentences, ensure_ascii=False).encode("utf-8")).hexdigest()
        return {"file": Path(self.file).name, "sha256": digest, "counts": self.counts}


def _pairs(path: str, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ClipCacheError(f"descriptions file {path!r}: the key {repeated[0]!r} appears twice")
    return dict(pairs)


def read_file(path: str) -> dict[str, Any]:
    """The file's JSON object, read bounded; one line for a missing, huge or malformed file."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if not file.is_file():
            raise ClipCacheError(f"descriptions file {path!r} is not a regular file")
        if size > MAX_BYTES:
            raise ClipCacheError(f"descriptions file {path!r} holds {size} bytes, more than {MAX_BYTES}")
        data = json.loads(file.read_text(encoding="utf-8"), object_pairs_hook=lambda p: _pairs(path, p))
    except OSError as exc:
        raise ClipCacheError(f"descriptions file {path!r} cannot be read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClipCacheError(f"descriptions file {path!r} is not JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ClipCacheError(f"descriptions file {path!r} must hold an object of class name -> list of sentences")
    return data


def spaced(name: str) -> str:
    """A class name as matched: underscores read as spaces, on both sides (APE's `classname.replace('_', ' ')`)."""
    return name.replace("_", " ")


def load_descriptions(path: str, classnames: list[str], dataset: str) -> Descriptions:
    """The descriptions of every class of `dataset` (`classnames` in class order) from a CuPL / APE JSON file."""
    data = read_file(path)
    by_key = {spaced(name): name for name in classnames}
    found: dict[str, list[str]] = {}
    for key, sentences in data.items():
        if spaced(key) not in by_key:
            raise ClipCacheError(f"descriptions file {path!r}: {key!r} is no class of data set {dataset!r}")
        name = by_key[spaced(key)]
        if name in found:
            raise ClipCacheError(f"descriptions file {path!r}: class {name!r} has two entries")
        if not isinstance(sentences, list) or not all(isinstance(s, str) and s.strip() for s in sentences):
            raise ClipCacheError(f"descriptions file {path!r}: class {key!r} must be a list of non-empty sentences")
        if not sentences:
            raise ClipCacheError(f"descriptions file {path!r}: class {key!r} has no description")
        found[name] = sentences
    missing = [name for name in classnames if name not in found]
    if missing:
        raise ClipCacheError(f"descriptions file {path!r} has no descriptions of class {missing[0]!r} of data set "
                             f"{dataset!r} ({len(missing)} class(es) missing)")
    return Descriptions(path, tuple(tuple(found[name]) for name in classnames))
