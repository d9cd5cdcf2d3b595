"""Every head's name and the module that registers it, importable without torch: a command checks the head names it
is given before it imports anything heavy (a typo is one line at once, not after the model libraries load)."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.errors import ClipCacheError

# every head, in the order they joined the project (a new head is appended: the report's fixed styles follow it)
HEADS = ("zero_shot", "linear_probe", "lp_pp", "clip_adapter", "tip_adapter", "tip_adapter_f", "gda", "proker",
         "vt_clip", "mm_adapter", "coop", "vpt_late", "cavpt", "taskres", "clap", "zs_lp", "ape", "ape_t", "prolip",
         "kgcoop", "prograd", "cocoop", "clip_lora", "ivlp", "maple", "promptsrc")
HEAD_MODULES: dict[str, str] = {name: f"pipeline.heads.{name}" for name in HEADS}


def check_head_names(names: Iterable[str]) -> None:
    """One line naming the first unknown head and the known ones."""
    for name in names:
        if name not in HEAD_MODULES:
            raise ClipCacheError(f"unknown head {name!r}; known: {', '.join(sorted(HEAD_MODULES))}")
