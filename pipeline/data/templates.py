"""Prompt templates as data: CLIP's 80, the 7-template ensemble, and CoOp's per-data-set template."""

from __future__ import annotations

from pipeline.data.registry import DataSet, load_resource
from pipeline.errors import ClipCacheError

TEMPLATE_SETS = ("imagenet80", "tip7", "coop")


def templates_for(set_name: str, dataset: DataSet) -> list[str]:
    """The templates of one named set; each holds one '{}' for the class name."""
    if set_name == "coop":
        return [dataset.coop_template]
    shipped = load_resource("templates.json")
    if set_name not in shipped or set_name.startswith("_"):
        raise ClipCacheError(f"unknown template set {set_name!r}; known: {', '.join(TEMPLATE_SETS)}")
    return list(shipped[set_name])
