"""build_report on synthetic evaluation.json records with known top-1 values: every number checked exactly."""

from __future__ import annotations

import base64
import csv
import json
import math
import statistics
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline.errors import ClipCacheError
from pipeline.report import build_report
from pipeline.report.aggregate import by_group, by_model
from pipeline.report.csvs import write_csvs
from pipeline.report.load import load_runs, read_confusion
from tests.report.records import record, write, write_grid

REPO = Path(__file__).resolve().parents[2]
# (dataset, head, shots) -> top-1 of seeds 1, 2, ...; B lacks h2 at 2 shots; seeds differ per cell.
GRID = {("A", "h1", 1): [0.70, 0.72, 0.77], ("A", "h1", 2): [0.80, 0.82], ("B", "h1", 1): [0.50],
        ("B", "h1", 2): [0.60, 0.62], ("A", "h2", 1): [0.40], ("A", "h2", 2): [0.45], ("B", "h2", 1): [0.30, 0.34]}
T = {1: 12.7062, 2: 4.3027}  # t(0.975, df)


def stats(values: list[float]) -> tuple[float, float, float]:
    """(mean, sample std, 95% CI half-width) in percent, computed independently of the library."""
    pct = [100 * v for v in values]
    std = statistics.stdev(pct)
    return statistics.mean(pct), std, T[len(pct) - 1] * std / math.sqrt(len(pct))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    """(results, report folder, written paths) of one report over GRID, built over a stale previous report."""
    root = tmp_path_factory.mktemp("report")
    write_grid(root / "results", GRID)
    for stale in (root / "out" / "figures" / "accuracy_vs_shots__old.png", root / "out" / "curves" / "gone.csv"):
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_bytes(b"stale")
    return root / "results", root / "out", build_report(root / "results", root / "out")


def section(markdown: str, title: str) -> str:
    """The text of the '### title' table of the first '## ' section."""
    top1 = markdown.split("\n## ")[1]
    return top1.split(f"### {title}\n")[1].split("\n### ")[0]


def test_written_files_and_stale_ones_removed(built: tuple[Path, Path, list[Path]]) -> None:
    _, out, written = built
    names = sorted(p.relative_to(out).as_posix() for p in written)
    assert written[0] == out / "table.md"
    assert names == sorted([
        "table.md", "index.html", "runs.csv", "summary.csv", "accuracy_by_shots.csv", "published_vs_ours.csv",
        "transfer.csv",
        "curves/h1.csv", "curves/h2.csv", "figures/accuracy_vs_shots__ViT-B-32__openai.png",
        "figures/accuracy_vs_shots_average__ViT-B-32__openai.png",
        "figures/confusion__A__ViT-B-32__openai__h1__k2.png", "figures/confusion__A__ViT-B-32__openai__h2__k2.png",
        "figures/confusion__B__ViT-B-32__openai__h1__k2.png", "figures/confusion__B__ViT-B-32__openai__h2__k1.png"])
    assert sorted(p.relative_to(out).as_posix() for p in (out / "figures").iterdir()) == \
        sorted(n for n in names if n.startswith("figures/"))
    assert not (out / "curves" / "gone.csv").exists()
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)


def test_figures_are_captioned_and_drawn_at_the_reports_resolution(tmp_path: Path) -> None:
    """Its own report (not the module's): what a figure's caption and resolution come from is run by this test."""
    from PIL import Image

    write_grid(tmp_path / "results", GRID)
    out = tmp_path / "out"
    build_report(tmp_path / "results", out)
    page = (out / "index.html").read_text()
    assert "<figcaption>Top-1 versus shots, mean over A, B, ViT-B-32 / openai</figcaption>" in page
    assert "<figcaption>Top-1 versus shots per data set, ViT-B-32 / openai</figcaption>" in page
    for name in ("accuracy_vs_shots__ViT-B-32__openai.png", "accuracy_vs_shots_average__ViT-B-32__openai.png"):
        with Image.open(out / "figures" / name) as image:
            assert tuple(round(d) for d in image.info["dpi"]) == (110, 110), name


def test_per_dataset_table_mean_std_interval_and_seeds(built: tuple[Path, Path, list[Path]]) -> None:
    markdown = (built[1] / "table.md").read_text()
    a = section(markdown, "A / ViT-B-32 / openai")
    m1, s1, c1 = stats(GRID[("A", "h1", 1)])
    m2, s2, c2 = stats(GRID[("A", "h1", 2)])
    assert (f"| h1 | {m1:.1f} ± {s1:.1f} [{m1 - c1:.1f}, {m1 + c1:.1f}] (n=3) | "
            f"{m2:.1f} ± {s2:.1f} [{m2 - c2:.1f}, {m2 + c2:.1f}] (n=2) |") in a
    assert "| h1 | 73.0 ± 3.6 [64.0, 82.0] (n=3) | 81.0 ± 1.4 [68.3, 93.7] (n=2) |" in a
    assert "| h2 | 40.0 (n=1) | 45.0 (n=1) |" in a
    assert "| head | 1 shot | 2 shots |" in a


