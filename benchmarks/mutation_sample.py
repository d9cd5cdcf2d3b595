"""A fixed random sample of the mutants mutmut generated (issue 12's mutation score, measured on a 2-core CPU).

`--generate` writes ./mutants the way `mutmut run` starts (mutmut 3.8.1's own functions, no test run); then this
prints one mutant name a line:
    python benchmarks/mutation_sample.py --generate
    OMP_WAIT_POLICY=PASSIVE mutmut run --max-children 2 $(python benchmarks/mutation_sample.py)
    python benchmarks/mutation_sample.py --tally
The same seed and size give the same sample as long as the mutated code is unchanged. `--all` prints every mutant;
`--tally` (after the run) counts the sample's results per target as mutmut reports them, and the score
killed / (killed + survived + no tests). `--per-target N` draws N mutants of each package instead (issue 20's
stratified sample of pipeline/sweep, store, encode, scoring, params and report: a score per package), with the same
seed; give it to the run and to the tally alike.
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


def package(name: str) -> str:
    """pipeline.sweep.plan.x_split_done__mutmut_3 -> pipeline/sweep; pipeline.params.x_build__mutmut_1 ->
    pipeline/params."""
    parts = name.split(".")
    return "/".join(parts[:2])


def stratified(names: list[str], per_target: int) -> list[str]:
    """`per_target` mutants of each package (all of a smaller one), drawn with the fixed seed."""
    chosen: list[str] = []
    for group in sorted({package(n) for n in names}):
        members = sorted(n for n in names if package(n) == group)
        chosen += random.Random(SEED).sample(members, min(per_target, len(members)))
    return sorted(chosen)


def target(name: str) -> str:
    if not name.startswith(("pipeline.heads.", "pipeline.prompts.")):
        return package(name)
    if name.startswith("pipeline.heads.loop."):
        return "pipeline/heads/loop.py (the training loop)"
    return "pipeline/prompts" if name.startswith("pipeline.prompts.") else "pipeline/heads (without loop.py)"


def tally(found: dict[str, int | None], names: list[str]) -> None:
    groups: dict[str, Counter] = {}
    for name in names:
        status = status_by_exit_code[found[name]]  # mutmut's own reading of the exit codes in mutants/**/*.meta
        groups.setdefault(target(name), Counter())[status] += 1
        groups.setdefault("all targets", Counter())[status] += 1
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
    if "--per-target" in sys.argv:
        chosen = stratified(list(found), int(sys.argv[sys.argv.index("--per-target") + 1]))
    else:
        chosen = sorted(found) if "--all" in sys.argv else sample(list(found))
    if "--tally" in sys.argv:
        tally(found, chosen)
    else:
        print("\n".join(chosen))
