"""Head `vpt_late`: its parameters (pipeline/heads/vpt_late.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VPTLateParams:
    k: int = 0  # prompted last blocks; 0: every block (the paper's VPT-deep); the cache must hold late tokens as deep
    depth: str = "deep"  # 'deep': fresh prompts in each prompted block; 'shallow': prompts enter the first one only
    n_prompts: int = 10  # P prompt tokens per prompted block
    init_std: float = 0.02
    template_set: str = "coop"  # the frozen classifier's prompt (when text_prompts is false)
    text_prompts: bool = False  # also learn CoOp's text context (dual modality, VLP-CLIP)
    n_ctx: int = 16  # CoOp context length (text_prompts only)
    ctx_init: str = ""
    class_token_position: str = "end"
    text_lr_scale: float = 0.2  # text context lr = lr x this (CoOp's 0.002 against the visual 0.01)
    lr: float = 0.01
    weight_decay: float = 5e-4
    batch_size: int = 32
    epochs: int = 0  # 0: by shots (50 / 100 / 200)
    warmup_epochs: int = 10
    warmup_lr: float = 1e-5
    keep: str = "last"  # epoch shipped: the last (the authors' rule) or "best_val" (best on validation)
    min_steps: int = 0  # at least this many optimiser steps (0: the authors' epochs x minibatches)


PARAMS = VPTLateParams
REQUIRES = frozenset({"global", "late_token_views", "late_tokens", "views"})  # Head.requires
RUNS: tuple[str, ...] = ("last k ViT blocks",)  # Head.runs: frozen encoder parts run in stage 2
