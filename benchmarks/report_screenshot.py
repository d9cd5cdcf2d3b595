"""The report page as a reader sees it: build a report from synthetic records (9 heads, 2 seeds, 4 data sets of 40
classes, a domain-generalisation group) and photograph index.html in a real headless Chromium.

Usage: python benchmarks/report_screenshot.py [--out /tmp/report-shot] [--chromium /usr/bin/chromium]
Writes <out>/report/index.html and <out>/page.png (1280 px wide, the whole page); prints the page height and the
report's sections.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HEADS = ["zero_shot", "linear_probe", "lp_pp", "clip_adapter", "tip_adapter", "tip_adapter_f", "gda", "coop", "vt_clip"]
DATASETS = ["caltech101", "dtd", "eurosat", "oxford_pets"]


def records(results: Path) -> None:
    """Few-shot records of every head x data set x shots x 2 seeds, and DG records of two heads."""
    from tests.report.records import record, write

    classes = [f"class {i:02d} with a long name" for i in range(40)]
    for h, head in enumerate(HEADS):
        for d, dataset in enumerate(DATASETS):
            for shots in (1, 2, 4, 8, 16):
                for seed in (1, 2):
                    top1 = min(0.99, 0.45 + 0.03 * h + 0.05 * d + 0.06 * shots ** 0.5 + 0.02 * (seed - 1.5))
                    write(results, record(dataset, head, shots, seed, top1, classnames=classes,
                                          model="ViT-B-16", pretrained="openai"))
    for head in ("zero_shot", "coop"):
        for seed in (1, 2):
            targets = [{"dataset": t, "layout": t, "top1": v} for t, v in
                       (("imagenet_v2", 0.6), ("imagenet_sketch", 0.46), ("imagenet_a", 0.48), ("imagenet_r", 0.74))]
            rec = record("imagenet", head, 16, seed, 0.68, model="ViT-B-16", pretrained="openai",
                         protocol="domain_generalisation", transfer={"source": "imagenet", "targets": targets})
            folder = results / head / "imagenet" / "ViT-B-16__openai" / f"k16-s{seed}-dg"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "evaluation.json").write_text(json.dumps(rec))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="/tmp/report-shot")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    from pipeline.report import build_report

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    records(out / "results")
    build_report(out / "results", out / "report")
    page = out / "page.png"
    subprocess.run([args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={page}", "--window-size=1280,16000", (out / "report" / "index.html").as_uri()],
                   check=True, capture_output=True)
    from PIL import Image

    with Image.open(page) as image:
        print(json.dumps({"screenshot": str(page), "size": image.size}))
    sections = [line for line in (out / "report" / "table.md").read_text().splitlines() if line.startswith("## ")]
    print("\n".join(sections))


if __name__ == "__main__":
    main()
