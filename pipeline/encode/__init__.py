"""Stage 1 in the library: plan the cache files of a run and fill them.

Exports resolve lazily, so that stages which only locate the cache (train, evaluate) do not import the encoders.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "EncodeParams": "pipeline.encode.config", "RuntimeParams": "pipeline.encode.config",
    "encode_params": "pipeline.encode.config", "runtime_params": "pipeline.encode.config",
    "EncodeReport": "pipeline.encode.run", "run_encode": "pipeline.encode.run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipeline.encode' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
