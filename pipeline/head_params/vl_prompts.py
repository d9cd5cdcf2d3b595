"""The optimiser and schedule parameters shared by the vision-language prompt learners (IVLP, MaPLe,
PromptSRC: pipeline/heads/vl_prompts.py); torch-free."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VLSchedule:
    """Their Dassl schedule (MaPLe's and IVLP's configs); each head's params add its prompts."""

    lr: float = 0.0035
    weight_decay: float = 5e-4
    batch_size: int = 4
    epochs: int = 5
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    keep: str = "last"
