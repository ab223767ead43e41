"""Confidence intervals (camavg_core.stats) against SciPy, by hand, and by coverage.

The oracles: ``scipy.stats.t`` for the t quantile and interval, ``scipy.stats.bootstrap`` for
the bootstrap (agreement within Monte-Carlo error), ``binomtest(...).proportion_ci('wilson')``
and a worked example for Wilson, and simulated data whose true means come from a large sample.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from camavg_core import MetricState, summarize
from camavg_core import stats

scipy_stats = pytest.importorskip("scipy.stats")

EPS = 1e-7


def drop_by_hand(y, o):
    return np.maximum(y - o, 0.0) / (y + EPS)


def gain_by_hand(y, o):
    return np.maximum(o - y, 0.0) / (1.0 - y + EPS)


def simulated_scores(rng, size):
    """Probabilities Y and masked scores O: drop, gain and increase all occur."""
    y = rng.beta(5.0, 2.0, size=size)
    o = np.clip(y + rng.normal(-0.05, 0.2, size=size), 0.0, 1.0)
    return y, o


# --------------------------------------------------------------------------- t quantile
@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 8, 29, 30, 99, 999, 1000, 1001, 4999, 10**6])
@pytest.mark.parametrize("probability", [0.5, 0.6, 0.9, 0.975, 0.995, 0.9995, 0.025, 0.3])
def test_t_quantile_matches_scipy(df, probability):
    assert stats.t_quantile(probability, df) == pytest.approx(
        scipy_stats.t.ppf(probability, df), rel=1e-9, abs=1e-12
    )


@pytest.mark.parametrize("bad", [(0.0, 5), (1.0, 5), (0.9, 0), (0.9, 2.5)])
def test_t_quantile_rejects_bad_arguments(bad):
    with pytest.raises(ValueError):
        stats.t_quantile(*bad)


# --------------------------------------------------------------------------- t interval
@pytest.mark.parametrize("n", [2, 3, 17, 250, 5000])
@pytest.mark.parametrize("level", [0.8, 0.95, 0.99])
def test_t_interval_matches_scipy(n, level):
    x = np.random.default_rng(n).beta(0.5, 2.0, size=n)
    standard_error = x.std(ddof=1) / math.sqrt(n)
    expected = scipy_stats.t.interval(level, n - 1, loc=x.mean(), scale=standard_error)
    got = stats.t_interval(n, x.sum(), (x * x).sum(), level=level)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_t_interval_worked_by_hand():
    # x = 0, 0.5, 0.5, 1: mean 0.5, s^2 = (0.25 + 0 + 0 + 0.25) / 3, t(0.975, 3) = 3.182446305
    half_width = 3.182446305284263 * math.sqrt(0.5 / 3 / 4)
    assert stats.t_interval(4, 2.0, 1.5) == pytest.approx((0.5 - half_width, 0.5 + half_width))


def test_t_interval_degenerate_cases_are_never_nan():
    constant = np.full(1000, 0.3)
    low, high = stats.t_interval(1000, constant.sum(), (constant**2).sum())
    assert low == high == pytest.approx(0.3)
    assert stats.t_interval(50, 0.0, 0.0) == (0.0, 0.0)
    assert stats.t_interval(1, 0.4, 0.16) == (-math.inf, math.inf)
    with pytest.raises(ValueError, match="n must be at least 1"):
        stats.t_interval(0, 0.0, 0.0)


# --------------------------------------------------------------------------- Wilson
def test_wilson_worked_by_hand():
    # 3 of 10, z = 1.959963985: centre = (0.3 + z^2/20) / (1 + z^2/10),
    # half = z * sqrt(0.3 * 0.7 / 10 + z^2 / 400) / (1 + z^2/10)
    z = 1.959963984540054
    shrink = 1 + z * z / 10
    centre = (0.3 + z * z / 20) / shrink
    half = z * math.sqrt(0.021 + z * z / 400) / shrink
    low, high = stats.wilson_interval(3, 10)
    assert (low, high) == pytest.approx((centre - half, centre + half), rel=1e-12)
    assert (round(low, 4), round(high, 4)) == (0.1078, 0.6032)


@pytest.mark.parametrize(
    "count, n", [(0, 1), (1, 1), (0, 20), (20, 20), (3, 10), (41, 100), (777, 5000)]
)
@pytest.mark.parametrize("level", [0.9, 0.95, 0.999])
def test_wilson_matches_scipy(count, n, level):
    expected = scipy_stats.binomtest(count, n).proportion_ci(level, method="wilson")
    got = stats.wilson_interval(count, n, level=level)
    assert got == pytest.approx((expected.low, expected.high), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("count, n", [(-1, 5), (6, 5), (0, 0)])
def test_wilson_rejects_impossible_counts(count, n):
    with pytest.raises(ValueError, match="count"):
        stats.wilson_interval(count, n)


# --------------------------------------------------------------------------- bootstrap
def skewed_terms(n, seed):
    """Like drop terms: mostly zero, the rest in (0, 1], so BCa and percentile differ."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.7, 0.0, rng.beta(2.0, 1.0, size=n))


