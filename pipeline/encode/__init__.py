"""Stage 1 in the library: plan the cache files of a run and fill them.

Exports resolve lazily: importing the package imports no encoder. Its params sections live in pipeline/params.py.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "EncodeReport": "pipeline.encode.run", "run_encode": "pipeline.encode.run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipeline.encode' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
