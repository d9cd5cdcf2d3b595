"""Head `promptsrc`: its parameters (pipeline/heads/promptsrc.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.head_params.ivlp import IVLPParams


@dataclass(frozen=True)
class PromptSRCParams(IVLPParams):
    n_ctx: int = 4
    n_ctx_vision: int = 4
    depth_text: int = 9
    depth_vision: int = 9
    lr: float = 0.0025
    epochs: int = 20
    text_loss_weight: float = 25.0
    image_loss_weight: float = 10.0
    gpa_mean: float = 15.0  # the Gaussian's mean over epochs 1..E
    gpa_std: float = 1.0


PARAMS = PromptSRCParams
REQUIRES = frozenset({"global", "late_token_views", "late_tokens", "views"})  # Head.requires
RUNS: tuple[str, ...] = ("text tower", "every ViT block")  # Head.runs: frozen encoder parts run in stage 2
