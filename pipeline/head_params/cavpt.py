"""Head `cavpt`: its parameters (pipeline/heads/cavpt.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.head_params.vpt_late import VPTLateParams


@dataclass(frozen=True)
class CAVPTParams(VPTLateParams):
    top_k: int = 5  # K_N classes whose text features become class-aware prompts (capped; 0: every class, "FULL")
    cavpt_layers: int = 1  # how many of the last k blocks get class-aware prompts
    keys: str = "class_token"  # 'class_token' (+ the layer's prompts) or 'all_tokens'
    aux_weight: float = 1.0  # weight of the auxiliary K-way loss (eq. 10)


PARAMS = CAVPTParams
REQUIRES = frozenset({"global", "late_token_views", "late_tokens", "views"})  # Head.requires
RUNS: tuple[str, ...] = ("last k ViT blocks",)  # Head.runs: frozen encoder parts run in stage 2
