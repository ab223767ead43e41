"""Paired comparison of two CAM methods (camavg_core.compare).

Oracles: the differences worked out with NumPy from the equations, ``scipy.stats.bootstrap``
with ``paired=True`` for the interval, ``scipy.stats.binomtest`` on the discordant pairs for
McNemar, and the Wilcoxon p-value on cases worked by hand (exact and normal approximation).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from statistics import NormalDist

import numpy as np
import pytest

import camavg_core
from camavg_core import compare
from camavg_core.compare import Comparison, mcnemar_p_value, wilcoxon_p_value

scipy_stats = pytest.importorskip("scipy.stats")

EPS = 1e-7
METRICS = ("average_drop", "average_increase", "average_gain")


def terms_by_hand(y, o):
    return {
        "average_drop": np.maximum(y - o, 0.0) / (y + EPS),
        "average_increase": (y < o).astype(np.float64),
        "average_gain": np.maximum(o - y, 0.0) / (1.0 - y + EPS),
    }


def two_methods(n, seed):
    """Method a masks away more of the evidence than method b, on the same samples."""
    rng = np.random.default_rng(seed)
    y = rng.beta(5.0, 2.0, size=n)
    o_a = np.clip(y + rng.normal(-0.10, 0.2, size=n), 0.0, 1.0)
    o_b = np.clip(y + rng.normal(-0.05, 0.2, size=n), 0.0, 1.0)
    return y, o_a, o_b


def test_difference_is_a_minus_b_in_percentage_points():
    y, o_a, o_b = two_methods(300, 1)
    result = compare(y, o_a, o_b)
    a, b = terms_by_hand(y, o_a), terms_by_hand(y, o_b)
    for name in METRICS:
        expected = 100 * (a[name].mean() - b[name].mean())
        assert result.difference[name] == pytest.approx(expected, abs=1e-9)
    assert result.n == 300 and result.skipped == 0 and result.level == 0.95


@pytest.mark.parametrize("name", METRICS)
def test_paired_interval_agrees_with_scipy_bootstrap(name):
    y, o_a, o_b = two_methods(200, 2)
    a, b = terms_by_hand(y, o_a)[name], terms_by_hand(y, o_b)[name]
    expected = scipy_stats.bootstrap(
        (a, b),
        lambda u, v, axis: np.mean(u - v, axis=axis),
        paired=True,
        n_resamples=30_000,
        rng=np.random.default_rng(3),
    ).confidence_interval
    low, high = compare(y, o_a, o_b, n_resamples=30_000).ci[name]
    # endpoint Monte-Carlo error at B = 30,000 is about 1.5% of the width
    tolerance = 0.05 * 100 * (expected.high - expected.low)
    assert abs(low - 100 * expected.low) < tolerance and abs(high - 100 * expected.high) < tolerance


@pytest.mark.parametrize("name", ["average_drop", "average_gain"])
def test_wilcoxon_p_value_is_scipy_on_the_term_differences(name):
    y, o_a, o_b = two_methods(120, 4)
    o_b[:10] = o_a[:10]  # zero differences are left out ('wilcox')
    differences = terms_by_hand(y, o_a)[name] - terms_by_hand(y, o_b)[name]
    expected = scipy_stats.wilcoxon(differences[differences != 0]).pvalue
    assert compare(y, o_a, o_b).p_value[name] == pytest.approx(expected, rel=1e-9)


def test_wilcoxon_exact_case_worked_by_hand():
    # 6 distinct positive differences: W- = 0 is the most extreme of 2**6 equally likely signs
    assert wilcoxon_p_value([0.1, 0.25, 0.3, 0.42, 0.5, 0.61]) == pytest.approx(2 / 2**6)
    # one negative, the smallest: W- = 1 reached by 2 of 64 sign patterns, each tail 2/64
    assert wilcoxon_p_value([-0.1, 0.25, 0.3, 0.42, 0.5, 0.61]) == pytest.approx(4 / 2**6)
    # zeros are left out before ranking
    assert wilcoxon_p_value([0.0, 0.0, 0.1, 0.25, 0.3, 0.42, 0.5, 0.61]) == pytest.approx(2 / 2**6)


def test_wilcoxon_large_sample_is_the_normal_approximation():
    rng = np.random.default_rng(5)
    differences = rng.normal(0.1, 1.0, size=400)
    n = differences.size
    ranks = scipy_stats.rankdata(np.abs(differences))
    w_plus = ranks[differences > 0].sum()
    z = (w_plus - n * (n + 1) / 4) / math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    assert wilcoxon_p_value(differences) == pytest.approx(2 * NormalDist().cdf(-abs(z)), rel=1e-6)


def test_wilcoxon_all_zero_differences_gives_one():
    assert wilcoxon_p_value(np.zeros(30)) == 1.0


@pytest.mark.parametrize(
    "only_a, only_b, both, neither",
    [(0, 0, 5, 5), (1, 0, 0, 0), (4, 0, 3, 3), (3, 3, 1, 0), (7, 2, 10, 20), (2, 7, 0, 1),
     (60, 35, 400, 500), (20_000, 19_500, 0, 0)],
)
def test_mcnemar_is_binomtest_on_the_discordant_pairs(only_a, only_b, both, neither):
    increase_a = np.array([1] * only_a + [0] * only_b + [1] * both + [0] * neither)
    increase_b = np.array([0] * only_a + [1] * only_b + [1] * both + [0] * neither)
    discordant = only_a + only_b
    expected = 1.0 if discordant == 0 else scipy_stats.binomtest(only_a, discordant, 0.5).pvalue
    assert mcnemar_p_value(increase_a, increase_b) == pytest.approx(expected, rel=1e-9)


def test_mcnemar_p_value_in_compare():
    y, o_a, o_b = two_methods(500, 6)
    increase_a, increase_b = y < o_a, y < o_b
    only_a = int(np.sum(increase_a & ~increase_b))
    only_b = int(np.sum(~increase_a & increase_b))
    expected = scipy_stats.binomtest(only_a, only_a + only_b).pvalue
    assert compare(y, o_a, o_b).p_value["average_increase"] == pytest.approx(expected, rel=1e-9)


def test_a_method_against_itself_differs_by_nothing():
    y, o_a, _ = two_methods(50, 7)
    result = compare(y, o_a, o_a)
    assert result.difference == {name: 0.0 for name in METRICS}
    assert result.ci == {name: (0.0, 0.0) for name in METRICS}
    assert result.p_value == {name: 1.0 for name in METRICS}


def test_swapping_the_methods_negates_the_difference():
    y, o_a, o_b = two_methods(80, 8)
    forward, backward = compare(y, o_a, o_b), compare(y, o_b, o_a)
    for name in METRICS:
        assert forward.difference[name] == pytest.approx(-backward.difference[name], abs=1e-9)
        assert forward.p_value[name] == pytest.approx(backward.p_value[name])


def test_a_clear_difference_is_significant_and_its_interval_excludes_zero():
    y, o_a, o_b = two_methods(2_000, 9)
    result = compare(y, o_a, o_b)
    low, high = result.ci["average_drop"]
    assert 0 < low < result.difference["average_drop"] < high
    assert result.p_value["average_drop"] < 1e-6


def test_one_sample_is_not_nan():
    result = compare([0.8], [0.2], [0.6])
    assert result.ci["average_drop"] == (-100.0, 100.0)
    assert result.p_value == {name: 1.0 for name in METRICS}
    json.dumps(result.to_dict(), allow_nan=False)


def test_result_is_frozen_summarised_in_one_line_and_json_ready():
    y, o_a, o_b = two_methods(100, 10)
    result = compare(y, o_a, o_b, names=("Grad-CAM++", "Grad-CAM"), level=0.9)
    assert isinstance(result, Comparison)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.n = 3
    line = str(result)
    assert line == result.summary() and "\n" not in line
    assert line.startswith("Grad-CAM++ - Grad-CAM (n=100, 90% CI)")
    assert all(name in line for name in METRICS)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["names"] == ["Grad-CAM++", "Grad-CAM"]
    assert data["difference"]["average_gain"] == pytest.approx(result.difference["average_gain"])


def test_nan_policy_omit_skips_a_sample_non_finite_in_any_vector():
    y, o_a, o_b = two_methods(60, 11)
    o_b[4] = np.nan
    y[9] = np.inf
    result = compare(y, o_a, o_b, nan_policy="omit")
    keep = np.ones(60, dtype=bool)
    keep[[4, 9]] = False
    assert result.n == 58 and result.skipped == 2
    clean = compare(y[keep], o_a[keep], o_b[keep])
    assert result.difference == clean.difference and result.p_value == clean.p_value


@pytest.mark.parametrize(
    "arguments, error, words",
    [
        (([0.5, 0.5], [0.1, 0.2], [0.1]), ValueError, "o_c_b"),
        (([0.5, 0.5], [0.1], [0.1, 0.2]), ValueError, "O_c"),
        (([0.5, 0.5], [0.1, 0.2], [0.1, np.nan]), ValueError, "O_c_b"),
        (([2.0, 0.5], [0.1, 0.2], [0.1, 0.2]), ValueError, "logits"),
        (([0.5, 0.5], [0.1, 0.2], "scores"), TypeError, "O_c_b"),
    ],
)
def test_bad_input_is_named(arguments, error, words):
    with pytest.raises(error, match=words):
        compare(*arguments)


def test_bad_level_is_named():
    with pytest.raises(ValueError, match="level"):
        compare([0.5], [0.2], [0.3], level=95)


def test_missing_scipy_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # makes `from scipy.stats import` fail
    with pytest.raises(ImportError, match=r"pip install camavg\[stats\]"):
        compare([0.5, 0.6], [0.2, 0.3], [0.3, 0.1])


def test_exported_from_the_package():
    assert camavg_core.compare is compare and camavg_core.Comparison is Comparison
