"""A preset applied: the grid, encode sections, heads and protocol of a params.yaml rewritten to a paper's."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from pipeline.data.coop import COOP_FOLDERS
from pipeline.errors import ClipCacheError
from pipeline.presets import Preset


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, recursively for mappings (a copy)."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def apply_preset(params: dict[str, Any], preset: Preset, data_root: str,
                 datasets: list[str] | None = None) -> dict[str, Any]:
    """params.yaml with the preset's grid (each data set's own folder under `data_root`, CoOp's $DATA layout, so that
    a DVC encode stage hashes its data set only), encode sections, heads and their parameters; runtime, evaluate and
    the rest of encode (cache_dir, dtypes) are kept; `transductive` is the preset's (empty unless it is a transductive
    method's)."""

    chosen = datasets if datasets else list(preset.datasets)
    unknown = sorted(set(chosen) - set(preset.datasets))
    if unknown:
        raise ClipCacheError(f"preset {preset.name!r} has no data set {unknown[0]!r}; it has: "
                             f"{', '.join(preset.datasets)}")
    out = copy.deepcopy(params)
    encode = {k: v for k, v in (out.get("encode") or {}).items() if k not in ("dataset", "model")}
    out["grid"] = {"datasets": [{"name": d, "root": str(Path(data_root) / COOP_FOLDERS[d])} for d in chosen],
                   "models": [dict(m) for m in preset.models]}
    out["encode"] = merge(encode, preset.encode)
    train = dict(out.get("train") or {})
    train["heads"] = list(preset.heads)
    train["protocol"] = preset.protocol
    # a transfer preset's source and targets, or none (the key stays: the DVC sweep stages track it)
    train["transfer"] = {"source": "", "targets": [], **(preset.transfer or {})}
    train["head"] = train.get("head") if train.get("head") in preset.heads else list(preset.heads)[-1]
    out["train"] = train
    out["heads"] = copy.deepcopy(preset.heads)
    out["transductive"] = copy.deepcopy(preset.transductive or {})  # a preset of an inductive paper scores none so
    return out


def check_roots(preset: str, datasets: list[dict[str, str]], data_root: str) -> None:
    """One error naming every data set whose folder is missing under `data_root` (CoOp's $DATA layout)."""
    missing = [d for d in datasets if not Path(d["root"]).is_dir()]
    if not missing:
        return
    where = "; ".join(f"{d['name']} ({d['root']})" for d in missing)
    have = len(datasets) - len(missing)
    hint = (f"pass --dataset for each of the {have} present, " if have else "") + "or --unchecked to write it anyway"
    raise ClipCacheError(f"preset {preset!r}: {len(missing)} of {len(datasets)} data set folder(s) missing under "
                         f"{data_root}: {where}. Lay them out as CoOp's DATASETS.md says, {hint}")


def write_params(path: str | Path, params: dict[str, Any], comment: str) -> None:
    """Write a params.yaml through a temporary file and a rename (a kill never leaves half a file)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(f"# {comment}; `clipcache presets` lists them\n" + yaml.safe_dump(params, sort_keys=False),
                   encoding="utf-8")
    os.replace(tmp, path)
