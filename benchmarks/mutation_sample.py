"""A fixed random sample of the mutants mutmut generated (issue 12's mutation score, measured on a 2-core CPU).

`--generate` writes ./mutants the way `mutmut run` starts (mutmut 3.8.1's own functions, no test run); then this
prints one mutant name a line:
    python benchmarks/mutation_sample.py --generate
    OMP_WAIT_POLICY=PASSIVE mutmut run --max-children 2 $(python benchmarks/mutation_sample.py)
    python benchmarks/mutation_sample.py --tally
The same seed and size give the same sample as long as the mutated code is unchanged. `--all` prints every mutant;
`--tally` (after the run) counts the sample's results per target as mutmut reports them, and the score
killed / (killed + survived + no tests).
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

SEED, SIZE = 2026, 300


def results(root: Path = Path("mutants")) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for meta in root.rglob("*.py.meta"):
        found.update(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    return found


def sample(names: list[str]) -> list[str]:
    return random.Random(SEED).sample(sorted(names), min(SIZE, len(names)))


def target(name: str) -> str:
    if name.startswith("pipeline.heads.loop."):
        return "pipeline/heads/loop.py (the training loop)"
    return "pipeline/prompts" if name.startswith("pipeline.prompts.") else "pipeline/heads (without loop.py)"


def tally(found: dict[str, int | None], names: list[str]) -> None:
    groups: dict[str, Counter] = {}
    for name in names:
        status = status_by_exit_code[found[name]]  # mutmut's own reading of the exit codes in mutants/**/*.meta
        groups.setdefault(target(name), Counter())[status] += 1
        groups.setdefault("all three targets", Counter())[status] += 1
    for group, counts in sorted(groups.items()):
        scored = counts["killed"] + counts["survived"] + counts["no tests"]
        print(f"{group}: {dict(counts)}; score {counts['killed']}/{scored} = {counts['killed'] / max(scored, 1):.1%}")


def generate() -> None:
    """The generation step of `mutmut run` (mutmut/__main__.py _run, 3.8.1): copy the sources, mutate the targets."""
    import os

    from mutmut.__main__ import create_mutants, set_mutant_under_test
    from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths

    set_mutant_under_test("mutant_generation")
    os.makedirs("mutants", exist_ok=True)
    copy_src_dir()
    copy_also_copy_files()
    setup_source_paths()
    print(create_mutants(os.cpu_count() or 2), file=sys.stderr)


if __name__ == "__main__":
    if "--generate" in sys.argv:
        generate()
        sys.exit(0)
    found = results()
    chosen = sorted(found) if "--all" in sys.argv else sample(list(found))
    if "--tally" in sys.argv:
        tally(found, chosen)
    else:
        print("\n".join(chosen))
