"""How long the everyday commands take, and their peak memory, each in a fresh process (wall seconds, max RSS).

Builds a tiny encoded cache (the tests' 2-block ViT, 3 classes, random weights) and a first sweep of two heads, then
times: --help, presets, datasets, models, heads, status, a sweep with nothing left to do, a sweep with a typo'd
head, and a preset whose data root does not exist. Usage: python benchmarks/command_times.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed(argv: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MiB, exit code) of `python -m pipeline.cli ARGV` (GNU time's %M for the RSS)."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "pipeline.cli", *argv], cwd=REPO,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    return wall, int(done.stderr.strip().splitlines()[-1]) / 1024, done.returncode


def setup(folder: Path) -> Path:
    """A tiny cache, a params file over it and a first sweep (so the next one has nothing to do)."""
    from tests.helpers import encode_section, make_folder
    from tests.sweep.conftest import grid_params, write

    images = make_folder(folder / "images", ["red", "green", "blue"], 10)
    section = encode_section(images, "vit", folder / "cache")
    path = write(grid_params(section, folder, heads=["zero_shot", "tip_adapter"]), folder / "params.yaml")
    subprocess.run([sys.executable, "-m", "pipeline.cli", "encode", "--params", str(path)], cwd=REPO, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "pipeline.cli", "sweep", "--params", str(path)], cwd=REPO, check=True,
                   capture_output=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        params = setup(Path(tmp))
        commands = {
            "--help": ["--help"], "presets": ["presets"], "datasets": ["datasets"], "models": ["models"],
            "heads": ["heads", "--params", str(params)], "status": ["status", "--params", str(params)],
            "sweep (nothing to do)": ["sweep", "--params", str(params)],
            "sweep --head typo": ["sweep", "--params", str(params), "--head", "nosuchhead"],
            "preset, missing data root": ["preset", "gda", "--data-root", f"{tmp}/nowhere", "--params",
                                          f"{tmp}/other.yaml"],
        }
        (Path(tmp) / "other.yaml").write_text("encode: {}\n")
        rows = {}
        for label, argv in commands.items():
            runs = [timed(argv) for _ in range(args.repeat)]
            rows[label] = {"wall_s_median": round(statistics.median(r[0] for r in runs), 2),
                           "peak_mib": round(max(r[1] for r in runs)), "exit": runs[-1][2]}
            print(json.dumps({label: rows[label]}), flush=True)
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
