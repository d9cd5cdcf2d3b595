"""A fixed random sample of the mutants mutmut generated (issue 12's mutation score, measured on a 2-core CPU).

Run after `mutmut run` has generated ./mutants (or `mutmut run` interrupted once the mutants exist); prints one mutant
name a line: `mutmut run --max-children 2 $(python benchmarks/mutation_sample.py)`. The same seed and size give the
same sample as long as the mutated code is unchanged. `--all` prints every mutant.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SEED, SIZE = 2026, 300


def mutant_names(root: Path = Path("mutants")) -> list[str]:
    names = []
    for meta in root.rglob("*.py.meta"):
        names.extend(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    return sorted(names)


if __name__ == "__main__":
    names = mutant_names()
    print("\n".join(names if "--all" in sys.argv else random.Random(SEED).sample(names, min(SIZE, len(names)))))
