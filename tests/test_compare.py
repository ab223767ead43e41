"""Paired comparison of two CAM methods (camavg_core.compare, camavg_core.pair_state).

Oracles: the differences of the tests' shared NumPy reference terms (reference.py), the
skewness-corrected interval and test on those differences (checked against an independent
computation in test_stats.py), ``scipy.stats.wilcoxon`` and ``binomtest`` for the named tests,
and the duality of test and interval on drawn data.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import camavg_core
from camavg_core import PairState, compare, stats
from camavg_core.compare import Comparison, mcnemar_p_value, wilcoxon_p_value
from reference import reference_terms

scipy_stats = pytest.importorskip("scipy.stats")

METRICS = ("average_drop", "average_increase", "average_gain")


def differences_by_hand(y, o_a, o_b):
    a, b = reference_terms(y, o_a), reference_terms(y, o_b)
    return {name: a[name] - b[name] for name in METRICS}


def two_methods(n, seed):
    """Method a masks away more of the evidence than method b, on the same samples."""
    rng = np.random.default_rng(seed)
    y = rng.beta(5.0, 2.0, size=n)
    o_a = np.clip(y + rng.normal(-0.10, 0.2, size=n), 0.0, 1.0)
    o_b = np.clip(y + rng.normal(-0.05, 0.2, size=n), 0.0, 1.0)
    return y, o_a, o_b


def test_difference_interval_and_p_value_are_those_of_the_paired_differences():
    y, o_a, o_b = two_methods(300, 1)
    result = compare(y, o_a, o_b, level=0.9)
    for name, d in differences_by_hand(y, o_a, o_b).items():
        assert result.difference[name] == pytest.approx(100 * d.mean(), abs=1e-9)
        sums = (d.size, d.sum(), (d * d).sum(), (d**3).sum())
        low, high = stats.hall_t_interval(*sums, level=0.9)
        assert result.ci[name] == pytest.approx((100 * low, 100 * high), abs=1e-9)
        assert result.p_value[name] == pytest.approx(stats.hall_t_test(*sums), rel=1e-9, abs=1e-300)
        assert result.test[name] == "t" and result.dual[name]
    assert result.n == 300 and result.skipped == 0 and result.ci_method == "hall_t"


@st.composite
def paired_scores(draw):
    n = draw(st.integers(2, 40))
    # few distinct values, so exact ties and equal terms are common
    grid = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5 + 3e-7, 0.75, 0.9, 1.0])
    scores = st.lists(grid, min_size=n, max_size=n).map(np.array)
    return draw(scores), draw(scores), draw(scores), draw(st.sampled_from([0.8, 0.9, 0.95, 0.99]))


@settings(max_examples=150, deadline=None)
@given(paired_scores())
def test_p_below_one_minus_level_exactly_when_the_interval_excludes_zero(data):
    y, o_a, o_b, level = data
    result = compare(y, o_a, o_b, level=level)
    for name in METRICS:
        p, (low, high) = result.p_value[name], result.ci[name]
        # at the boundary itself float rounding may fall either way; nothing to decide there
        assume(abs(p - (1 - level)) > 1e-9)
        assert (p < 1 - level) == (not low <= 0.0 <= high), (name, p, low, high)


def test_float_noise_is_no_difference():
    y, o_a, _ = two_methods(200, 2)
    o_b = o_a + np.where(np.arange(200) % 2, 1e-7, -1e-7)
    o_b = np.clip(o_b, 0.0, 1.0)
    result = compare(y, o_a, o_b, names=("gradcam++", "layercam"))
    assert result.difference == dict.fromkeys(METRICS, 0.0)
    assert result.ci == dict.fromkeys(METRICS, (0.0, 0.0))
    assert result.p_value == dict.fromkeys(METRICS, 1.0)
    assert all(result.no_difference.values())
    assert str(result).count("no difference") == 3
    for test in ("wilcoxon", "mcnemar"):
        assert compare(y, o_a, o_b, test=test).p_value == dict.fromkeys(METRICS, 1.0)


def test_a_difference_above_the_tie_tolerance_is_kept():
    y = np.full(40, 0.5)
    o_a, o_b = np.full(40, 0.3), np.full(40, 0.3 - 5e-5)  # 5x the tie tolerance (1e-5)
    result = compare(y, o_a, o_b)
    # drop a - b = -5e-5 / 0.5 on every sample: zero spread, the mean is the difference
    assert result.difference["average_drop"] == pytest.approx(-100 * 1e-4, rel=1e-6)
    assert result.p_value["average_drop"] == 0.0 and not result.no_difference["average_drop"]


def test_wilcoxon_by_name_is_scipy_with_zeros_kept_and_says_it_is_not_dual():
    y, o_a, o_b = two_methods(150, 3)
    result = compare(y, o_a, o_b, test="wilcoxon")
    d = differences_by_hand(y, o_a, o_b)
    for name in ("average_drop", "average_gain"):
        expected = scipy_stats.wilcoxon(d[name], zero_method="pratt").pvalue
        assert result.p_value[name] == pytest.approx(expected, rel=1e-9)
        assert result.test[name] == "wilcoxon" and not result.dual[name]
    assert result.test["average_increase"] == "mcnemar"
    assert "not dual" in result.to_dict()["test"]["average_drop"]
    assert "(wilcoxon)" in str(result)
    # the interval stays the default one
    assert result.ci == compare(y, o_a, o_b).ci


def test_mcnemar_by_name_is_binomtest_on_the_discordant_pairs():
    y, o_a, o_b = two_methods(500, 6)
    increase_a, increase_b = y < o_a, y < o_b
    only_a = int(np.sum(increase_a & ~increase_b))
    only_b = int(np.sum(~increase_a & increase_b))
    expected = scipy_stats.binomtest(only_a, only_a + only_b).pvalue
    result = compare(y, o_a, o_b, test="mcnemar")
    assert result.p_value["average_increase"] == pytest.approx(expected, rel=1e-9)
    assert result.test == {"average_drop": "t", "average_increase": "mcnemar", "average_gain": "t"}
    assert mcnemar_p_value([1, 1, 1, 1, 0], [0, 0, 0, 0, 0]) == pytest.approx(2 / 2**4)


def test_tests_are_checked():
    with pytest.raises(ValueError, match="test"):
        compare([0.5], [0.2], [0.3], test="anova")
    with pytest.raises(ValueError, match="does not apply"):
        compare([0.5], [0.2], [0.3], test={"average_drop": "mcnemar"})


def test_wilcoxon_worked_by_hand():
    assert wilcoxon_p_value([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(2 / 2**5)
    assert wilcoxon_p_value(np.zeros(30)) == 1.0


def test_swapping_the_methods_negates_the_difference_and_interval():
    y, o_a, o_b = two_methods(80, 8)
    forward, backward = compare(y, o_a, o_b), compare(y, o_b, o_a)
    for name in METRICS:
        assert forward.difference[name] == pytest.approx(-backward.difference[name], abs=1e-9)
        low, high = backward.ci[name]
        assert forward.ci[name] == pytest.approx((-high, -low), abs=1e-9)
        assert forward.p_value[name] == pytest.approx(backward.p_value[name], rel=1e-9)


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
    assert result.notes and "approximate" in str(result)
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
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["names"] == ["Grad-CAM++", "Grad-CAM"]
    assert data["test"]["average_drop"].startswith("t: ") and data["dual"]["average_drop"] is True


def test_nan_policy_omit_skips_a_sample_non_finite_in_any_vector():
    y, o_a, o_b = two_methods(60, 11)
    o_b[4] = np.nan
    y[9] = np.inf
    result = compare(y, o_a, o_b, nan_policy="omit")
    keep = np.ones(60, dtype=bool)
    keep[[4, 9]] = False
    assert result.n == 58 and result.skipped == 2
    clean = compare(y[keep], o_a[keep], o_b[keep])
    for name in METRICS:
        assert result.difference[name] == pytest.approx(clean.difference[name], abs=1e-12)
        assert result.p_value[name] == pytest.approx(clean.p_value[name], rel=1e-9)


@pytest.mark.parametrize(
    "arguments, error, words",
    [
        (([0.5, 0.5], [0.1, 0.2], [0.1]), ValueError, "o_c_b"),
        (([0.5, 0.5], [0.1], [0.1, 0.2]), ValueError, "o_c_a"),
        (([0.5, 0.5], [0.1, 0.2], [0.1, np.nan]), ValueError, "o_c_b"),
        (([2.0, 0.5], [0.1, 0.2], [0.1, 0.2]), ValueError, "logits"),
        (([0.5, 0.5], [0.1, 0.2], [-0.1, 0.2]), ValueError, "o_c_b holds -0.1"),
        (([0.5, 0.5], [0.1, 0.2], "scores"), TypeError, "o_c_b"),
    ],
)
def test_bad_input_is_named(arguments, error, words):
    with pytest.raises(error, match=words):
        compare(*arguments)


def test_missing_scipy_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # makes `import scipy.stats` fail
    with pytest.raises(ImportError, match=r"pip install scipy"):
        compare([0.5, 0.6], [0.2, 0.3], [0.3, 0.1])


def test_exported_from_the_package():
    assert camavg_core.compare is compare and camavg_core.Comparison is Comparison


# --------------------------------------------------------------------------- PairState
@settings(max_examples=40, deadline=None)
@given(st.integers(2, 60), st.integers(0, 10_000), st.data())
def test_pair_state_split_anywhere_merges_to_the_in_memory_comparison(n, seed, data):
    y, o_a, o_b = two_methods(n, seed)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=4)))
    state = PairState.empty()
    for part in zip(*(np.split(v, cuts) for v in (y, o_a, o_b))):
        state = state.merge(PairState.empty().update(*part))
    streamed, in_memory = state.result(level=0.9), compare(y, o_a, o_b, level=0.9)
    assert streamed.n == in_memory.n == n
    for name in METRICS:
        assert streamed.difference[name] == pytest.approx(in_memory.difference[name], abs=1e-9)
        assert streamed.ci[name] == pytest.approx(in_memory.ci[name], abs=1e-9)
        assert streamed.p_value[name] == pytest.approx(in_memory.p_value[name], abs=1e-9)


def test_pair_state_sums_by_hand_and_omit():
    y, o_a, o_b = np.array([0.8, 0.6, np.nan]), np.array([0.2, 0.6, 0.1]), np.array([0.4, 0.3, 0.1])
    state = PairState.empty().update(y, o_a, o_b, nan_policy="omit").to_numpy()
    d = differences_by_hand(y[:2], o_a[:2], o_b[:2])["average_drop"]  # 0.25, -0.5
    assert (state.n, state.skipped, state.drop_nonzero) == (2, 1, 2)
    assert state.drop_sum == pytest.approx(d.sum()) and state.drop_cube_sum == pytest.approx((d**3).sum())
    with pytest.raises(ValueError, match="y_c"):
        PairState.empty().update(y, o_a, o_b)
    with pytest.raises(TypeError, match="PairState"):
        state.merge((0,) * 14)


def test_a_paired_bootstrap_only_when_asked_scipy_bca_seeded():
    y, o_a, o_b = two_methods(120, 12)
    result = compare(y, o_a, o_b, ci_method="bootstrap", level=0.9)
    d = differences_by_hand(y, o_a, o_b)
    for name in METRICS:
        expected = scipy_stats.bootstrap(
            (d[name],), np.mean, confidence_level=0.9, n_resamples=2000, rng=np.random.default_rng(0)
        ).confidence_interval
        assert result.ci[name] == pytest.approx((100 * expected.low, 100 * expected.high), rel=1e-6)
    assert result.ci_method == "bootstrap_bca" and not any(result.dual.values())
    assert result.p_value == compare(y, o_a, o_b, level=0.9).p_value
    with pytest.raises(ValueError, match="ci_method"):
        compare(y, o_a, o_b, ci_method="jackknife")
