"""ZS-LP: the zero-shot-initialised linear probe of Silva-Rodriguez et al. (CVPR 2024, arXiv 2312.12730), CLAP's
probe and schedule without its class-adaptive penalty (the authors' `scripts/adapt.sh ... ZS none`; github jusiro/CLAP
at dbdf4095b3d824546474c725539b9f4efff3ca0e, trainers/adapters.py). Everything else, the departures included, is
pipeline/heads/clap.py's.
"""

from __future__ import annotations

from pipeline.head_params.zs_lp import ZSLPParams
from pipeline.heads.clap import CLAP
from pipeline.heads.registry import register_head


@register_head("zs_lp")
class ZSLP(CLAP):
    """CLAP with `constraint: none` by default."""

    Params = ZSLPParams
