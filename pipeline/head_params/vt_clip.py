"""Head `vt_clip`: its parameters (pipeline/heads/vt_clip.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VTCLIPParams:
    template_set: str = "coop"  # the data set's hand-crafted prompt
    n_heads: int = 8  # attention heads (the paper's Table 1 varies 4-32)
    n_layers: int = 1  # stacked decoder blocks (Table 2 varies 1-4)
    ffn_mult: int = 4  # feed-forward hidden size = ffn_mult * D
    dropout: float = 0.0
    keys: str = "spatial"  # the map attended over: 'spatial' (joint space, [HW, D]) or 'spatial_raw' ([HW, C_s])
    schedule: str = "adamw"  # 'adamw' (AdamW, cosine, epochs by shots) or 'coop' (SGD, 1 warm-up epoch, Dassl's)
    lr: float = 2e-3
    epochs: int = 0  # 0: by shots as CoOp (50 / 100 / 200)
    batch_size: int = 32
    weight_decay: float = 5e-4
    keep: str = "best_val_or_start"  # the epoch best on validation, the untrained start (zero-shot) competing;
    # "last" (CoOp's rule) or "best_val" (trained epochs only)
    min_steps: int = 0  # at least this many optimiser steps in all


PARAMS = VTCLIPParams
REQUIRES = frozenset({"global", "spatial", "spatial_views", "views"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2
