"""DVC stage 2: `python stages/train.py --params params.yaml --head NAME` -> models/<...>/<head>/k<K>-s<seed>/."""

from __future__ import annotations

import sys

from pipeline.cli import main as cli


def main(argv: list[str] | None = None) -> int:
    """The `clipcache train` command: same options, same one-line errors and exit codes."""
    return cli(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
