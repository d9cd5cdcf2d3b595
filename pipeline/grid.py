"""The grid of params.yaml: data sets x models, each pair an `EncodeParams` sharing the `encode` section's protocol.

```yaml
grid:
  datasets: [{name: textile, root: data/textile, options: {max_per_class: 200}}, {name: dtd, root: /data/dtd},
             {name: parts, layout: image_folder, root: /data/parts, protocol: {shots: [1, 2, 4]}}]
  models: [{name: ViT-B-32, pretrained: openai}, {name: RN50, pretrained: openai}]
encode: {protocol: ..., views: ..., features: ...}
```
A data set's entry may carry its own `protocol` (any encode.protocol key: shots, seeds, ...), over the shared one.
Without a `grid` section, `encode.dataset` and `encode.model` are the one pair (the simple case).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.backbone.naming import model_label
from pipeline.data import is_test_only
from pipeline.errors import ClipCacheError
from pipeline.layout import pair_label
from pipeline.params import EncodeParams, TransferParams, encode_params


def _entries(grid: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """grid.<key> as a non-empty list of mappings."""
    entries = grid.get(key)
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ClipCacheError(f"params.yaml: grid.{key} must be a non-empty list of mappings")
    return entries


def grid_sections(params: dict[str, Any]) -> list[dict[str, Any]]:
    """One raw `encode` section per (data set, model) pair, data sets outermost."""
    encode = dict(params.get("encode") or {})
    grid = params.get("grid")
    if grid is None:
        return [encode]
    if not isinstance(grid, dict) or set(grid) - {"datasets", "models"}:
        raise ClipCacheError("params.yaml: grid must be a mapping with the keys datasets and models")
    clash = sorted({"dataset", "model"} & set(encode))
    if clash:
        raise ClipCacheError(f"params.yaml: encode.{clash[0]} and grid both name it; keep one (grid.{clash[0]}s)")
    datasets, models = _entries(grid, "datasets"), _entries(grid, "models")
    names = [d.get("name") for d in datasets]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ClipCacheError(f"params.yaml: grid.datasets names {duplicate!r} twice (cache and results are keyed by "
                             "name)")
    return [{**encode, "dataset": entry, "model": m, **own_protocol(encode, d, i)}
            for i, d in enumerate(datasets) for entry in [{k: v for k, v in d.items() if k != "protocol"}]
            for m in models]


def own_protocol(encode: dict[str, Any], entry: dict[str, Any], index: int) -> dict[str, Any]:
    """{'protocol': encode.protocol with the grid entry's own keys over it} where the entry has `protocol` (a small
    data set of one's own with fewer shots, other seeds), else {}."""
    if "protocol" not in entry:
        return {}
    own = entry["protocol"]
    if not isinstance(own, dict):
        raise ClipCacheError(f"params.yaml: grid.datasets[{index}] ({entry.get('name')}): protocol must be a mapping "
                             f"of encode.protocol keys (shots, seeds, ...), got {own!r}")
    return {"protocol": {**(encode.get("protocol") or {}), **own}}


def grid_pairs(params: dict[str, Any], dataset: str | Sequence[str] | None = None,
               model: str | None = None) -> list[EncodeParams]:
    """The checked (data set, model) pairs, optionally only those of some data sets (one name or several) and/or one
    model; a data set name the grid lacks is named.

    `model` matches an architecture name (ViT-B-32) or a pair label (ViT-B-32__openai).
    """
    pairs = [encode_params(section) for section in grid_sections(params)]
    names = sorted({p.dataset.name for p in pairs})
    stray = sorted(set(pairs[0].descriptions) - set(names)) if pairs else []
    if stray:
        raise ClipCacheError(f"encode.descriptions names {stray[0]!r}, which is no data set of the grid; known: "
                             f"{', '.join(names)}")
    wanted = {dataset} if isinstance(dataset, str) else set(dataset or ())
    unknown = sorted(wanted - set(names))
    if unknown:
        raise ClipCacheError(f"--dataset {', '.join(unknown)}: no such data set in the grid; it has: "
                             f"{', '.join(names)}")
    chosen = [p for p in pairs if (not wanted or p.dataset.name in wanted) and
              model in (None, p.model.name, model_label(p.model.name), pair_label(p.model.name, p.model.pretrained))]
    if not chosen:
        known = sorted({f"{p.dataset.name} / {pair_label(p.model.name, p.model.pretrained)}" for p in pairs})
        raise ClipCacheError(f"no (data set, model) pair of the grid matches dataset={dataset!r} model={model!r}; "
                             f"the grid has: {', '.join(known)}")
    return chosen


def one_pair(params: dict[str, Any], dataset: str | None = None, model: str | None = None) -> EncodeParams:
    """The single pair a one-run command (train, evaluate) works on; ambiguity is named."""
    pairs = grid_pairs(params, dataset, model)
    if len(pairs) > 1:
        raise ClipCacheError(f"the grid has {len(pairs)} (data set, model) pairs: choose one with --dataset and "
                             "--model")
    return pairs[0]


def transfer_plan(params: dict[str, Any], chosen: Sequence[EncodeParams],
                  transfer: TransferParams) -> list[tuple[EncodeParams, tuple[EncodeParams, ...]]]:
    """(source pair, its target pairs) for each chosen pair of the transfer source (train.protocol cross_dataset or
    domain_generalisation); the targets are the grid's pairs of the same model, whatever --dataset chose.

    The source is train.transfer.source (the grid's first data set when empty), the targets train.transfer.targets
    (every other data set of the grid when empty); each is named when the grid lacks it, and the source when it is a
    test-only layout (it has no training images) or a target too.
    """
    everything = [encode_params(section) for section in grid_sections(params)]
    names = list(dict.fromkeys(p.dataset.name for p in everything))
    source = transfer.source or names[0]
    targets = list(transfer.targets) or [n for n in names if n != source]
    unknown = [n for n in (source, *targets) if n not in names]
    if unknown:
        raise ClipCacheError(f"train.transfer names {unknown[0]!r}, which is no data set of the grid; it has: "
                             f"{', '.join(names)}")
    layout = next(p.dataset.registered for p in everything if p.dataset.name == source)
    if is_test_only(layout):
        raise ClipCacheError(f"train.transfer.source {source!r} is a test-only data set (layout {layout}): nothing can "
                             "be fitted on it; name a data set with training images (imagenet)")
    if source in targets or not targets:
        raise ClipCacheError(f"train.transfer.targets must name data sets other than the source {source!r}, got "
                             f"{targets or 'none'}")
    plan = []
    for pair in (p for p in chosen if p.dataset.name == source):
        same_model = {p.dataset.name: p for p in everything if p.model == pair.model}
        plan.append((pair, tuple(same_model[name] for name in targets)))
    if not plan:
        raise ClipCacheError(f"train.protocol transfers from {source!r}, which is not among the chosen data sets "
                             f"({', '.join(sorted({p.dataset.name for p in chosen}))}): choose it with --dataset")
    return plan


def check_layouts(pairs: Sequence[EncodeParams]) -> None:
    """Every pair's layout is registered (the first unknown one named with the known ones)."""
    from pipeline.data import list_datasets

    unknown = sorted({p.dataset.registered for p in pairs} - set(list_datasets()))
    if unknown:
        raise ClipCacheError(f"unknown data set {unknown[0]!r}; known: {', '.join(list_datasets())}")


def check_pairs(pairs: Sequence[EncodeParams]) -> None:
    """Before anything heavy loads: every pair's layout is registered and every data set's root is a folder (all the
    missing ones named in one line)."""
    check_layouts(pairs)
    roots = {p.dataset.name: p.dataset.root for p in pairs if p.dataset.root is not None}
    missing = {name: root for name, root in roots.items() if not Path(root).expanduser().is_dir()}
    if missing:
        raise ClipCacheError("; ".join(f"data set root {root!r} of {name!r} is not a folder{files_hint(root)}"
                                       for name, root in missing.items()))



def files_hint(root: str) -> str:
    """For a root that names container files (a brace pattern, a shard): where they go instead."""
    from pipeline.data.members import CONTAINER_SUFFIXES

    if "{" in root or root.lower().endswith(CONTAINER_SUFFIXES):
        folder, _, pattern = root.rpartition("/")
        return (f" (a root is the folder that holds the files, which DVC tracks: root: {folder or '.'!r}, "
                f"options: {{files: {pattern!r}}})")
    return ""
