"""Head `ivlp`: its parameters (pipeline/heads/ivlp.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.head_params.vl_prompts import VLSchedule


@dataclass(frozen=True)
class IVLPParams(VLSchedule):
    n_ctx: int = 2  # learned text tokens (their N_CTX_TEXT)
    n_ctx_vision: int = 2  # learned image tokens (their N_CTX_VISION)
    ctx_init: str = "a photo of a"  # its first n_ctx tokens initialise the text context (n_ctx <= 4)
    depth_text: int = 12  # text blocks with prompts, from the first (their PROMPT_DEPTH_TEXT)
    depth_vision: int = 12  # image blocks with prompts, from the first (their PROMPT_DEPTH_VISION)


PARAMS = IVLPParams
REQUIRES = frozenset({"global", "late_token_views", "late_tokens", "views"})  # Head.requires
RUNS: tuple[str, ...] = ("text tower", "every ViT block")  # Head.runs: frozen encoder parts run in stage 2