@pytest.mark.parametrize("method", ["BCa", "percentile"])
@pytest.mark.parametrize("n, seed", [(40, 7), (300, 8)])
def test_bootstrap_agrees_with_scipy_within_monte_carlo_error(method, n, seed):
    x = skewed_terms(n, seed)
    expected = scipy_stats.bootstrap(
        (x,), np.mean, n_resamples=50_000, method=method, rng=np.random.default_rng(99)
    ).confidence_interval
    low, high = stats.bootstrap_mean_intervals(x, n_resamples=50_000, method=method, seed=1)
    # Monte-Carlo error of an endpoint at B = 50,000 is about 1% of the width; BCa and
    # percentile differ by 5-10% of the width on these data, so 2.5% tells them apart
    tolerance = 0.025 * (expected.high - expected.low)
    assert abs(low - expected.low) < tolerance
    assert abs(high - expected.high) < tolerance


def test_bootstrap_memory_chunks_do_not_change_the_interval(monkeypatch):
    # one resample per chunk (n > the chunk budget) must still give the same distribution
    monkeypatch.setattr(stats, "_INDICES_PER_CHUNK", 7)
    x = skewed_terms(60, 3)
    expected = scipy_stats.bootstrap(
        (x,), np.mean, n_resamples=20_000, rng=np.random.default_rng(5)
    ).confidence_interval
    low, high = stats.bootstrap_mean_intervals(x, n_resamples=20_000)
    tolerance = 0.04 * (expected.high - expected.low)
    assert abs(low - expected.low) < tolerance and abs(high - expected.high) < tolerance


def test_bootstrap_is_seeded_and_columns_are_independent_of_each_other():
    x = np.stack([skewed_terms(80, 1), skewed_terms(80, 2)], axis=1)
    both = stats.bootstrap_mean_intervals(x)
    assert both.shape == (2, 2)
    np.testing.assert_array_equal(both, stats.bootstrap_mean_intervals(x))
    # a column's interval does not depend on the other columns (same resampled rows)
    np.testing.assert_allclose(both[0], stats.bootstrap_mean_intervals(x[:, 0]), rtol=1e-12)
    assert not np.array_equal(both, stats.bootstrap_mean_intervals(x, seed=1))


def test_bootstrap_degenerate_cases_are_never_nan():
    np.testing.assert_array_equal(stats.bootstrap_mean_intervals(np.full(500, 0.3)), [0.3, 0.3])
    np.testing.assert_array_equal(stats.bootstrap_mean_intervals([0.7]), [-np.inf, np.inf])
    one_outlier = np.zeros(100)
    one_outlier[3] = 1.0  # BCa's acceleration is large here
    low, high = stats.bootstrap_mean_intervals(one_outlier)
    assert 0.0 <= low <= 0.01 < high <= 0.06
    mixed = stats.bootstrap_mean_intervals(np.array([[0.3, 0.0], [0.3, 1.0], [0.3, 1.0]]))
    assert np.all(np.isfinite(mixed)) and mixed[0, 0] == mixed[0, 1] == 0.3


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"level": 1.0}, ValueError),
        ({"level": 0}, ValueError),
        ({"level": "0.95"}, TypeError),
        ({"n_resamples": 0}, ValueError),
        ({"n_resamples": 10.5}, TypeError),
        ({"method": "basic"}, ValueError),
    ],
)
def test_bootstrap_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        stats.bootstrap_mean_intervals([0.1, 0.2, 0.3], **kwargs)


