"""Figure pieces: head styles, the shots axis, confusion figures at 1000 classes, attention without images; settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from pipeline.errors import ClipCacheError
from pipeline.report import ReportSettings, report_settings
from pipeline.report.aggregate import Average
from pipeline.report.attention import draw_row
from pipeline.report.confusion import confused_pairs, confusion_figure
from pipeline.report.figures import average_curves, draw_summaries, shots_axis
from pipeline.report.stats import summarise
from pipeline.report.styles import HEAD_ORDER, head_styles


def test_every_head_has_one_style_whatever_the_other_heads_of_the_report() -> None:
    from pipeline.heads import list_heads

    assert sorted(HEAD_ORDER) == list_heads() and len(set(HEAD_ORDER)) == len(HEAD_ORDER)  # a new head is appended
    styles = head_styles(list(HEAD_ORDER))
    assert len({(s.colour, s.marker) for s in styles.values()}) == len(HEAD_ORDER)
    assert styles["zero_shot"].colour == "#1f77b4" and styles["linear_probe"].colour == "#ff7f0e"
    for subset in (["gda"], ["gda", "coop"], ["zero_shot", "gda", "tip_adapter", "mm_adapter"]):
        assert head_styles(subset)["gda"] == styles["gda"]  # gda is gda's colour in every report
    assert head_styles(list(reversed(HEAD_ORDER))) == styles  # the order heads are met in does not matter
    variants = head_styles(["gda", "gda+transclip", "gda+vfree"])
    assert {(v.colour, v.marker) for v in variants.values()} == {(styles["gda"].colour, styles["gda"].marker)}
    assert len({v.dash for v in variants.values()}) == 3
    others = head_styles([f"h{i:03d}" for i in range(140 - len(HEAD_ORDER))] + list(HEAD_ORDER))
    assert len({(s.colour, s.marker) for s in others.values()}) == 140


def test_lines_use_the_head_style_and_a_log2_axis() -> None:
    styles = head_styles(["coop", "zero_shot", "gda"])
    summaries = {("zero_shot", 1): summarise([50.0, 52.0]), ("zero_shot", 4): summarise([51.0]),
                 ("coop", 1): summarise([60.0]), ("coop", 16): summarise([70.0])}
    ax = Figure().subplots()
    assert draw_summaries(ax, summaries, styles) == {"coop", "zero_shot"}
    drawn = [(line.get_color(), line.get_marker(), list(line.get_xdata())) for line in ax.lines]
    assert drawn == [(styles["coop"].colour, styles["coop"].marker, [1, 16]),
                     (styles["zero_shot"].colour, styles["zero_shot"].marker, [1, 4])]
    assert ax.get_xscale() == "log" and list(ax.get_xticks()) == [1, 4, 16]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4", "16"]
    zero = Figure().subplots()
    shots_axis(zero, [0, 1, 2])
    assert zero.get_xscale() == "symlog"


def test_a_1000_class_confusion_figure_is_small(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    matrix = np.diag(rng.integers(20, 50, 1000))  # [1000, 1000]
    np.add.at(matrix, (rng.integers(0, 1000, 3000), rng.integers(0, 1000, 3000)), 1)
    path = confusion_figure(matrix, [f"class {i}" for i in range(1000)], "1000 classes", tmp_path / "c.png")
    with Image.open(path) as image:
        width, height = image.size
    assert 400 <= width <= 1200 and 400 <= height <= 1200
    small = confusion_figure(np.array([[3, 1], [0, 4]]), ["a", "b"], "2 classes", tmp_path / "s.png")
    with Image.open(small) as image:
        assert max(image.size) <= 1200


def test_most_confused_pairs() -> None:
    matrix = np.array([[5, 2, 0], [1, 4, 3], [0, 3, 6]])
    assert confused_pairs(matrix, ["a", "b", "c"], top=3) == [("b", "c", 3, 3 / 8), ("c", "b", 3, 3 / 9),
                                                              ("a", "b", 2, 2 / 7)]
    assert confused_pairs(matrix, ["a", "b", "c"])[-1] == ("b", "a", 1, 1 / 8)
    assert confused_pairs(np.eye(3, dtype=int), ["a", "b", "c"]) == []


def example(image: str) -> dict:
    return {"image": image, "true": 0, "predicted": 1, "attention_true": [[0.1, 0.9], [0.5, 0.5]],
            "attention_predicted": [[0.3, 0.3], [0.2, 0.2]]}


def test_attention_without_the_image_draws_the_grids_alone(tmp_path: Path) -> None:
    row = list(Figure().subplots(1, 3))
    draw_row(row, example(str(tmp_path / "moved" / "img.jpg")), ["cat", "dog"], tmp_path / "evaluation.json")
    assert [ax.get_title() for ax in row] == ["image not found", "true: cat (image not found)",
                                              "predicted: dog (image not found)"]
    assert [len(ax.images) for ax in row] == [0, 1, 1]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "img.png")
    row = list(Figure().subplots(1, 3))
    draw_row(row, example(str(tmp_path / "img.png")), ["cat", "dog"], tmp_path / "evaluation.json")
    assert [ax.get_title() for ax in row] == ["image", "true: cat", "predicted: dog"]
    assert [len(ax.images) for ax in row] == [1, 2, 2]


def test_the_attention_figure_has_one_colour_scale_for_every_map(tmp_path: Path) -> None:
    from pipeline.report.attention import attention_figure

    other = {**example(str(tmp_path / "gone.jpg")), "attention_true": [[0.0, 2.0], [0.5, 0.5]]}
    path = attention_figure([example(str(tmp_path / "gone.jpg")), other], ["cat", "dog"], "t", tmp_path / "e.json",
                            tmp_path / "a.png")
    assert path.is_file()
    fig = Figure()
    axes = fig.subplots(1, 3)
    drawn = draw_row(list(axes), other, ["cat", "dog"], tmp_path / "e.json", vmax=2.0)
    assert drawn is not None and drawn.get_clim() == (0.0, 2.0)
    assert axes[1].images[0].get_clim() == (0.0, 2.0)  # the true class's map on the shared scale


def test_attention_with_a_bad_class_names_the_file(tmp_path: Path) -> None:
    bad = {**example(str(tmp_path / "none.jpg")), "predicted": 7}
    with pytest.raises(ClipCacheError, match=r"evaluation\.json: attention class 7"):
        draw_row(list(Figure().subplots(1, 3)), bad, ["cat", "dog"], tmp_path / "evaluation.json")


def test_report_settings(tmp_path: Path) -> None:
    assert report_settings(tmp_path / "absent.yaml") == ReportSettings("results", "report")
    params = tmp_path / "params.yaml"
    params.write_text("train: {shots: 2}\nevaluate: {results_dir: res, report_dir: rep}\n")
    assert report_settings(params) == ReportSettings("res", "rep")
    assert report_settings(params, ["evaluate.report_dir=other"]) == ReportSettings("res", "other")  # report --set
    assert report_settings(tmp_path / "absent.yaml", ["evaluate.results_dir=r2"]) == ReportSettings("r2", "report")
    params.write_text("evaluate: {results_dir: res, colour: red}\n")
    with pytest.raises(ClipCacheError, match=r"unknown key evaluate\.colour"):
        report_settings(params)


def svg_points(path: Path) -> dict[str, list[tuple[float, float]]]:
    """fill colour -> the (x, y) of every data marker of a matplotlib SVG (those clipped to the axes: the legend's
    markers are not), in drawing order."""
    import re

    points: dict[str, list[tuple[float, float]]] = {}
    for block in re.findall(r'<g clip-path="url\(#[^)]+\)">(.*?)</g>', path.read_text(), flags=re.DOTALL):
        marker = r'<use xlink:href="[^"]+" x="([-\d.]+)" y="([-\d.]+)" style="fill: (#[0-9a-f]{6})'
        for x, y, colour in re.findall(marker, block):
            points.setdefault(colour, []).append((float(x), float(y)))
    return points


def test_the_average_figure_draws_each_heads_own_cells(tmp_path: Path) -> None:
    """Read back from the drawing: each head's markers are its own cells (3 low for 'a', 2 high for 'b'), in its own
    colour."""
    styles = head_styles(["a", "b"])
    average = Average(["X", "Y"], {("a", 1): 10.0, ("a", 2): 20.0, ("a", 4): 30.0, ("b", 1): 80.0, ("b", 2): 90.0},
                      {})
    points = svg_points(average_curves(average, "t", styles, tmp_path / "average.svg"))
    a, b = points[styles["a"].colour], points[styles["b"].colour]
    assert (len(a), len(b)) == (3, 2)
    assert a[0][0] == b[0][0] and a[1][0] == b[1][0]  # 1 and 2 shots at the same x
    assert min(y for _, y in a) > max(y for _, y in b)  # SVG's y grows downwards: every 'a' point is below 'b'
    assert a[0][1] > a[1][1] > a[2][1]  # 10 < 20 < 30
