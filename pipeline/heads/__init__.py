"""The heads: one file each, registered by name; `create_head(name, params)`, `list_heads()`."""

from pipeline.heads import (  # noqa: F401  (each module registers its head)
    cavpt, clip_adapter, coop, gda, linear_probe, lp_pp, mm_adapter, proker, tip_adapter, tip_adapter_f, vpt_late, vt_clip, zero_shot,
)
from pipeline.heads.base import REQUIREMENTS, Head
from pipeline.heads.data import FitData
from pipeline.heads.registry import create_head, describe_params, head_class, list_heads, register_head

__all__ = ["REQUIREMENTS", "FitData", "Head", "create_head", "describe_params", "head_class", "list_heads", "register_head"]
