"""Head `mm_adapter`: its parameters (pipeline/heads/mm_adapter.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MMAdapterParams:
    template_set: str = "coop"  # the authors' single per-data-set template
    bottleneck: int = 32  # the rank of the down- and up-projections
    width: int = 128  # attention width (the authors' `downsamling_dim`; their stored runs used 256)
    n_heads: int = 4
    mask: str = "authors"  # 'authors' (+1 on cross-modal scores), 'block' (cross-modal pairs only), 'none'
    ratio: float = 0.2  # share of the adapted direction in the blend, image and text alike
    lr: float = 5e-3
    weight_decay: float = 1e-4  # Adam's L2 term
    epochs: int = 200
    batch_size: int = 256
    patience: int = 20  # early stopping on validation
    keep: str = "best_val"  # the authors reload their best-validation checkpoint
    min_steps: int = 0
    augment: bool = False  # the authors train on un-augmented features


PARAMS = MMAdapterParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2
