"""DVC stage `sweep@<head>`: `python stages/sweep.py --params params.yaml --head NAME` -> results/<head>/.

Every run of one head over the grid that is not done yet (fingerprints decide), stale runs pruned, and
results/metrics/<head>.json; `runtime.cluster` says where the runs execute.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.errors import exit_code
from pipeline.sweep.entry import sweep_from_params


def main(argv: list[str] | None = None) -> int:
    """Sweep one head; one-line errors, exit 1 (also when a run failed)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--head", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    return exit_code(lambda: sweep_from_params(args.params, args.overrides, [args.head], {}, prune=True))


if __name__ == "__main__":
    sys.exit(main())
