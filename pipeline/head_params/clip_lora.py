"""Head `clip_lora`: its parameters (pipeline/heads/clip_lora.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CLIPLoRAParams:
    r: int = 2  # rank
    alpha: float = 1.0  # the adapters' scale is alpha / sqrt(r)
    dropout: float = 0.25  # on each adapter's input, in training
    matrices: str = "qkv"  # the adapted projections, among q, k, v and o
    encoder: str = "both"  # towers carrying adapters: 'both', 'vision' or 'text'
    lr: float = 2e-4
    weight_decay: float = 1e-2
    batch_size: int = 32
    n_iters: int = 500  # iterations in all = n_iters x shots
    eta_min: float = 1e-6  # the cosine's floor
    logit_scale: float = 100.0  # their fixed scale; 0: the model's
    template_set: str = "coop"  # the first template of this cached set writes each class prompt


PARAMS = CLIPLoRAParams
REQUIRES = frozenset({"global", "late_token_views", "late_tokens", "views"})  # Head.requires
RUNS: tuple[str, ...] = ("text tower", "every ViT block")  # Head.runs: frozen encoder parts run in stage 2
