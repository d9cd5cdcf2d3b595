"""Mean, sample std and Student-t interval over seeds, against values computed here by hand."""

from __future__ import annotations

import itertools
import math

import pytest

from pipeline.report.stats import Summary, summarise, t_quantile


@pytest.mark.parametrize(("df", "expected"), [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571),
                                              (9, 2.262), (10, 2.228), (20, 2.086), (29, 2.045), (30, 2.042),
                                              (31, 2.040), (40, 2.021), (60, 2.000), (120, 1.980), (10**6, 1.960)])
def test_t_quantile_known_values(df: int, expected: float) -> None:
    assert t_quantile(df) == pytest.approx(expected, abs=1e-3)


def test_t_quantile_decreases_towards_the_normal_quantile() -> None:
    values = [t_quantile(df) for df in range(1, 200)]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert values[-1] > 1.96
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile(0)


def test_three_seeds_mean_sample_std_and_interval() -> None:
    summary = summarise([70.0, 72.0, 77.0])
    std = math.sqrt(((70 - 73) ** 2 + (72 - 73) ** 2 + (77 - 73) ** 2) / 2)  # ddof = 1
    assert summary.mean == pytest.approx(73.0)
    assert summary.std == pytest.approx(std)
    assert summary.ci95 == pytest.approx(4.3027 * std / math.sqrt(3))
    assert summary.interval == pytest.approx((73.0 - 4.3027 * std / math.sqrt(3), 73.0 + 4.3027 * std / math.sqrt(3)))
    assert summary.n == 3


def test_two_seeds_use_t_with_one_degree_of_freedom() -> None:
    summary = summarise([80.0, 82.0])
    assert summary.std == pytest.approx(math.sqrt(2))
    assert summary.ci95 == pytest.approx(12.7062 * math.sqrt(2) / math.sqrt(2))


def test_one_seed_has_no_spread() -> None:
    assert summarise([64.5]) == Summary(64.5, None, None, 1)
    assert summarise([64.5]).interval is None
    with pytest.raises(ValueError):
        summarise([])


def test_an_interval_wider_than_the_metric_is_clipped_to_its_range() -> None:
    """Two seeds 80.5 and 86.0: t(1) = 12.706 gives [48.3, 118.2]; a percentage cannot leave [0, 100]."""
    from pipeline.report.tables import format_summary

    wide = summarise([80.5, 86.0])
    assert wide.interval is not None and wide.interval[1] > 100
    assert format_summary(wide) == "83.2 ± 3.9 [48.3, 100.0] (n=2)"
    assert format_summary(summarise([1.0, 3.0])) == "2.0 ± 1.4 [0.0, 14.7] (n=2)"  # an ECE near 0
    assert format_summary(summarise([70.0, 71.0, 72.0])) == "71.0 ± 1.0 [68.5, 73.5] (n=3)"  # inside: unchanged