def test_one_seed_shows_the_mean_alone(built: tuple[Path, Path, list[Path]]) -> None:
    b = section((built[1] / "table.md").read_text(), "B / ViT-B-32 / openai")
    row = next(line for line in b.splitlines() if line.startswith("| h1 |"))
    one_seed, two_seeds = row.strip("| ").split(" | ")[1:]
    assert one_seed == "50.0 (n=1)" and "±" not in one_seed
    assert two_seeds == "61.0 ± 1.4 [48.3, 73.7] (n=2)"
    assert "| h2 | 32.0 ± 2.8 [6.6, 57.4] (n=2) | — |" in b


def test_average_is_the_mean_of_per_dataset_means(built: tuple[Path, Path, list[Path]]) -> None:
    average = section((built[1] / "table.md").read_text(), "Average / ViT-B-32 / openai")
    h1_1 = (statistics.mean(GRID[("A", "h1", 1)]) + statistics.mean(GRID[("B", "h1", 1)])) / 2 * 100  # 61.5, not 67.25
    h1_2 = (statistics.mean(GRID[("A", "h1", 2)]) + statistics.mean(GRID[("B", "h1", 2)])) / 2 * 100
    h2_1 = (statistics.mean(GRID[("A", "h2", 1)]) + statistics.mean(GRID[("B", "h2", 1)])) / 2 * 100
    assert f"| h1 | {h1_1:.1f} | {h1_2:.1f} |" in average and "| h1 | 61.5 | 71.0 |" in average
    assert f"| h2 | {h2_1:.1f} | — |" in average and "| h2 | 36.0 | — |" in average
    assert "* — h2, 2 shots: lacking in B" in average
    assert "mean over 2 data set(s) (A, B)" in average


def test_other_metrics_have_their_tables(built: tuple[Path, Path, list[Path]]) -> None:
    markdown = (built[1] / "table.md").read_text()
    mpca = markdown.split("## Mean per-class accuracy (%)\n")[1].split("\n## ")[0]
    ece = markdown.split("## Expected calibration error, ECE (%, lower is better)\n")[1].split("\n## ")[0]
    assert "| h1 | 68.0 ± 3.6 [59.0, 77.0] (n=3) | 76.0 ± 1.4 [63.3, 88.7] (n=2) |" in mpca  # top1 - 5 points
    assert "| h1 | 7.30 ± 0.36 [6.40, 8.20] (n=3) | 8.10 ± 0.14 [6.83, 9.37] (n=2) |" in ece  # top1 / 10
    assert "| h1 | 6.15 | 7.10 |" in ece
    assert "RANDOM WEIGHTS" not in markdown


def test_summary_csv(built: tuple[Path, Path, list[Path]]) -> None:
    rows = {(r["dataset"], r["head"], int(r["shots"])): r for r in csv.DictReader((built[1] / "summary.csv").open())}
    assert set(rows) == set(GRID)
    for key, values in GRID.items():
        row = rows[key]
        assert (row["model"], row["pretrained"], row["random_weights"]) == ("ViT-B-32", "openai", "False")
        assert int(row["n_seeds"]) == len(values)
        assert float(row["top1_mean"]) == pytest.approx(100 * statistics.mean(values), abs=1e-4)
        if len(values) == 1:
            assert row["top1_std"] == row["top1_ci95"] == row["top1_ci_low"] == ""
            continue
        mean, std, ci = stats(values)
        assert float(row["top1_std"]) == pytest.approx(std, abs=1e-4)
        assert float(row["top1_ci95"]) == pytest.approx(ci, abs=1e-4)
        assert float(row["top1_ci_low"]) == pytest.approx(mean - ci, abs=1e-4)
        assert float(row["top1_ci_high"]) == pytest.approx(mean + ci, abs=1e-4)
        assert float(row["ece_mean"]) == pytest.approx(mean / 10, abs=1e-4)
        assert float(row["mean_per_class_accuracy_std"]) == pytest.approx(std, abs=1e-4)