@pytest.mark.parametrize("columns", [[], [0.1, np.nan], np.zeros((2, 2, 2))])
def test_bootstrap_rejects_bad_columns(columns):
    with pytest.raises(ValueError, match="columns"):
        stats.bootstrap_mean_intervals(columns)


# --------------------------------------------------------------------------- result.ci
def test_streamed_intervals_equal_the_in_memory_t_interval():
    y, o = simulated_scores(np.random.default_rng(11), 1_000)
    state = MetricState.empty()
    cuts = [13, 400, 401, 777]  # uneven chunks, one of a single sample
    for y_part, o_part in zip(np.array_split(y, cuts), np.array_split(o, cuts)):
        state = state.merge(MetricState.empty().update(y_part, o_part))
    ci = state.result(level=0.9).ci
    n = y.size
    for name, terms in (("average_drop", drop_by_hand(y, o)), ("average_gain", gain_by_hand(y, o))):
        standard_error = terms.std(ddof=1) / math.sqrt(n)
        low, high = scipy_stats.t.interval(0.9, n - 1, loc=terms.mean(), scale=standard_error)
        assert ci[name] == pytest.approx((100 * low, 100 * high), rel=1e-9)
    wilson = scipy_stats.binomtest(int((y < o).sum()), n).proportion_ci(0.9, method="wilson")
    assert ci["average_increase"] == pytest.approx((100 * wilson.low, 100 * wilson.high), rel=1e-9)


def test_stream_of_one_sample_gives_the_whole_range_not_nan():
    result = MetricState.empty().update([0.8], [0.2]).result()
    assert result.ci["average_drop"] == (0.0, 100.0)
    assert result.ci["average_gain"] == (0.0, 100.0)
    json.dumps(result.to_dict(), allow_nan=False)


def test_stream_with_all_terms_equal_gives_zero_width():
    y = np.full(64, 0.5)
    result = MetricState.empty().update(y, y).result()  # no drop, no gain, no increase
    # Wilson with 0 of n: the upper end is (z^2 / n) / (1 + z^2 / n) = z^2 / (n + z^2)
    z_squared = 1.959963984540054**2
    assert result.ci == {
        "average_drop": (0.0, 0.0),
        "average_increase": (0.0, pytest.approx(100 * z_squared / (64 + z_squared))),
        "average_gain": (0.0, 0.0),
    }


def test_summarize_intervals_agree_with_scipy():
    y, o = simulated_scores(np.random.default_rng(21), 400)
    y[5] = np.nan
    result = summarize(y, o, nan_policy="omit", level=0.9)
    keep = np.isfinite(y)
    for name, terms in (
        ("average_drop", drop_by_hand(y[keep], o[keep])),
        ("average_gain", gain_by_hand(y[keep], o[keep])),
    ):
        expected = scipy_stats.bootstrap(
            (terms,), np.mean, confidence_level=0.9, n_resamples=20_000,
            rng=np.random.default_rng(2),
        ).confidence_interval
        low, high = result.ci[name]
        # summarize uses 2,000 resamples: endpoint Monte-Carlo error about 3% of the width
        tolerance = 0.1 * 100 * (expected.high - expected.low)
        assert abs(low - 100 * expected.low) < tolerance
        assert abs(high - 100 * expected.high) < tolerance
    wilson = scipy_stats.binomtest(int((y[keep] < o[keep]).sum()), int(keep.sum())).proportion_ci(
        0.9, method="wilson"
    )
    assert result.ci["average_increase"] == pytest.approx((100 * wilson.low, 100 * wilson.high))
    assert summarize(y, o, nan_policy="omit", level=0.9).ci == result.ci  # seeded


