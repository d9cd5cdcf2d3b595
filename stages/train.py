"""DVC stage 2: `python stages/train.py --params params.yaml --head NAME` -> models/<...>/<head>/k<K>-s<seed>/."""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline.errors import ClipCacheError
from pipeline.train.entry import train_from_params


def main(argv: list[str] | None = None) -> int:
    """Parse argv, fit one head from the cache, print a user mistake on one line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--head", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="dotted.key=value")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)
    try:
        train_from_params(args.params, args.overrides, args.head, {})
    except ClipCacheError as exc:
        print(f"clipcache: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
