"""Confidence intervals (camavg_core.stats) against independent computations.

Oracles: Hall's interval and test computed here from the raw values (``scipy.stats.skew``, the
transform inverted by ``scipy.optimize.brentq`` rather than by the closed form the code uses),
``scipy.stats.t.interval`` for the symmetric case, the Wilson interval worked by hand, and
``scipy.stats.bootstrap`` on the shared NumPy reference terms (reference.py). Coverage by
simulation lives in ``test_stats_calibration.py``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camavg_core import MetricState, stats, summarize
from reference import reference_terms

scipy_stats = pytest.importorskip("scipy.stats")
optimize = pytest.importorskip("scipy.optimize")

def simulated_scores(rng, size):
    """Probabilities Y and masked scores O: drop, gain and increase all occur."""
    y = rng.beta(5.0, 2.0, size=size)
    o = np.clip(y + rng.normal(-0.05, 0.2, size=size), 0.0, 1.0)
    return y, o


def skewed_terms(n, seed, share=0.3):
    """Like drop terms: mostly zero, the rest in (0, 1]."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < share, rng.beta(1.0, 2.0, size=n), 0.0)


def hall_by_hand(x, level):
    """Hall's interval from the raw values, inverting g numerically (independent of the code)."""
    n = x.size
    mean, s = x.mean(), x.std(ddof=1)
    a = scipy_stats.skew(x, bias=True) / (3 * math.sqrt(n))
    q = scipy_stats.t.ppf(0.5 + level / 2, n - 1)

    def g(t):
        return t + a * t * t + a * a * t**3 / 3 + a / 2

    t_high = optimize.brentq(lambda t: g(t) - q, -1e3, 1e3, xtol=1e-14)
    t_low = optimize.brentq(lambda t: g(t) + q, -1e3, 1e3, xtol=1e-14)
    se = s / math.sqrt(n)
    return mean - t_high * se, mean - t_low * se, g, se


def sums(x):
    return x.size, x.sum(), (x * x).sum(), (x**3).sum()


