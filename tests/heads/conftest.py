"""A small synthetic few-shot task shared by the registry-driven head tests."""

from __future__ import annotations

import pytest

from pipeline.heads import FitData
from pipeline.store import FeatureSplit
from tests.heads.synthetic import World, make_task, write_raw_text

# few epochs keep the registry tests fast; the faithfulness tests use the defaults
QUICK = {"clip_adapter": {"epochs": 3}, "lp_pp": {"epochs": 5}, "tip_adapter_f": {"epochs": 2},
         "vt_clip": {"epochs": 2, "n_heads": 2}, "mm_adapter": {"epochs": 2},
         "linear_probe": {"lambda_grid": [-4.0, 2.0, 4], "refine_steps": 2, "max_iter": 50},
         "tip_adapter": {"beta_grid": [0.5, 7.0, 10]}, "coop": {"epochs": 2, "n_ctx": 4}, "taskres": {"epochs": 3},
         "clap": {"epochs": 5}, "zs_lp": {"epochs": 5}, "ape": {"descriptions": False, "search_step": [10, 5, 4]},
         "ape_t": {"descriptions": False, "search_step": [10, 5], "epochs": 3, "batch_size": 8},
         "prolip": {"epochs": 20}, "kgcoop": {"epochs": 2, "batch_size": 32}, "prograd": {"epochs": 2, "n_ctx": 6},
         "cocoop": {"epochs": 1, "batch_size": 2}, "clip_lora": {"n_iters": 2},
         "maple": {"epochs": 1, "depth": 1}, "ivlp": {"epochs": 1, "depth_text": 1, "depth_vision": 2},
         "promptsrc": {"epochs": 1, "n_ctx": 2, "n_ctx_vision": 2, "depth_text": 1, "depth_vision": 2},
         "vpt_late": {"k": 1, "epochs": 2, "n_prompts": 2, "warmup_epochs": 0},
         "cavpt": {"k": 1, "epochs": 2, "n_prompts": 2, "top_k": 2, "warmup_epochs": 0}}
# heads that run frozen encoder parts need a real (tiny) cache, not the synthetic one
PROMPT_LEARNERS = ("coop", "kgcoop", "prograd", "cocoop", "clip_lora", "maple", "ivlp", "promptsrc", "vpt_late",
                   "cavpt", "prolip")


@pytest.fixture(scope="session")
def task(tmp_path_factory: pytest.TempPathFactory) -> tuple[FitData, FeatureSplit]:
    return make_task(tmp_path_factory.mktemp("task"), World(), shots=4, views=3, test_per_class=8)


@pytest.fixture(scope="module")
def raw_task(tmp_path_factory: pytest.TempPathFactory) -> tuple[FitData, FeatureSplit]:
    """A synthetic task whose text features are raw, several templates a set (TaskRes's and CLAP's base reads them)."""
    folder = tmp_path_factory.mktemp("raw")
    data, test = make_task(folder, World(), shots=4, views=3, val_per_class=4, test_per_class=10)
    text = write_raw_text(folder / "raw-text.h5", World(), "caltech101")
    return FitData(data.train, data.val, text, data.seed, data.device), test
