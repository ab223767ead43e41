"""Many CAM methods: compare_methods, ComparisonTable and Holm's adjustment (camavg_core.multiple).

Oracles: Holm's adjustment worked by hand and by its definition (every subset of hypotheses
tested at alpha / size, closed testing) on small families; each pair's numbers from ``compare``
on that pair alone.
"""

from __future__ import annotations

import csv
import io
import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import camavg_core
from camavg_core import compare, compare_methods, holm

pytest.importorskip("scipy.stats")
METRICS = ("average_drop", "average_increase", "average_gain")


def holm_by_definition(p):
    """Closed testing with Bonferroni: H_i is rejected at alpha iff every subset that holds i has
    min p <= alpha / size; the adjusted p is the least such alpha, max over those subsets."""
    m = len(p)
    adjusted = []
    for i in range(m):
        worst = 0.0
        for size in range(1, m + 1):
            for subset in itertools.combinations(range(m), size):
                if i in subset:
                    worst = max(worst, min(1.0, size * min(p[j] for j in subset)))
        adjusted.append(worst)
    return np.array(adjusted)


def test_holm_worked_by_hand():
    # sorted 0.01, 0.02, 0.04, 0.3: 4*0.01 = 0.04, 3*0.02 = 0.06, 2*0.04 = 0.08, 1*0.3 = 0.3
    np.testing.assert_allclose(holm([0.04, 0.01, 0.3, 0.02]), [0.08, 0.04, 0.3, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # 2*0.5 capped, then monotone
    assert holm([]).size == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0, allow_subnormal=False), min_size=1, max_size=6))
def test_holm_equals_closed_testing(p):
    np.testing.assert_allclose(holm(p), holm_by_definition(p), rtol=1e-12, atol=1e-15)


