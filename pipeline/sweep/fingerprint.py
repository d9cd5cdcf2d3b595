"""What a run depends on, hashed: the cache files' fingerprints, the head and its full params, shots, seed, code.

Two runs with the same fingerprint compute the same thing, so a sweep skips a run whose folder already holds it.
Runtime settings (device, engine, workers) are not part of it: they change where a run executes, not its result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.head_names import HEAD_MODULES
from pipeline.head_params import build_params
from pipeline.layout import TEXT_FILE
from pipeline.params import as_dict
from pipeline.store import FeatureSplit, TextFeatures
from pipeline.store.provenance import fingerprint
from pipeline.sweep.code import code_fingerprint

RUN_MODULE = "pipeline.sweep.execute"  # the code that fits, scores and writes a run


_SEEN: dict[tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime) -> fingerprint, for this process


def file_fingerprint(path: Path) -> str:
    """The stored fingerprint of a complete cache file (checked on open), read once per process while the file is
    the same (inode, size and modification time): a sweep plans hundreds of runs over a few dozen files."""
    try:
        stat = path.stat()
    except OSError:
        stat = None  # opening it below names the problem
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns) if stat else None
    if key is None or key not in _SEEN:
        opened = TextFeatures(path) if path.name == TEXT_FILE else FeatureSplit(path)
        if key is None:
            return fingerprint(opened.provenance)
        _SEEN[key] = fingerprint(opened.provenance)
    return _SEEN[key]


def run_inputs(head: str, head_params: dict[str, Any], shots: int, seed: int, files: dict[str, str],
               protocol: str = "all", transductive: dict[str, Any] | None = None) -> dict[str, Any]:
    """The canonical inputs of a run: head params with every default filled in, the protocol (when not 'all'), the
    transductive scoring and its full params (when asked for), and the code they run."""
    params = as_dict(build_params(head, head_params))
    inputs = {"head": head, "params": params, "shots": shots, "seed": seed, "cache": dict(sorted(files.items())),
              "code": code_fingerprint(HEAD_MODULES.get(head, head), RUN_MODULE)}
    if transductive is not None:
        inputs["transductive"] = transductive
    return inputs if protocol == "all" else {**inputs, "protocol": protocol}
