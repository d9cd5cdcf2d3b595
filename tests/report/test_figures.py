"""Figure pieces: head styles, the shots axis, confusion figures at 1000 classes, attention without images; settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from pipeline.report.confusion import confusion_figure
from pipeline.report.figures import draw_summaries, shots_axis
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
    assert len(ax.collections) == 1 and not ax.containers  # two seeds at one cell: a faint band, no error bars


def test_many_heads_show_their_spread_as_nudged_error_bars_not_bands() -> None:
    """Past three heads in one plot the ± std bands would merge into one smear: thin error bars instead, each head's
    shifted sideways by the same width on the log axis."""
    heads = ["zero_shot", "coop", "gda", "tip_adapter", "clap"]
    styles = head_styles(heads)
    summaries = {(h, k): summarise([50.0 + i, 54.0 + i]) for i, h in enumerate(heads) for k in (1, 4)}
    ax = Figure().subplots()
    draw_summaries(ax, summaries, styles)
    assert not [c for c in ax.collections if c.__class__.__name__ == "FillBetweenPolyCollection"]
    assert len(ax.containers) == len(heads)
    centres = sorted(float(np.log2(bar.lines[2][0].get_segments()[0][0][0])) for bar in ax.containers)  # at 1 shot
    gaps = np.diff(centres)
    assert np.allclose(gaps, gaps[0]) and gaps[0] > 0 and abs(float(np.mean(centres))) < 1e-9


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


def test_every_confusion_heat_map_has_its_colour_scale_and_mean_counts_read_as_such(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    drawn: list[Figure] = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *args, **kwargs: drawn.append(fig) or real(fig, *args, **kwargs))
    confusion_figure(np.array([[3.0, 1.5], [0.0, 4.0]]), ["a", "b"], "mean of 2 seeds", tmp_path / "m.png")
    (fig,) = drawn
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "fraction of the true class"  # the colour bar
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["0", "1.5", "3", "4"]