def test_runs_csv_names_every_run_and_its_params(built: tuple[Path, Path, list[Path]]) -> None:
    rows = list(csv.DictReader((built[1] / "runs.csv").open()))
    assert len(rows) == sum(len(v) for v in GRID.values()) == 12
    assert list(rows[0]) == ["dataset", "layout", "model", "pretrained", "random_weights", "head", "shots", "seed",
                             "top1", "mean_per_class_accuracy", "ece", "n_test", "selected", "head_params", "source"]
    assert rows[0]["layout"] == "A"  # a record without a layout: the data set's name is its layout
    first = rows[0]
    assert (first["dataset"], first["head"], first["shots"], first["seed"]) == ("A", "h1", "1", "1")
    assert float(first["top1"]) == 0.70 and first["n_test"] == "30"
    assert json.loads(first["head_params"]) == {"alpha": 1.0, "head": "h1"}
    assert json.loads(first["selected"]) == {"alpha": 0.5}
    assert first["head_params"] == '{"alpha": 1.0, "head": "h1"}'  # keys sorted: the same run, the same text
    assert first["source"] == "h1/A/ViT-B-32__openai/k1-s1/evaluation.json"


def test_runs_csv_writes_json_columns_with_sorted_keys(tmp_path: Path) -> None:
    """Two runs whose records list the same selected values in another order give the same CSV text."""
    write(tmp_path / "results", record("A", "h1", 1, 1, 0.5, selected={"beta": 2.0, "alpha": 0.5},
                                       head_params={"z": 1, "a": 2}))
    runs = load_runs(tmp_path / "results")
    write_csvs(runs, by_group(runs), by_model(runs), tmp_path / "results", tmp_path / "out")
    (row,) = csv.DictReader((tmp_path / "out" / "runs.csv").open())
    assert (row["selected"], row["head_params"]) == ('{"alpha": 0.5, "beta": 2.0}', '{"a": 2, "z": 1}')


def test_curves_for_dvc_plots(built: tuple[Path, Path, list[Path]]) -> None:
    out = built[1]
    assert (out / "curves" / "h1.csv").read_text() == "shots,top1\n1,61.5000\n2,71.0000\n"
    assert (out / "curves" / "h2.csv").read_text() == "shots,top1\n1,36.0000\n"
    rows = list(csv.DictReader((out / "accuracy_by_shots.csv").open()))
    assert list(rows[0]) == ["dataset", "model", "pretrained", "head", "shots", "top1", "top1_std", "seeds"]
    by_key = {(r["dataset"], r["head"], r["shots"]): r for r in rows}
    assert len(rows) == len(GRID)
    assert (by_key[("A", "h1", "1")]["top1"], by_key[("A", "h1", "1")]["top1_std"]) == ("73.0000", "3.6056")
    assert (by_key[("B", "h1", "1")]["top1"], by_key[("B", "h1", "1")]["top1_std"]) == ("50.0000", "")
    assert by_key[("A", "h1", "1")]["seeds"] == "3"


