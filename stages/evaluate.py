"""DVC stage 3: `python stages/evaluate.py --params params.yaml --head NAME` -> results/<...>/evaluation.json."""

from __future__ import annotations

import sys

from pipeline.cli import main as cli


def main(argv: list[str] | None = None) -> int:
    """The `clipcache evaluate` command: same options, same one-line errors and exit codes."""
    return cli(["evaluate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
