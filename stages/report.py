"""DVC stage `report`: `python stages/report.py --params params.yaml` -> report/ (tables, CSVs, figures, index.html).

Reads the evaluation JSONs alone: no torch, no cache, no images needed.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.errors import exit_code
from pipeline.report import build_report, report_settings


def report(params_path: str) -> None:
    """Tables and figures of the run folders under evaluate.results_dir, printed and written to report_dir."""
    settings = report_settings(params_path)
    written = build_report(settings.results_dir, settings.report_dir, settings.curves)
    print(written[0].read_text())


def main(argv: list[str] | None = None) -> int:
    """Build the report; one-line errors, exit 1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    return exit_code(lambda: report(args.params))


if __name__ == "__main__":
    sys.exit(main())
