"""Calibration of the default interval (Hall's skewness-corrected t from sums) on the terms of
the fraction metrics, by simulation with fixed seeds, as for the averages
(tests/test_stats_calibration.py): per-sample AUCs of Deletion and Insertion (values in [0, 1],
skewed either way, with a share of curves that never move) and per-sample correlations of
MuFidelity (in [-1, 1], centred near 0 or skewed). True means are known in closed form. Target:
93-97% at level 0.95 for n in {30, 100, 1000}."""

from __future__ import annotations

import numpy as np
import pytest

from camavg_core import stats

TRIALS = 2000
LEVEL = 0.95


def auc_deletion(rng, shape):
    """Deletion AUCs: Beta(2, 6) (most curves fall fast), 10% flat at 1 (the score never moves)."""
    flat = rng.random(shape) < 0.1
    return np.where(flat, 1.0, rng.beta(2.0, 6.0, size=shape)), 0.1 + 0.9 * 2.0 / 8.0


def auc_insertion(rng, shape):
    """Insertion AUCs: Beta(5, 2), 10% at 0 (the score never rises)."""
    zero = rng.random(shape) < 0.1
    return np.where(zero, 0.0, rng.beta(5.0, 2.0, size=shape)), 0.9 * 5.0 / 7.0


def correlation_centred(rng, shape):
    """MuFidelity terms near 0: 2 Beta(3, 3) - 1."""
    return 2.0 * rng.beta(3.0, 3.0, size=shape) - 1.0, 0.0


def correlation_skewed(rng, shape):
    """MuFidelity terms of a faithful CAM: 2 Beta(6, 1.5) - 1 (most near 1, a long left tail)."""
    return 2.0 * rng.beta(6.0, 1.5, size=shape) - 1.0, 2.0 * 6.0 / 7.5 - 1.0


KINDS = {"deletion AUC": auc_deletion, "insertion AUC": auc_insertion,
         "correlation near 0": correlation_centred, "skewed correlation": correlation_skewed}


@pytest.mark.parametrize("n", [30, 100, 1000])
@pytest.mark.parametrize("kind", list(KINDS))
def test_the_default_interval_covers_93_to_97_percent(kind, n):
    rng = np.random.default_rng([n, len(kind)])
    x, true_mean = KINDS[kind](rng, (TRIALS, n))
    total, squares, cubes = x.sum(axis=1), (x * x).sum(axis=1), (x**3).sum(axis=1)
    covered = 0
    for s1, s2, s3 in zip(total, squares, cubes):
        low, high = stats.hall_t_interval(n, s1, s2, s3, level=LEVEL)
        covered += low <= true_mean <= high
    coverage = covered / TRIALS
    assert 0.93 <= coverage <= 0.97, f"{kind}, n={n}: coverage {coverage:.3f}"
