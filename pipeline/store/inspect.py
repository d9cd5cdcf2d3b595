"""Describe cache files: schema, shapes, dtypes, provenance and completeness, for `clipcache inspect`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py

from pipeline.errors import ClipCacheError
from pipeline.store.integrity import verify
from pipeline.store.provenance import ATTR_COMPLETE, ATTR_FINGERPRINT, edited, read_attrs
from pipeline.store.reader import dataset_specs

HEALTHY = ("complete", "leftover")  # statuses `clipcache inspect` exits 0 with


def describe_file(path: Path) -> dict[str, Any]:
    """One file's completeness, datasets and provenance summary; a damaged or foreign file is a status, not an
    exception ('corrupt (...)' when HDF5 cannot open it, 'not healthy (...)' when its metadata is damaged, it is
    truncated, not ours, or takes bytes from another file)."""
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        return {"path": str(path), "status": f"corrupt ({str(exc).splitlines()[0]})"}
    with handle:
        try:
            provenance, build = read_attrs(handle, path)
            dataset_specs(handle, path)  # truncation, damaged metadata, bytes taken from other files
        except ClipCacheError as exc:
            return {"path": str(path), "status": f"not healthy ({exc})"}
        if handle.attrs.get(ATTR_COMPLETE) and edited(handle, provenance):
            return {"path": str(path), "status": "not healthy (its provenance does not match its fingerprint: "
                    "edited after encoding)"}
        if handle.attrs.get(ATTR_COMPLETE):
            try:
                verify(handle, path, str(handle.attrs[ATTR_FINGERPRINT]))  # once per file and modification
            except ClipCacheError as exc:
                return {"path": str(path), "status": f"damaged ({exc})"}
        return summary(handle, path, provenance, build)


def summary(handle: h5py.File, path: Path, provenance: dict[str, Any], build: dict[str, Any]) -> dict[str, Any]:
    """The inspect entry of a readable file."""
    datasets: dict[str, Any] = {}
    handle.visititems(lambda n, o: datasets.__setitem__(
        n, {"shape": list(o.shape), "dtype": str(o.dtype), "MiB": round(o.nbytes / 2**20, 3)})
        if isinstance(o, h5py.Dataset) else None)
    encoder = provenance.get("encoder", {})
    return {
        "path": str(path), "status": "complete" if handle.attrs.get(ATTR_COMPLETE) else "incomplete",
        "schema_version": int(handle.attrs.get("schema_version", -1)),
        "model": encoder.get("model"), "pretrained": encoder.get("pretrained"),
        "random_weights": encoder.get("random_weights"), "dataset": provenance.get("dataset", {}).get("name"),
        "layout": provenance.get("dataset", {}).get("layout") or provenance.get("dataset", {}).get("name"),
        "split": provenance.get("split"), "views": provenance.get("views"), "features": provenance.get("features"),
        "templates": {k: len(v) for k, v in provenance.get("templates", {}).items()} or None,
        "skipped": build.get("skipped", []), "code_version": build.get("code_version"),
        "created_at": build.get("created_at"), "datasets": datasets, "provenance": provenance,
    }


def describe(path: str | Path) -> list[dict[str, Any]]:
    """Every cache file under `path` (a file or a folder), plus interrupted writes ('.parts' folders)."""
    path = Path(path)
    if not path.exists():
        raise ClipCacheError(f"nothing to inspect at {str(path)!r}")
    files = [path] if path.is_file() else sorted(path.rglob("*.h5"))
    out = [describe_file(f) for f in files if ".parts" not in f.parent.name and ".tmp-" not in f.name]
    parts = [path] if path.name.endswith(".parts") else sorted(path.rglob("*.parts")) if path.is_dir() else []
    for folder in parts:
        shards = sorted(folder.glob("shard-*.h5"))
        final = Path(str(folder)[: -len(".parts")])
        if final.is_file() and describe_file(final)["status"] == "complete":
            out.append({"path": str(folder), "status": f"leftover ({len(shards)} shard(s) of a complete split; the "
                        "next `clipcache encode` removes them)"})
            continue
        out.append({"path": str(final), "status": f"interrupted ({len(shards)} shard(s) written; "
                    "run `clipcache encode` again to resume)"})
    return out


def render(entries: list[dict[str, Any]]) -> str:
    """Human-readable summary of `describe`'s entries."""
    lines = []
    for e in entries:
        lines.append(f"{e['path']}: {e['status']}")
        if "datasets" not in e:
            continue
        weights = "RANDOM WEIGHTS (pretrained: none)" if e["random_weights"] else e["pretrained"]
        layout = "" if e["layout"] == e["dataset"] else f" (layout {e['layout']})"
        lines.append(f"  model {e['model']} / {weights}; data set {e['dataset']}{layout}; "
                     f"schema v{e['schema_version']}; code {e['code_version']}")
        if e["split"]:
            s = e["split"]
            lines.append(f"  split {s['name']} (from {s['source']}), shots {s['shots']}, seed {s['seed']}, "
                         f"{s['n_items']} images")
        if e["views"]:
            lines.append(f"  views {e['views']['count']} (seed {e['views']['seed']}, scale {e['views']['scale']})")
        if e["templates"]:
            lines.append(f"  template sets {json.dumps(e['templates'])}")
        for name, d in sorted(e["datasets"].items()):
            lines.append(f"    {name:<18} {tuple(d['shape'])!s:<22} {d['dtype']:<8} {d['MiB']:.3f} MiB")
        if e["skipped"]:
            lines.append(f"  skipped {len(e['skipped'])} undecodable image(s): {e['skipped'][0]} ...")
    return "\n".join(lines)
