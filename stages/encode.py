"""DVC stage `encode@<i>`: `python stages/encode.py --params params.yaml --dataset NAME` -> cache/<data set>/.

Encodes every model of the grid on one data set; imports only stage 1 (dvc.yaml lists exactly these files as deps).
"""

from __future__ import annotations

import argparse
import sys

from pipeline.encode.entry import encode_from_params
from pipeline.errors import exit_code


def main(argv: list[str] | None = None) -> int:
    """Encode the (data set, model) pairs of the grid; one-line errors, exit 1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dataset", default=None, help="only this data set of the grid")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    return exit_code(lambda: encode_from_params(args.params, args.overrides, {}, args.dataset))


if __name__ == "__main__":
    sys.exit(main())
