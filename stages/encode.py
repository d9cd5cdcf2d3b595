"""DVC stage 1: `python stages/encode.py --params params.yaml` -> cache/<data set>/<model>__<pretrained>/."""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline.encode.entry import encode_from_params
from pipeline.errors import ClipCacheError


def main(argv: list[str] | None = None) -> int:
    """Parse argv, run the encode stage, print a user mistake on one line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="dotted.key=value")
    parser.add_argument("--skip-bad-images", action="store_true", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)
    try:
        encode_from_params(args.params, args.overrides, {"skip_bad_images": args.skip_bad_images})
    except ClipCacheError as exc:
        print(f"clipcache: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
