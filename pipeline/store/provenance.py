"""Provenance attributes: what a cache file holds and where it came from, stored as JSON in HDF5 attributes."""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py

import pipeline
from pipeline.errors import ClipCacheError

SCHEMA_VERSION = 2  # 2: every dataset's checksum in the `checksums` attribute (pipeline.store.integrity)
ATTR_PROVENANCE = "provenance"  # JSON: everything that determines the tensors (fingerprinted)
ATTR_BUILD = "build"  # JSON: how this copy was made (code commit, time, runtime settings); not fingerprinted
ATTR_FINGERPRINT = "fingerprint"  # sha256 of the canonical provenance JSON
ATTR_COMPLETE = "complete"  # True once every row is written


def canonical(provenance: dict[str, Any]) -> str:
    """Provenance as canonical JSON (sorted keys), the form that is stored and fingerprinted."""
    return json.dumps(provenance, sort_keys=True, default=str)


def fingerprint(provenance: dict[str, Any]) -> str:
    """sha256 of the canonical provenance."""
    return hashlib.sha256(canonical(provenance).encode()).hexdigest()


@functools.cache
def code_version() -> str:
    """Package version plus the git commit of the checkout it runs from, when there is one (once per process)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(pipeline.__file__).parent,
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{pipeline.__version__}+{commit}" if commit else pipeline.__version__


def build_info(runtime: dict[str, Any]) -> dict[str, Any]:
    """The non-fingerprinted record of how a file was made."""
    return {"code_version": code_version(), "created_at": datetime.now(UTC).isoformat(), "runtime": runtime}


def write_attrs(handle: h5py.File, provenance: dict[str, Any], build: dict[str, Any], complete: bool) -> None:
    """Stamp a file with its provenance, build record, fingerprint and completeness."""
    handle.attrs[ATTR_PROVENANCE] = canonical(provenance)
    handle.attrs[ATTR_BUILD] = json.dumps(build, sort_keys=True, default=str)
    handle.attrs[ATTR_FINGERPRINT] = fingerprint(provenance)
    handle.attrs["schema_version"] = SCHEMA_VERSION
    handle.attrs[ATTR_COMPLETE] = complete


def edited(handle: h5py.File, provenance: dict[str, Any]) -> bool:
    """True when a file's provenance no longer matches the fingerprint it was written with."""
    return handle.attrs.get(ATTR_FINGERPRINT) != fingerprint(provenance)


def read_attrs(handle: h5py.File, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(provenance, build) of an open file; a file without them is not ours."""
    try:
        return json.loads(handle.attrs[ATTR_PROVENANCE]), json.loads(handle.attrs.get(ATTR_BUILD, "{}"))
    except (KeyError, ValueError) as exc:
        raise ClipCacheError(f"cache file {str(path)!r} has no readable provenance; it is not a clipcache "
                             "file") from exc
    except OSError as exc:  # the attribute's bytes (in a global heap) are damaged
        raise ClipCacheError(f"cache file {str(path)!r}: its provenance cannot be read ({str(exc).splitlines()[0]}); "
                             "run `clipcache encode --repair`") from None


def check_request(provenance: dict[str, Any], expect: dict[str, Any], path: Path) -> None:
    """Refuse a file whose provenance differs from the request; dotted keys reach into nested fields."""
    for key, wanted in expect.items():
        actual: Any = provenance
        for part in key.split("."):
            actual = actual.get(part, "<absent>") if isinstance(actual, dict) else "<absent>"
        if json.loads(json.dumps(actual, default=str)) != json.loads(json.dumps(wanted, default=str)):
            raise ClipCacheError(f"cache {str(path)!r} does not match the request: {key} is {actual!r}, wanted "
                                 f"{wanted!r}")
