"""Every head's name and the module that registers it, importable without torch: a command checks the head names it
is given before it imports anything heavy (a typo is one line at once, not after the model libraries load)."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.errors import ClipCacheError

HEAD_MODULES: dict[str, str] = {name: f"pipeline.heads.{name}" for name in (
    "ape", "ape_t", "cavpt", "clap", "clip_adapter", "clip_lora", "cocoop", "coop", "gda", "ivlp", "kgcoop",
    "linear_probe", "lp_pp", "maple", "mm_adapter", "prograd", "prolip", "proker", "promptsrc", "taskres",
    "tip_adapter", "tip_adapter_f", "vpt_late", "vt_clip", "zero_shot", "zs_lp")}


def check_head_names(names: Iterable[str]) -> None:
    """One line naming the first unknown head and the known ones."""
    for name in names:
        if name not in HEAD_MODULES:
            raise ClipCacheError(f"unknown head {name!r}; known: {', '.join(sorted(HEAD_MODULES))}")
