"""DVC stage 1: `python stages/encode.py --params params.yaml` -> cache/<data set>/<model>__<pretrained>/."""

from __future__ import annotations

import sys

from pipeline.cli import main as cli


def main(argv: list[str] | None = None) -> int:
    """The `clipcache encode` command: same options, same one-line errors and exit codes."""
    return cli(["encode", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
