"""Calibration of camavg's default intervals and tests, by simulation with fixed seeds.

Level 0.95 throughout. The terms are drawn like drop and gain terms: a share of zeros (the
samples where the masked score moved the other way) and skewed values in (0, 1] for the rest;
their true means are known in closed form (share * a / (a + b) for Beta(a, b) values).
Targets: drop and gain intervals cover 93-98% for n in {30, 100, 1000} with at least
15% non-zero terms; Wilson's coverage of the increase rate, averaged over rates 0.03-0.5, is in
94-96% and at least 91% at every rate at n = 30 (computed exactly from the binomial law); the
default paired test rejects 3-7% at n = 100 under the null; Holm keeps the family-wise error of
6 pairs at or below 6%.
"""

from __future__ import annotations

import numpy as np
import pytest

from camavg_core import stats
from camavg_core.compare import holm

scipy_stats = pytest.importorskip("scipy.stats")

TRIALS = 2000
LEVEL = 0.95


def zero_inflated(rng, shape, share, a, b):
    """Terms that are 0 with probability 1 - share, else Beta(a, b); and their true mean."""
    values = np.where(rng.random(shape) < share, rng.beta(a, b, size=shape), 0.0)
    return values, share * a / (a + b)


def power_sums(x):
    """(n, sum, sum of squares, sum of cubes) of each row, as a stream would keep them."""
    return x.shape[1], x.sum(axis=1), (x * x).sum(axis=1), (x**3).sum(axis=1)


# name: (share non-zero, Beta a, Beta b); skewness of the terms about 0.9, 2.9 and 3.0
TERMS = {
    "drop-like, 50% non-zero": (0.5, 2.0, 3.0),
    "drop-like, 15% non-zero": (0.15, 1.0, 1.0),
    "gain-like, 17% non-zero": (0.17, 1.0, 2.0),
}


@pytest.mark.parametrize("n", [30, 100, 1000])
@pytest.mark.parametrize("kind", list(TERMS))
def test_drop_and_gain_intervals_cover_93_to_98_percent(kind, n):
    share, a, b = TERMS[kind]
    rng = np.random.default_rng([n, int(100 * share), int(10 * b)])
    x, true_mean = zero_inflated(rng, (TRIALS, n), share, a, b)
    count, total, squares, cubes = power_sums(x)
    covered = 0
    for s1, s2, s3 in zip(total, squares, cubes):
        low, high = stats.hall_t_interval(count, s1, s2, s3, level=LEVEL)
        covered += low <= true_mean <= high
    coverage = covered / TRIALS
    assert 0.93 <= coverage <= 0.98, f"{kind}, n={n}: coverage {coverage:.3f}"


def test_the_simulated_terms_are_as_skewed_as_drop_and_gain_terms():
    rng = np.random.default_rng(0)
    skewness = {kind: scipy_stats.skew(zero_inflated(rng, 400_000, *TERMS[kind])[0]) for kind in TERMS}
    assert 0.7 < skewness["drop-like, 50% non-zero"] < 1.1
    assert 2.5 < skewness["gain-like, 17% non-zero"] < 3.5


def test_a_plain_t_interval_would_not_be_enough():
    """The reason for the correction: on the gain-like terms at n = 30 plain t undercovers."""
    rng = np.random.default_rng(1)
    x, true_mean = zero_inflated(rng, (TRIALS, 30), *TERMS["gain-like, 17% non-zero"])
    half = scipy_stats.t.ppf(0.975, 29) * x.std(axis=1, ddof=1) / np.sqrt(30)
    plain = np.mean(np.abs(x.mean(axis=1) - true_mean) <= half)
    assert plain < 0.92


def test_wilson_coverage_of_the_increase_rate_at_n_30():
    n = 30
    counts = np.arange(n + 1)
    bounds = np.array([stats.wilson_interval(k, n, level=LEVEL) for k in counts])
    rates = np.linspace(0.03, 0.5, 95)
    coverage = np.array(
        [
            scipy_stats.binom.pmf(counts, n, p)[(bounds[:, 0] <= p) & (p <= bounds[:, 1])].sum()
            for p in rates
        ]
    )
    assert 0.94 <= coverage.mean() <= 0.96
    assert coverage.min() >= 0.91


def test_wilson_coverage_by_simulation_agrees():
    rng = np.random.default_rng(2)
    for rate in (0.03, 0.2, 0.5):
        counts = rng.binomial(30, rate, size=TRIALS)
        bounds = {k: stats.wilson_interval(k, 30) for k in np.unique(counts)}
        covered = np.mean([bounds[k][0] <= rate <= bounds[k][1] for k in counts])
        assert covered >= 0.91


def two_methods_same_mean_drop(rng, shape):
    """a: half the samples drop by Beta(2, 3); b: a quarter drop by Beta(4, 1): both mean 0.2."""
    a, mean_a = zero_inflated(rng, shape, 0.5, 2.0, 3.0)
    b, mean_b = zero_inflated(rng, shape, 0.25, 4.0, 1.0)
    assert mean_a == pytest.approx(mean_b)
    return a - b


def test_the_default_paired_test_rejects_3_to_7_percent_under_the_null():
    d = two_methods_same_mean_drop(np.random.default_rng(3), (TRIALS, 100))
    count, total, squares, cubes = power_sums(d)
    p = np.array([stats.hall_t_test(count, *row) for row in zip(total, squares, cubes)])
    rejected = np.mean(p < 1 - LEVEL)
    assert 0.03 <= rejected <= 0.07, rejected


def test_holm_keeps_the_family_wise_error_of_6_pairs_at_most_6_percent():
    rng = np.random.default_rng(4)
    trials, n = 1000, 100
    # four methods with the same distribution of drop terms: every one of the 6 nulls is true
    terms = np.stack([zero_inflated(rng, (trials, n), 0.4, 2.0, 3.0)[0] for _ in range(4)])
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    any_rejected = 0
    for trial in range(trials):
        p = []
        for i, j in pairs:
            d = terms[i, trial] - terms[j, trial]
            p.append(stats.hall_t_test(n, d.sum(), (d * d).sum(), (d**3).sum()))
        any_rejected += bool(np.any(holm(p) < 0.05))
    assert any_rejected / trials <= 0.06