# --------------------------------------------------------------------------- Hall's interval
@pytest.mark.parametrize("n, seed, share", [(5, 1, 0.6), (30, 2, 0.2), (100, 3, 0.5), (1000, 4, 0.15)])
@pytest.mark.parametrize("level", [0.8, 0.95, 0.99])
def test_hall_interval_matches_the_transform_inverted_numerically(n, seed, share, level):
    x = skewed_terms(n, seed, share)
    low, high, _, _ = hall_by_hand(x, level)
    assert stats.hall_t_interval(*sums(x), level=level) == pytest.approx((low, high), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("n, seed", [(7, 5), (60, 6), (500, 7)])
def test_hall_test_is_the_p_value_of_the_transformed_statistic(n, seed):
    x = skewed_terms(n, seed, 0.4)
    _, _, g, se = hall_by_hand(x, 0.95)
    for null in (0.0, 0.05, x.mean(), 0.3):
        t0 = (x.mean() - null) / se
        expected = min(1.0, 2 * scipy_stats.t.sf(abs(g(t0)), n - 1))
        assert stats.hall_t_test(*sums(x), null=null) == pytest.approx(expected, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("level", [0.9, 0.95])
def test_the_interval_ends_are_where_the_test_gives_one_minus_level(level):
    x = skewed_terms(80, 9, 0.3)
    low, high = stats.hall_t_interval(*sums(x), level=level)
    for end in (low, high):
        assert stats.hall_t_test(*sums(x), null=end) == pytest.approx(1 - level, rel=1e-8)
    assert stats.hall_t_test(*sums(x), null=0.5 * (low + high)) > 1 - level


def test_symmetric_values_give_the_plain_t_interval():
    x = np.array([0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9])  # skewness 0 exactly
    expected = scipy_stats.t.interval(0.95, 6, loc=x.mean(), scale=x.std(ddof=1) / math.sqrt(7))
    assert stats.hall_t_interval(*sums(x)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n", [2, 17, 250])
@pytest.mark.parametrize("level", [0.8, 0.95])
def test_t_interval_matches_scipy(n, level):
    x = skewed_terms(n, n, 0.5)
    expected = scipy_stats.t.interval(level, n - 1, loc=x.mean(), scale=x.std(ddof=1) / math.sqrt(n))
    assert stats.t_interval(n, x.sum(), (x * x).sum(), level=level) == pytest.approx(expected, rel=1e-9)


def test_degenerate_cases_are_never_nan():
    constant = np.full(1000, 0.3)
    low, high = stats.hall_t_interval(*sums(constant))
    assert low == high == pytest.approx(0.3)
    assert stats.hall_t_interval(50, 0.0, 0.0, 0.0) == (0.0, 0.0)
    assert stats.hall_t_interval(1, 0.4, 0.16, 0.064) == (-math.inf, math.inf)
    assert stats.hall_t_test(1, 0.4, 0.16, 0.064) == 1.0
    assert stats.hall_t_test(50, 0.0, 0.0, 0.0) == 1.0
    assert stats.hall_t_test(*sums(constant)) == 0.0
    one_outlier = np.zeros(100)
    one_outlier[3] = 1.0  # skewness ~10: the cube root crosses zero
    low, high = stats.hall_t_interval(*sums(one_outlier))
    assert math.isfinite(low) and math.isfinite(high) and low < 0.01 < high
    with pytest.raises(ValueError, match="n must be at least 1"):
        stats.hall_t_interval(0, 0.0, 0.0, 0.0)


def test_no_hand_written_distributions_remain():
    for name in ("t_quantile", "_cornish_fisher", "_bca_probabilities", "_normal_quantile"):
        assert not hasattr(stats, name), name


# --------------------------------------------------------------------------- Wilson
def test_wilson_worked_by_hand():
    # 3 of 10, z = 1.959963985: centre = (0.3 + z^2/20) / (1 + z^2/10),
    # half = z * sqrt(0.3 * 0.7 / 10 + z^2 / 400) / (1 + z^2/10)
    z = 1.959963984540054
    shrink = 1 + z * z / 10
    centre = (0.3 + z * z / 20) / shrink
    half = z * math.sqrt(0.021 + z * z / 400) / shrink
    assert stats.wilson_interval(3, 10) == pytest.approx((centre - half, centre + half), rel=1e-12)


@pytest.mark.parametrize("count, n", [(-1, 5), (6, 5), (0, 0)])
def test_wilson_rejects_impossible_counts(count, n):
    with pytest.raises(ValueError, match="count"):
        stats.wilson_interval(count, n)


# --------------------------------------------------------------------------- bootstrap
def test_bootstrap_is_scipy_bca_seeded():
    x = skewed_terms(150, 8)
    expected = scipy_stats.bootstrap(
        (x,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(0)
    ).confidence_interval
    np.testing.assert_allclose(stats.bootstrap_mean_intervals(x), [expected.low, expected.high], rtol=1e-12)
    np.testing.assert_array_equal(stats.bootstrap_mean_intervals(x), stats.bootstrap_mean_intervals(x))


def test_bootstrap_degenerate_cases_are_never_nan():
    np.testing.assert_array_equal(stats.bootstrap_mean_intervals(np.full(500, 0.3)), [0.3, 0.3])
    np.testing.assert_array_equal(stats.bootstrap_mean_intervals([0.7]), [-np.inf, np.inf])
    mixed = stats.bootstrap_mean_intervals(np.array([[0.3, 0.0], [0.3, 1.0], [0.3, 1.0]]))
    assert np.all(np.isfinite(mixed)) and mixed[0, 0] == mixed[0, 1] == 0.3


@pytest.mark.parametrize(
    "kwargs", [{"level": 1.0}, {"n_resamples": 0}, {"n_resamples": 10.5}, {"method": "studentized"}]
)
def test_bootstrap_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        stats.bootstrap_mean_intervals([0.1, 0.2, 0.3], **kwargs)


@pytest.mark.parametrize("columns", [[], [0.1, np.nan], np.zeros((2, 2, 2))])
def test_bootstrap_rejects_bad_columns(columns):
    with pytest.raises(ValueError, match="columns"):
        stats.bootstrap_mean_intervals(columns)


# --------------------------------------------------------------------------- result.ci
def test_streamed_merged_and_in_memory_intervals_are_the_same():
    y, o = simulated_scores(np.random.default_rng(11), 1_000)
    state = MetricState.empty()
    cuts = [13, 400, 401, 777]  # uneven chunks, one of a single sample
    for y_part, o_part in zip(np.array_split(y, cuts), np.array_split(o, cuts)):
        state = state.merge(MetricState.empty().update(y_part, o_part))
    streamed = state.result(level=0.9)
    in_memory = summarize(y, o, level=0.9)
    for name in streamed.ci:
        assert streamed.ci[name] == pytest.approx(in_memory.ci[name], abs=1e-9)
    assert streamed.ci_method == in_memory.ci_method == {
        "average_drop": "hall_t", "average_increase": "wilson", "average_gain": "hall_t"
    }
    terms = reference_terms(y, o)
    for name in ("average_drop", "average_gain"):
        low, high, _, _ = hall_by_hand(terms[name], 0.9)
        assert in_memory.ci[name] == pytest.approx((100 * low, 100 * high), rel=1e-9)
    wilson = scipy_stats.binomtest(int((y < o).sum()), y.size).proportion_ci(0.9, method="wilson")
    assert in_memory.ci["average_increase"] == pytest.approx((100 * wilson.low, 100 * wilson.high), rel=1e-9)


def test_bootstrap_only_when_asked_and_named():
    y, o = simulated_scores(np.random.default_rng(21), 400)
    y[5] = np.nan
    result = summarize(y, o, nan_policy="omit", ci_method="bootstrap", level=0.9)
    keep = np.isfinite(y)
    terms = reference_terms(y[keep], o[keep])
    for name in ("average_drop", "average_gain"):
        expected = scipy_stats.bootstrap(
            (terms[name],), np.mean, confidence_level=0.9, n_resamples=2000, rng=np.random.default_rng(0)
        ).confidence_interval
        assert result.ci[name] == pytest.approx((100 * expected.low, 100 * expected.high), rel=1e-6)
        assert result.ci_method[name] == "bootstrap_bca"
    assert result.ci_method["average_increase"] == "wilson"
    assert summarize(y, o, nan_policy="omit", level=0.9).ci_method["average_drop"] == "hall_t"
    with pytest.raises(ValueError, match="ci_method"):
        summarize(y, o, nan_policy="omit", ci_method="jackknife")


def test_one_sample_gives_the_whole_range_not_nan():
    for result in (summarize([0.8], [0.2]), MetricState.empty().update([0.8], [0.2]).result()):
        assert result.ci["average_drop"] == (0.0, 100.0)
        assert result.ci["average_gain"] == (0.0, 100.0)
        json.dumps(result.to_dict(), allow_nan=False)


def test_all_terms_equal_gives_zero_width():
    y = np.full(64, 0.5)
    result = MetricState.empty().update(y, y).result()  # no drop, no gain, no increase
    # Wilson with 0 of n: the upper end is z^2 / (n + z^2)
    z_squared = 1.959963984540054**2
    assert result.ci == {
        "average_drop": (0.0, 0.0),
        "average_increase": (0.0, pytest.approx(100 * z_squared / (64 + z_squared))),
        "average_gain": (0.0, 0.0),
    }


def test_outside_the_calibrated_conditions_the_result_says_approximate():
    y, o = simulated_scores(np.random.default_rng(3), 200)
    calibrated = summarize(y, o)
    assert not calibrated.approximate and calibrated.notes == ()
    assert "approximate" not in str(calibrated)
    small = summarize(y[:20], o[:20])
    assert small.approximate and "n = 20" in small.notes[0] and "approximate" in str(small)
    # 10 of 100 samples gain (O > Y): fewer than 15% non-zero gain terms
    y_few = np.full(100, 0.5)
    o_few = np.where(np.arange(100) < 10, 0.7, 0.3)
    few = summarize(y_few, o_few)
    assert [note.split(":")[0] for note in few.notes] == ["average_gain"]
    record = few.to_dict()
    assert record["notes"] == list(few.notes) and record["ci_method"]["average_gain"] == "hall_t"
    json.dumps(record, allow_nan=False)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(20, 300), seed=st.integers(0, 2**16))  # from 20: no random pattern is all one sign
def test_a_p_value_beyond_every_random_pattern_is_never_below_the_exact_tests_floor(n, seed):
    """Differences all of one sign: no random sign pattern reaches the statistic, and the
    p-value, read from Hall's t tail, stays between 2 / 2^n (only the observed signs and their
    mirror image reach it in the exact test) and the Monte Carlo floor 1 / (4000 + 1)."""
    d = np.random.default_rng(seed).uniform(0.5, 1.0, n)
    p = stats.sign_flip_test(d)
    assert 2.0 / 2.0**n <= p <= 1.0 / 4001.0
