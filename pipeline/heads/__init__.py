"""The heads: one file each, registered by name; `create_head(name, params)`, `list_heads()`.

Head modules are imported on first use (`pipeline.heads.registry.MODULES` names them), so that a worker fitting
`zero_shot` does not import the prompt learners' open_clip and transformers.
"""

from pipeline.heads.base import REQUIREMENTS, Head
from pipeline.heads.inputs import FitData
from pipeline.heads.registry import create_head, describe_params, head_class, list_heads, register_head

__all__ = ["REQUIREMENTS", "FitData", "Head", "create_head", "describe_params", "head_class", "list_heads",
           "register_head"]
