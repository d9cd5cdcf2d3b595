"""The faithfulness test's accuracy table (mean test accuracy over three few-shot draws on the synthetic world).

Prints the heads x shots table that tests/heads/test_faithfulness.py asserts on, for benchmarks/RESULTS.md.
Usage (from the repository root): PYTHONPATH=. python benchmarks/faithfulness_table.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from pipeline.heads import create_head, list_heads
from pipeline.heads.base import val_accuracy
from tests.heads.conftest import PROMPT_LEARNERS
from tests.heads.synthetic import World, make_task

HEADS = [name for name in list_heads() if name not in PROMPT_LEARNERS]  # those run encoder parts: real caches only

SHOTS, SEEDS = (1, 2, 4, 8, 16), (1, 2, 3)


def main() -> None:
    scores: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for shots in SHOTS:
            for seed in SEEDS:
                data, test = make_task(Path(tmp) / f"k{shots}-s{seed}", World(), shots, views=4, test_per_class=60,
                                       seed=seed)
                for name in HEADS:
                    params = {}  # the defaults: the authors' (every template set is the same in the synthetic world)
                    scores.setdefault((name, shots), []).append(val_accuracy(create_head(name, params).fit(data), test))
    print("| head | " + " | ".join(f"{s} shot" for s in SHOTS) + " |")
    print("|---|" + "---|" * len(SHOTS))
    for name in HEADS:
        cells = [f"{100 * np.mean(scores[(name, s)]):.1f} ± {100 * np.std(scores[(name, s)]):.1f}" for s in SHOTS]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