def test_summarize_of_one_sample_is_not_nan():
    result = summarize([0.8], [0.2])
    assert result.ci["average_drop"] == (0.0, 100.0)
    json.dumps(result.to_dict(), allow_nan=False)


# --------------------------------------------------------------------------- coverage
TRIALS = 1000
TRIAL_SIZE = 100


@pytest.fixture(scope="module")
def coverage_data():
    """True means from 2,000,000 samples; 1,000 seeded trials of 100 samples each."""
    y_big, o_big = simulated_scores(np.random.default_rng(12345), 2_000_000)
    truth = {
        "average_drop": drop_by_hand(y_big, o_big).mean(),
        "average_gain": gain_by_hand(y_big, o_big).mean(),
        "average_increase": (y_big < o_big).mean(),
    }
    y, o = simulated_scores(np.random.default_rng(2024), (TRIAL_SIZE, TRIALS))  # a trial per column
    trials = {
        "average_drop": drop_by_hand(y, o),
        "average_gain": gain_by_hand(y, o),
        "average_increase": (y < o).astype(np.float64),
    }
    return truth, trials


def covered_share(intervals, true_mean):
    intervals = np.asarray(intervals)
    return float(np.mean((intervals[:, 0] <= true_mean) & (true_mean <= intervals[:, 1])))


@pytest.mark.parametrize("name", ["average_drop", "average_gain"])
def test_bootstrap_interval_covers_the_true_mean_95_percent_of_the_time(coverage_data, name):
    truth, trials = coverage_data
    # every trial is a column, so one call bootstraps all 1,000 trials
    intervals = stats.bootstrap_mean_intervals(trials[name], n_resamples=999, seed=7)
    share = covered_share(intervals, truth[name])
    print(f"{name}: BCa bootstrap covers in {share:.1%} of {TRIALS} trials")
    assert 0.93 <= share <= 0.97


@pytest.mark.parametrize("name", ["average_drop", "average_gain"])
def test_t_interval_covers_the_true_mean_95_percent_of_the_time(coverage_data, name):
    truth, trials = coverage_data
    terms = trials[name]
    intervals = [
        stats.t_interval(TRIAL_SIZE, column.sum(), (column * column).sum()) for column in terms.T
    ]
    share = covered_share(intervals, truth[name])
    print(f"{name}: t interval covers in {share:.1%} of {TRIALS} trials")
    assert 0.93 <= share <= 0.97


def test_wilson_interval_covers_the_true_increase_95_percent_of_the_time(coverage_data):
    truth, trials = coverage_data
    counts = trials["average_increase"].sum(axis=0).astype(int)
    intervals = [stats.wilson_interval(count, TRIAL_SIZE) for count in counts]
    share = covered_share(intervals, truth["average_increase"])
    print(f"average_increase: Wilson covers in {share:.1%} of {TRIALS} trials")
    assert 0.93 <= share <= 0.97


def test_summarize_uses_the_bootstrap_not_the_t_interval_for_drop_and_gain():
    """On 25 skewed drop terms the BCa bootstrap and the t-interval differ visibly; summarize
    (per-sample vectors available) must give the bootstrap, a stream (sums only) the t one."""
    import scipy.stats

    y = np.full(25, 0.9)
    o = np.where(np.arange(25) < 3, 0.0, 0.89)  # three large drops, the rest tiny: skewed
    drop = np.maximum(0, y - o) / (y + 1e-7)
    boot = scipy.stats.bootstrap((drop,), np.mean, confidence_level=0.95, method="BCa",
                                 n_resamples=20000, random_state=1).confidence_interval
    t_low, t_high = scipy.stats.t.interval(0.95, 24, loc=drop.mean(), scale=drop.std(ddof=1) / 5)
    low, high = summarize(y, o).ci["average_drop"]
    # the BCa interval is shifted up against the t one on right-skewed data
    assert abs(low - 100 * boot.low) < abs(low - 100 * t_low)
    assert abs(high - 100 * boot.high) < abs(high - 100 * t_high)
    streamed = MetricState.empty().update(y, o).result().ci["average_drop"]
    assert streamed == pytest.approx((max(0.0, 100 * t_low), 100 * t_high), abs=1e-6)  # clipped at 0