def four_methods(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.beta(5.0, 2.0, size=n)
    shifts = {"gradcam": -0.2, "gradcam++": -0.05, "scorecam": -0.05, "random": 0.0}
    masked = {name: np.clip(y + rng.normal(shift, 0.15, size=n), 0.0, 1.0) for name, shift in shifts.items()}
    return y, masked


@pytest.mark.slow
def test_every_pair_by_default_with_holm_over_the_pairs_of_each_metric():
    y, masked = four_methods()
    table = compare_methods(y, masked)
    pairs = list(itertools.combinations(masked, 2))
    assert [(row.a, row.b) for row in table.rows[::3]] == pairs
    assert len(table.rows) == 6 * 3 and table.adjust == "holm"
    for metric in METRICS:
        rows = [row for row in table.rows if row.metric == metric]
        raw = [compare(y, masked[row.a], masked[row.b]).p_value[metric] for row in rows]
        assert [row.p_value for row in rows] == pytest.approx(raw, rel=1e-12)
        assert [row.p_adjusted for row in rows] == pytest.approx(holm_by_definition(raw), rel=1e-12)
        for row in rows:
            single = compare(y, masked[row.a], masked[row.b])
            assert (row.low, row.high) == pytest.approx(single.ci[metric])
            assert row.difference == pytest.approx(single.difference[metric]) and row.test == "sign_flip"


def test_baseline_and_methods_restrict_the_pairs():
    y, masked = four_methods()
    table = compare_methods(y, masked, baseline="random")
    assert [(row.a, row.b) for row in table.rows[::3]] == [
        ("gradcam", "random"), ("gradcam++", "random"), ("scorecam", "random")
    ]
    only = compare_methods(y, masked, methods=["gradcam", "scorecam"], adjust="none")
    assert [(row.a, row.b) for row in only.rows[::3]] == [("gradcam", "scorecam")]
    assert all(row.p_adjusted == row.p_value and row.adjust == "none" for row in only.rows)
    kept = compare_methods(y, masked, methods=["gradcam"], baseline="random")
    assert [(row.a, row.b) for row in kept.rows[::3]] == [("gradcam", "random")]


def test_significant_pairs_table_and_records():
    y, masked = four_methods(400, 1)
    table = compare_methods(y, masked)
    differ = {(row.a, row.b) for row in table.significant(0.05) if row.metric == "average_drop"}
    assert ("gradcam", "random") in differ and ("gradcam++", "scorecam") not in differ
    text = str(table)
    assert "p holm" in text and "gradcam++" in text and len(text.splitlines()) == 1 + 18
    records = table.to_records()
    json.dumps(records, allow_nan=False)
    assert set(records[0]) == {
        "a", "b", "metric", "difference", "low", "high", "p_value", "p_adjusted", "test", "adjust", "better", "margin"
    }
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    assert buffer.getvalue().count("\n") == 19


def test_a_row_names_the_better_method_on_the_adjusted_p_value_and_the_margin():
    y, masked = four_methods(400, 1)
    table = compare_methods(y, masked, level=0.95)
    for row in table.rows:
        sign = -1.0 if row.metric == "average_drop" else 1.0  # drop: lower is better
        a_side, b_side = min(sign * row.low, sign * row.high), max(sign * row.low, sign * row.high)
        expected = None
        if row.p_adjusted < 0.05 and a_side > 0.5:
            expected = row.a
        elif row.p_adjusted < 0.05 and b_side < -0.5:
            expected = row.b
        assert row.better == expected, row
    drop = {(row.a, row.b): row for row in table.rows if row.metric == "average_drop"}
    assert drop[("gradcam", "random")].better == "random"  # gradcam's maps drop more
    # a margin wider than every interval names no method; Holm's adjustment, not the raw p, decides
    assert all(row.better is None for row in compare_methods(y, masked, margin=100).rows)
    assert "better" in str(table) and "random" in str(table)


@pytest.mark.parametrize("n, floor", [(6, True), (7, True), (8, False)])
def test_a_table_says_when_no_pair_can_be_significant_with_so_few_samples(n, floor):
    """Four methods, each a constant drop apart on every one of n samples: every difference has
    one sign, the strongest evidence n samples can hold. The sign-flip p-value is then 2 / 2^n
    and Holm's first step multiplies it by the 6 pairs (worked out here): below 8 samples it
    stays at 0.05 or more, no row is significant, and the table says that this is the test's
    floor; at 8 the first pairs are significant and it says nothing."""
    y = np.full(n, 0.9)
    o = {name: y - 0.1 * (k + 1) + np.linspace(0, 0.01, n) for k, name in enumerate("abcd")}
    table = compare_methods(y, o)
    smallest = 6 * 2.0 / 2.0**n
    drop = [row for row in table.rows if row.metric == "average_drop"]
    assert min(row.p_adjusted for row in drop) == pytest.approx(min(1.0, smallest))
    assert (not table.significant()) == floor
    text = str(table)
    if floor:
        assert table.unreachable() == (n, pytest.approx(smallest))
        assert (f"n = {n}: no pair can be significant at 0.05, whatever the data: the sign-flip test's smallest "
                f"p-value is 2 / 2^{n} = {2.0 / 2.0**n:.2g}, {smallest:.2g} after Holm's adjustment over 6 pairs") in text
    else:
        assert table.unreachable() is None and "no pair can be significant" not in text


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"adjust": "bonferroni"}, "adjust"),
        ({"baseline": "nope"}, "baseline"),
        ({"methods": ["nope"]}, "methods"),
        ({"test": "anova"}, "test"),
    ],
)
def test_bad_options_are_named(kwargs, words):
    y, masked = four_methods(20)
    with pytest.raises(ValueError, match=words):
        compare_methods(y, masked, **kwargs)


def test_fewer_than_two_methods_is_refused():
    with pytest.raises(ValueError, match="at least two"):
        compare_methods([0.5], {"a": [0.2]})
    with pytest.raises(ValueError, match="significant|alpha"):
        compare_methods([0.5, 0.4], {"a": [0.2, 0.1], "b": [0.3, 0.3]}).significant(5)


def test_exported():
    assert camavg_core.compare_methods is compare_methods and camavg_core.holm is holm
