"""The papers' qualitative behaviour on CLIP-like synthetic features, averaged over three few-shot draws.

In the synthetic world (see synthetic.py) zero-shot errs systematically by CLIP-sized margins and the class signal is
spread over the features as the cache and discriminant methods assume. Test accuracy here is the test's own yardstick;
every head still selects on its validation split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.heads import create_head
from pipeline.heads.base import val_accuracy
from tests.heads.synthetic import World, make_task

LEARNERS = ["tip_adapter", "tip_adapter_f", "gda", "proker", "linear_probe", "lp_pp", "clip_adapter", "vt_clip",
            "mm_adapter", "taskres", "clap", "zs_lp", "ape", "ape_t"]
CACHE_METHODS = ["tip_adapter", "tip_adapter_f", "gda", "proker", "ape", "ape_t"]
SHOTS, SEEDS = (1, 4, 16), (1, 2, 3)
# MM-Adapter's early stopping (20 epochs without progress) stops on noise when an epoch is one minibatch (5 classes
# here, batch 256): the whole schedule is run instead
# APE and APE-T: the synthetic text has no descriptions
TUNED = {"mm_adapter": {"patience": 0}, "ape": {"descriptions": False}, "ape_t": {"descriptions": False}}


@pytest.fixture(scope="module")
def accuracy(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], float]:
    """Mean test accuracy of every (head, shots) over the seeds."""
    scores: dict[tuple[str, int], list[float]] = {}
    for shots in SHOTS:
        for seed in SEEDS:
            folder: Path = tmp_path_factory.mktemp(f"k{shots}-s{seed}")
            data, test = make_task(folder, World(), shots, views=4, test_per_class=60, seed=seed)
            for name in ["zero_shot", *LEARNERS]:
                params = {"template_set": "tip7"} if name == "zero_shot" else TUNED.get(name, {})
                scores.setdefault((name, shots), []).append(val_accuracy(create_head(name, params).fit(data), test))
    return {key: float(np.mean(values)) for key, values in scores.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", LEARNERS)
def test_more_shots_give_higher_accuracy(accuracy, name: str) -> None:
    assert accuracy[(name, 16)] > accuracy[(name, 1)] + 0.03, {s: round(accuracy[(name, s)], 3) for s in SHOTS}


@pytest.mark.slow
@pytest.mark.parametrize("name", CACHE_METHODS)
@pytest.mark.parametrize("shots", [4, 16])
def test_cache_methods_beat_zero_shot_from_four_shots(accuracy, name: str, shots: int) -> None:
    assert accuracy[(name, shots)] > accuracy[("zero_shot", shots)] + 0.02, (
        f"{name}@{shots}: {accuracy[(name, shots)]:.3f} vs zero-shot {accuracy[('zero_shot', shots)]:.3f}")
