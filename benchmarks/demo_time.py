"""The demo's `dvc repro` from a fresh clone, and DVC's own share of it.

Clones this repository twice into a temporary folder. In the first clone `dvc repro` runs the demo (params.yaml as
committed) and its wall time is taken. In the second, the very commands of the stages DVC ran, in the order it ran
them, are run directly, without DVC. DVC's share = 1 - direct / dvc repro. Usage:
    python benchmarks/demo_time.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    """This interpreter's folder first on PATH (dvc, python), analytics off."""
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def clone(target: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(REPO), str(target)], check=True)
    return target


def timed(args: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, done.stdout + done.stderr


def stage_commands(log: str) -> list[tuple[str, str]]:
    """(stage, command) in the order `dvc repro` ran them, from its output ('Running stage' then '> cmd')."""
    lines = log.splitlines()
    return [(line.split("'")[1], lines[i + 1][2:]) for i, line in enumerate(lines)
            if line.startswith("Running stage") and i + 1 < len(lines) and lines[i + 1].startswith("> ")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="demo-time-"))
    work.mkdir(parents=True, exist_ok=True)
    with_dvc, log = timed(["dvc", "repro"], clone(work / "with-dvc"))
    direct_root = clone(work / "direct")
    per_stage = {}
    for stage, command in stage_commands(log):
        per_stage[stage], _ = timed(shlex.split(command), direct_root)
    direct = sum(per_stage.values())
    print(json.dumps({"dvc_repro_s": round(with_dvc, 1), "same_commands_without_dvc_s": round(direct, 1),
                      "dvc_share": round(1 - direct / with_dvc, 3),
                      "stage_seconds": {k: round(v, 1) for k, v in per_stage.items()}}, indent=1))


if __name__ == "__main__":
    main()
