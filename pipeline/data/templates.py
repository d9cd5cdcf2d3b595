"""Prompt templates as data: CLIP's 80, the 7-template ensemble, and CoOp's per-data-set template.

'reference' is not a set of its own but the rule the references follow (Tip-Adapter, GDA, ProKeR, LP++): CoOp's
single per-data-set template everywhere except ImageNet and its shifts, where the 7-template ensemble ('tip7') is
used. Heads resolve it against the data set a cache was built from (`resolve_template_set`); nothing extra is
encoded.
"""

from __future__ import annotations

from pipeline.data.registry import DataSet, load_resource
from pipeline.errors import ClipCacheError
from pipeline.params import TEMPLATE_SETS

REFERENCE = "reference"
# where the references use the 7-template ensemble instead of CoOp's template: ImageNet, and its test-only shifts (a
# head fitted on ImageNet scores them with ImageNet's rule)
IMAGENET_FAMILY = ("imagenet", "imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r")
ENSEMBLE_DATASETS = IMAGENET_FAMILY


def resolve_template_set(set_name: str, dataset_name: str) -> str:
    """The cached set a head's `template_set` names: 'reference' becomes 'tip7' on ImageNet, 'coop' elsewhere."""
    if set_name != REFERENCE:
        return set_name
    return "tip7" if dataset_name in ENSEMBLE_DATASETS else "coop"


def templates_for(set_name: str, dataset: DataSet) -> list[str]:
    """The templates of one named set; each holds one '{}' for the class name."""
    if set_name == "coop":
        return list(dataset.templates) or [dataset.coop_template]
    shipped = load_resource("templates.json")
    if set_name not in shipped or set_name.startswith("_"):
        raise ClipCacheError(f"unknown template set {set_name!r}; known: {', '.join(TEMPLATE_SETS)}")
    return list(shipped[set_name])
