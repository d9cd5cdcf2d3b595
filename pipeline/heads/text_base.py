"""The raw text base of TaskRes and CLAP: per class, the mean of the un-normalised embeddings of its templates.

Both authors' `_get_base_text_features` (github geekyutao/TaskRes at 5195359, trainers/taskres.py; github jusiro/CLAP
at dbdf409, trainers/adapters.py) average the text tower's raw outputs over the templates, without normalising each
one first: CoOp's per-data-set template on every data set, and on ImageNet the 7-template ensemble followed by CoOp's
"a photo of a {}." (8 templates). Their heads then add to, or train from, that un-normalised base, so its norm is
part of the method (TaskRes's residual scale is relative to it). `template_set: reference` names that rule; any
cached set name instead gives the raw mean over that set's templates.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.data.registry import layout_of
from pipeline.data.templates import IMAGENET_FAMILY, REFERENCE, resolve_template_set
from pipeline.heads.inputs import TextReader

AUTHORS_SETS = dict.fromkeys(IMAGENET_FAMILY, ("tip7", "coop"))  # IMAGENET_TEMPLATES_SELECT, then CoOp's template


def base_sets(template_set: str, layout: str) -> tuple[str, ...]:
    """The cached template sets whose templates make the base of a data set of this layout."""
    if template_set == REFERENCE:
        return AUTHORS_SETS.get(layout, ("coop",))
    return (resolve_template_set(template_set, layout),)


def raw_base(text: TextReader, template_set: str, device: torch.device) -> torch.Tensor:
    """[C, D] per class, the mean of its templates' raw (un-normalised) text embeddings."""
    sets = base_sets(template_set, layout_of(text.provenance["dataset"]))
    stacked = np.concatenate([text.per_template(name) for name in sets], axis=1)  # [C, T, D]
    return torch.from_numpy(stacked.astype(np.float32).mean(axis=1)).to(device)  # [C, D]
