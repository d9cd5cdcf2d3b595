"""Head `maple`: its parameters (pipeline/heads/maple.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.head_params.vl_prompts import VLSchedule


@dataclass(frozen=True)
class MaPLeParams(VLSchedule):
    n_ctx: int = 2  # learned text tokens, and image tokens (the coupling maps each text token to one image token)
    ctx_init: str = "a photo of a"  # its first n_ctx tokens initialise the context (n_ctx <= 4)
    depth: int = 9  # blocks with prompts in each tower, from the first (their PROMPT_DEPTH)


PARAMS = MaPLeParams
REQUIRES = frozenset({"global", "late_token_views", "late_tokens", "views"})  # Head.requires
RUNS: tuple[str, ...] = ("text tower", "every ViT block")  # Head.runs: frozen encoder parts run in stage 2
