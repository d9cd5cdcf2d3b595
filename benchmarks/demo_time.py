"""The demo's `dvc repro` from a fresh clone, and DVC's own share of it.

Clones this repository into a temporary folder and, in the clone only, prefixes every stage's command with
`/usr/bin/time`, which appends the command's wall time to a file. `dvc repro` then runs the demo (params.yaml as
committed). DVC's share = 1 - (sum of the stage commands' wall times) / (wall time of `dvc repro`): what DVC itself
costs (reading dvc.yaml and params, hashing deps and outs, caching outs, writing dvc.lock), measured in one run.
Usage:
    python benchmarks/demo_time.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    """This interpreter's folder first on PATH (dvc, python), analytics off."""
    return {**os.environ, "DVC_NO_ANALYTICS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def timed_stages(root: Path, times: Path) -> None:
    """Prefix every stage command of the clone's dvc.yaml with /usr/bin/time appending '<stage> <seconds>'."""
    config = yaml.safe_load((root / "dvc.yaml").read_text())
    for name, stage in config["stages"].items():
        body = stage.get("do", stage)
        label = f"{name}@${{item.name}}" if name == "encode" else f"{name}@${{item}}" if "foreach" in stage else name
        body["cmd"] = f"/usr/bin/time -a -o {times} -f '{label} %e' {body['cmd']}"
    (root / "dvc.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="demo-time-"))
    root, times = work / "repo", work / "stage_times.txt"
    subprocess.run(["git", "clone", "-q", str(REPO), str(root)], check=True)
    timed_stages(root, times)
    started = time.perf_counter()
    done = subprocess.run(["dvc", "repro"], cwd=root, env=env(), capture_output=True, text=True, check=False)
    total = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"dvc repro failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    stages = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in times.read_text().splitlines()}
    print(json.dumps({"dvc_repro_s": round(total, 1), "stage_commands_s": round(sum(stages.values()), 1),
                      "dvc_share": round(1 - sum(stages.values()) / total, 3), "stage_seconds": stages}, indent=1))


if __name__ == "__main__":
    main()