class Attributes(HTMLParser):
    """Every tag and its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_index_html_is_self_contained(built: tuple[Path, Path, list[Path]]) -> None:
    _, out, written = built
    page = (out / "index.html").read_text()
    parser = Attributes()
    parser.feed(page)
    links = [attrs.get(k) or "" for _, attrs in parser.tags for k in ("src", "href")]
    assert not any("http://" in link or "https://" in link for link in links)
    assert not any(tag in ("script", "link", "iframe") for tag, _ in parser.tags)
    images = [attrs["src"] or "" for tag, attrs in parser.tags if tag == "img"]
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(images) == len(pngs) == 6 and all(src.startswith("data:image/png;base64,") for src in images)
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in images}
    assert embedded == {p.read_bytes() for p in pngs}
    assert sum(tag == "table" for tag, _ in parser.tags) == 9  # 3 metrics x (A, B, Average)
    # published numbers (none match) and the ranks (too few cells) have nothing to show: one line each, no empty table
    assert page.count('<p class="notes">') == 2 and "Not computed: needs at least two heads and 5 cells" in page
    assert "<td>73.0 ± 3.6 [64.0, 82.0] (n=3)</td>" in page and "<li>— h2, 2 shots: lacking in B</li>" in page


def test_random_weights_attention_without_images_and_many_classes(tmp_path: Path) -> None:
    classes = [f"class{i:02d}" for i in range(40)]
    attention = [{"image": str(tmp_path / "elsewhere" / "img_000.jpg"), "true": 3, "predicted": 1,
                  "attention_true": [[0.1, 0.2], [0.3, 0.4]], "attention_predicted": [[0.4, 0.3], [0.2, 0.1]]}]
    write(tmp_path / "results", record("C", "vt_clip", 4, 1, 0.5, pretrained="none", random_weights=True,
                                       classnames=classes, attention=attention))
    written = build_report(tmp_path / "results", tmp_path / "out")
    markdown = (tmp_path / "out" / "table.md").read_text()
    assert "### C / ViT-B-32 / none — RANDOM WEIGHTS (pretrained: none): numbers carry no meaning" in markdown
    assert (tmp_path / "out" / "figures" / "attention__C__ViT-B-32__none__vt_clip__k4-s1.png") in written
    pairs = markdown.split("## Most confused class pairs\n")[1]
    assert "| true class | predicted as | images per seed | % of the true class |" in pairs
    rows = [line for line in pairs.splitlines() if line.startswith("| class")]
    # confusion(): 5 right per class, class00 -> class01 once (seed 1), class02 -> class00 once
    assert rows == ["| class00 | class01 | 1 | 16.7 |", "| class02 | class00 | 1 | 16.7 |"]
    write(tmp_path / "results", record("C", "vt_clip", 4, 2, 0.5, pretrained="none", random_weights=True,
                                       classnames=classes, attention=attention))  # seed 2: class00 -> class01 twice
    build_report(tmp_path / "results", tmp_path / "out")
    pairs = (tmp_path / "out" / "table.md").read_text().split("## Most confused class pairs\n")[1]
    rows = [line for line in pairs.splitlines() if line.startswith("| class")]
    assert rows == ["| class00 | class01 | 1.5 | 23.1 |", "| class02 | class00 | 1 | 16.7 |"]  # means over seeds


def test_several_models_name_their_curves(tmp_path: Path) -> None:
    write_grid(tmp_path / "results", {("A", "h1", 1): [0.5]})
    write_grid(tmp_path / "results", {("A", "h1", 1): [0.6]}, model="RN50")
    runs = load_runs(tmp_path / "results")
    written = write_csvs(runs, by_group(runs), by_model(runs), tmp_path / "results", tmp_path / "out")
    curves = sorted(p.name for p in written if p.parent.name == "curves")
    assert curves == ["h1__RN50__openai.csv", "h1__ViT-B-32__openai.csv"]
    assert (tmp_path / "out" / "curves" / "h1__RN50__openai.csv").read_text() == "shots,top1\n1,60.0000\n"


def test_no_results_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ClipCacheError, match=r"no evaluation\.json"):
        build_report(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("field", ["seed", "classnames", "metrics.ece", "metrics.confusion"])
def test_a_missing_field_names_file_and_field(tmp_path: Path, field: str) -> None:
    rec = record("A", "h1", 1, 1, 0.5)
    if field.startswith("metrics."):
        del rec["metrics"][field.split(".")[1]]
    else:
        del rec[field]
    path = write(tmp_path, rec)
    with pytest.raises(ClipCacheError) as error:
        load_runs(tmp_path)
    assert str(path) in str(error.value) and f"missing field {field}" in str(error.value)


def test_wrong_types_and_duplicates_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "d", record("A", "h1", 2, 1, 0.5, attention={"image": "x"}))
    with pytest.raises(ClipCacheError) as error:
        load_runs(tmp_path / "d")
    assert str(error.value) == f"{path}: field attention must be a list"
    write(tmp_path / "a", record("A", "h1", "2", 1, 0.5))
    with pytest.raises(ClipCacheError, match="field shots"):
        load_runs(tmp_path / "a")
    write(tmp_path / "b" / "x", record("A", "h1", 2, 1, 0.5))
    write(tmp_path / "b" / "y", record("A", "h1", 2, 1, 0.6))
    with pytest.raises(ClipCacheError, match="both hold h1, 2 shots, seed 1"):
        load_runs(tmp_path / "b")
    rec = record("A", "h1", 2, 1, 0.5)
    rec["classnames"] = ["cat", "dog"]  # a 3 x 3 confusion for 2 class names
    write(tmp_path / "c", rec)
    with pytest.raises(ClipCacheError, match=r"metrics\.confusion must be 2 x 2"):
        read_confusion(load_runs(tmp_path / "c")[0])


def test_cli_report_imports_no_torch_and_reads_params(built: tuple[Path, Path, list[Path]], tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(f"evaluate:\n  results_dir: {built[0]}\n  report_dir: {tmp_path / 'rep'}\n")
    code = ("import sys\nfrom pipeline.cli import main\n"
            f"assert main(['report', '--params', {str(params)!r}]) == 0\n"
            "heavy = sorted({'torch', 'open_clip', 'h5py'} & set(sys.modules))\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith(f"wrote {tmp_path / 'rep' / 'table.md'}, ")
    assert (tmp_path / "rep" / "table.md").read_text().strip() in done.stdout
    assert (tmp_path / "rep" / "table.md").read_text() == (built[1] / "table.md").read_text()
