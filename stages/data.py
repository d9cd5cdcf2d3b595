"""DVC stage `textile`: copy the conformal-clip-data package's textile images to a folder DVC can hash.

`python stages/data.py --out data/textile`. The encode stage then depends on the image files themselves: adding,
removing or changing an image re-runs it (a packaged folder inside site-packages would be invisible to DVC).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from pipeline.data.textile import packaged_root
from pipeline.errors import exit_code


def copy_textile(out: Path) -> None:
    """Replace `out` with a copy of the packaged class folders."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(packaged_root(), tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/textile")
    args = parser.parse_args(argv)
    return exit_code(lambda: copy_textile(Path(args.out)))


if __name__ == "__main__":
    sys.exit(main())
