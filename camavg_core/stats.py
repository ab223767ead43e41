r"""Confidence intervals for Average Drop, Average Increase and Average Gain.

Three intervals, each chosen for what is at hand:

- **Bootstrap** (:func:`bootstrap_mean_intervals`), for Average Drop and Average Gain when the
  per-sample terms are there (``summarize``, ``evaluate``): BCa by default, seeded, vectorised.
- **Student t** (:func:`t_interval`), for Average Drop and Average Gain from a stream, which keeps
  only :math:`n`, :math:`\sum x_i` and :math:`\sum x_i^2` (``MetricState.result``).
- **Wilson score** (:func:`wilson_interval`), for Average Increase, a proportion: only the count
  of increases is needed, so it is the same in memory and streamed.

The low-level functions work in the units of the terms (fractions); :func:`intervals_from_terms`
and :func:`intervals_from_sums` give the ``result.ci`` dictionary, in percent and clipped to
[0, 100] like the metrics.

Degenerate data, never NaN:

- all terms equal (zero variance, ``n >= 2``): the zero-width interval ``(mean, mean)``;
- ``n = 1``: one sample says nothing about the spread, so drop and gain get ``(-inf, inf)``,
  which ``result.ci`` clips to the whole possible range ``(0.0, 100.0)``. Wilson is defined
  for ``n = 1`` and is used as it is.

Only NumPy and the standard library are used: the t quantile is computed here (exactly from the
closed-form distribution function for integer degrees of freedom), so streaming intervals need
no SciPy.
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist
from typing import Any

import numpy as np

from camavg_core.validation import check_level

#: bootstrap resamples used by ``summarize`` and ``compare`` unless told otherwise
DEFAULT_RESAMPLES = 2000
#: the bootstrap seed, fixed so the same scores always give the same interval
DEFAULT_SEED = 0
#: resample indices drawn at once; small enough to stay in cache, so memory does not grow with N
_INDICES_PER_CHUNK = 2**17
#: above this many degrees of freedom the Cornish-Fisher series is exact to float64 rounding
_CORNISH_FISHER_FROM_DF = 1000
_METHODS = ("bca", "percentile")


# --------------------------------------------------------------------------- argument checks
def _check_resampling(n_resamples: Any, method: str) -> str:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)):
        raise TypeError(
            f"n_resamples must be an int such as 2000, got {type(n_resamples).__name__}."
        )
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1 (2000 is usual), got {n_resamples}.")
    if not isinstance(method, str) or method.lower() not in _METHODS:
        raise ValueError(f"method must be 'BCa' or 'percentile', got {method!r}.")
    return method.lower()


# --------------------------------------------------------------------------- quantiles
_STANDARD_NORMAL = NormalDist()
_normal_cdf = np.vectorize(_STANDARD_NORMAL.cdf, otypes=[float])
_normal_quantile = np.vectorize(_STANDARD_NORMAL.inv_cdf, otypes=[float])


def _t_two_sided_mass(theta: float, coefficients: np.ndarray, odd: bool) -> float:
    """P(|T| <= sqrt(df) tan(theta)) for integer df (Abramowitz & Stegun 26.7.3-4)."""
    cos2 = math.cos(theta) ** 2
    # the series in cos^2(theta), all powers at once (np.polyval loops in Python)
    series = float(coefficients @ cos2 ** np.arange(coefficients.size))
    if odd:
        return 2.0 / math.pi * (theta + math.sin(theta) * math.cos(theta) * series)
    return math.sin(theta) * series


@functools.lru_cache(maxsize=256)
def t_quantile(probability: float, df: int) -> float:
    r"""Quantile of Student's t distribution with ``df`` (an integer >= 1) degrees of freedom.

    For ``df <= 1000`` it inverts the closed form of :math:`P(|T| \le t)` with
    :math:`\theta = \arctan(t / \sqrt{\nu})`:

    .. math::

        \nu \text{ odd: } \tfrac{2}{\pi}\Big(\theta + \sin\theta\cos\theta
            \sum_{k=0}^{(\nu-3)/2} \tfrac{2 \cdot 4 \cdots 2k}{3 \cdot 5 \cdots (2k+1)}
            \cos^{2k}\theta\Big), \qquad
        \nu \text{ even: } \sin\theta \sum_{k=0}^{(\nu-2)/2}
            \tfrac{1 \cdot 3 \cdots (2k-1)}{2 \cdot 4 \cdots 2k} \cos^{2k}\theta

    by bisection in :math:`\theta`; above, the Cornish-Fisher expansion in :math:`1/\nu`
    (Abramowitz & Stegun 26.7.5), whose first omitted term is below float64 rounding there.

    >>> round(t_quantile(0.975, 1), 6)   # Cauchy: tan(0.475 pi)
    12.706205
    >>> round(t_quantile(0.975, 10), 6), round(t_quantile(0.025, 10), 6)
    (2.228139, -2.228139)
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must lie strictly between 0 and 1, got {probability!r}.")
    if int(df) != df or df < 1:
        raise ValueError(f"df must be an integer >= 1, got {df!r}.")
    df = int(df)
    if probability == 0.5:
        return 0.0
    if probability < 0.5:
        return -t_quantile(1.0 - probability, df)
    if df > _CORNISH_FISHER_FROM_DF:
        return _cornish_fisher(_STANDARD_NORMAL.inv_cdf(probability), df)
    target = 2.0 * probability - 1.0
    odd = df % 2 == 1
    k = np.arange(1, (df - 3) // 2 + 1 if odd else (df - 2) // 2 + 1)
    ratios = 2 * k / (2 * k + 1) if odd else (2 * k - 1) / (2 * k)
    coefficients = np.concatenate(([1.0], np.cumprod(ratios))) if (df > 1) else np.empty(0)
    low, high = 0.0, math.pi / 2
    for _ in range(200):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if _t_two_sided_mass(middle, coefficients, odd) < target:
            low = middle
        else:
            high = middle
    return math.sqrt(df) * math.tan(0.5 * (low + high))


def _cornish_fisher(z: float, df: int) -> float:
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


# --------------------------------------------------------------------------- intervals
def t_interval(
    n: int, total: float, sq_total: float, *, level: float = 0.95
) -> tuple[float, float]:
    r"""Student t interval of a mean from the sums a stream keeps.

    .. math::

        \bar x = \frac{S}{n}, \qquad s^2 = \frac{Q - S \bar x}{n - 1}, \qquad
        \bar x \pm t_{(1+\mathrm{level})/2,\, n-1} \frac{s}{\sqrt n}

    with :math:`S = \sum x_i` and :math:`Q = \sum x_i^2`. A centred sum of squares within
    float64 rounding of zero (:math:`Q - S\bar x \le 10^{-12} Q`) counts as zero variance and
    gives ``(mean, mean)``; ``n = 1`` gives ``(-inf, inf)``.

    >>> low, high = t_interval(4, 2.0, 1.5, level=0.95)  # x = 0, 0.5, 0.5, 1: s^2 = 1/6
    >>> round(low, 6), round(high, 6)
    (-0.149614, 1.149614)
    """
    level = check_level(level)
    if n < 1:
        raise ValueError(f"n must be at least 1 to form an interval, got {n}.")
    mean = total / n
    if n == 1:
        return (-math.inf, math.inf)
    centred = sq_total - total * mean
    if centred <= 1e-12 * abs(sq_total):
        return (mean, mean)
    half_width = t_quantile(0.5 + level / 2, n - 1) * math.sqrt(centred / (n - 1) / n)
    return (mean - half_width, mean + half_width)


def wilson_interval(count: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    r"""Wilson score interval of a proportion ``count / n``.

    .. math::

        \frac{\hat p + \frac{z^2}{2n} \pm z \sqrt{\frac{\hat p (1 - \hat p)}{n}
        + \frac{z^2}{4n^2}}}{1 + \frac{z^2}{n}}, \qquad z = \Phi^{-1}\Big(\frac{1 +
        \mathrm{level}}{2}\Big)

    >>> low, high = wilson_interval(3, 10)
    >>> round(low, 4), round(high, 4)
    (0.1078, 0.6032)
    """
    level = check_level(level)
    if n < 1 or not 0 <= count <= n:
        raise ValueError(
            f"wilson_interval needs 0 <= count <= n and n >= 1, got count={count}, n={n}."
        )
    z = _STANDARD_NORMAL.inv_cdf(0.5 + level / 2)
    proportion = count / n
    shrink = 1.0 + z * z / n
    centre = (proportion + z * z / (2 * n)) / shrink
    half_width = z * math.sqrt(proportion * (1 - proportion) / n + z * z / (4 * n * n)) / shrink
    return (max(0.0, centre - half_width), min(1.0, centre + half_width))


def _resampled_means(columns: np.ndarray, n_resamples: int, seed: Any) -> np.ndarray:
    """(n_resamples, k) means of the k columns over the same bootstrap resamples of the rows."""
    n = columns.shape[0]
    rng = np.random.default_rng(seed)
    # the narrowest index type that holds n - 1: fewer random bits to draw and to read
    index_type = next(t for t in (np.uint8, np.uint16, np.uint32, np.int64) if n - 1 <= np.iinfo(t).max)
    by_column = np.ascontiguousarray(columns.T)  # (k, n): each column's values side by side
    per_chunk = max(1, _INDICES_PER_CHUNK // n)
    means = np.empty((n_resamples, columns.shape[1]))
    for start in range(0, n_resamples, per_chunk):
        size = min(per_chunk, n_resamples - start)
        rows = rng.integers(0, n, size=(size, n), dtype=index_type)
        # (k, size, n) gathered values, summed over each resample's n draws
        means[start : start + size] = np.take(by_column, rows, axis=1).sum(axis=2).T / n
    return means


def _column_quantiles(sorted_values: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Linear-interpolation quantile of each column at its own probability (NumPy's default)."""
    position = probabilities * (sorted_values.shape[0] - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, sorted_values.shape[0] - 1)
    column = np.arange(sorted_values.shape[1])
    low_value, high_value = sorted_values[below, column], sorted_values[above, column]
    return low_value + (position - below) * (high_value - low_value)


def _bca_probabilities(
    columns: np.ndarray, means: np.ndarray, resampled: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Efron's bias-corrected and accelerated quantile levels, one pair per column."""
    n_resamples = resampled.shape[0]
    # bias correction z0: where the estimate sits in its bootstrap distribution (ties count half)
    below = (resampled < means).sum(axis=0) + (resampled <= means).sum(axis=0)
    share = np.clip(below / (2 * n_resamples), 0.5 / n_resamples, 1 - 0.5 / n_resamples)
    z0 = _normal_quantile(share)
    # acceleration from the jackknife; for a mean it is the skewness of the deviations / 6
    deviations = columns - means
    with np.errstate(invalid="ignore", divide="ignore"):
        acceleration = (deviations**3).sum(axis=0) / (6 * ((deviations**2).sum(axis=0)) ** 1.5)
    acceleration = np.nan_to_num(acceleration, nan=0.0)
    levels = []
    for z_alpha in (_STANDARD_NORMAL.inv_cdf(alpha), -_STANDARD_NORMAL.inv_cdf(alpha)):
        shifted = z0 + z_alpha
        denominator = 1 - acceleration * shifted
        # past a vanishing denominator the BCa map folds back; its limit is the end of the range
        with np.errstate(divide="ignore", invalid="ignore"):
            adjusted = np.where(
                denominator > 0, z0 + shifted / denominator, np.sign(shifted) * np.inf
            )
        levels.append(_normal_cdf(adjusted))
    return levels[0], levels[1]


def bootstrap_mean_intervals(
    columns: Any,
    *,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: Any = DEFAULT_SEED,
    method: str = "BCa",
) -> np.ndarray:
    r"""Bootstrap confidence intervals of the mean of each column, over the same resamples.

    Each resample draws ``n`` rows with replacement; its mean is
    :math:`\bar x^*_b = \frac{1}{n}\sum_i c_{bi} x_i` with :math:`c_{bi}` the times row ``i`` was
    drawn. The rows are shared by the columns, which is what a paired comparison needs. The
    ``'percentile'`` interval takes the :math:`\alpha/2` and :math:`1-\alpha/2` quantiles of
    the :math:`\bar x^*_b`; ``'BCa'`` (default) moves them to

    .. math::

        \Phi\Big(z_0 + \frac{z_0 + z_{\alpha}}{1 - a (z_0 + z_{\alpha})}\Big),\quad
        z_0 = \Phi^{-1}\big(\#\{\bar x^*_b < \bar x\} / B\big),\quad
        a = \frac{\sum_i (x_i - \bar x)^3}{6 (\sum_i (x_i - \bar x)^2)^{3/2}}

    Indices are drawn a chunk at a time, so memory stays bounded for any ``n``.

    Args:
        columns: (n,) or (n, k) finite values; each column is one statistic's per-sample terms.
        level: confidence level.
        n_resamples: bootstrap resamples B.
        seed: seed or ``numpy.random.Generator``; the fixed default makes results reproducible.
        method: ``'BCa'`` or ``'percentile'``.

    Returns:
        (2,) for a vector, (k, 2) for k columns: ``[low, high]`` in the columns' units. A
        constant column gives ``[mean, mean]``; ``n = 1`` gives ``[-inf, inf]``.

    >>> bootstrap_mean_intervals([0.25, 0.25, 0.25])
    array([0.25, 0.25])
    >>> low, high = bootstrap_mean_intervals(np.linspace(0, 1, 101))
    >>> bool(0.43 < low < 0.46 and 0.54 < high < 0.57)
    True
    """
    level = check_level(level)
    method = _check_resampling(n_resamples, method)
    values = np.asarray(columns, dtype=np.float64)
    vector = values.ndim == 1
    if vector:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(
            f"columns must have shape (n,) or (n, k) with n >= 1, got {np.shape(columns)}."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError("columns holds non-finite values; drop those samples first.")
    n = values.shape[0]
    means = values.sum(axis=0) / n
    if n == 1:
        bounds = np.tile([-np.inf, np.inf], (values.shape[1], 1))
        return bounds[0] if vector else bounds
    resampled = np.sort(_resampled_means(values, int(n_resamples), seed), axis=0)
    alpha = (1 - level) / 2
    if method == "bca":
        low_level, high_level = _bca_probabilities(values, means, resampled, alpha)
    else:
        low_level = np.full(values.shape[1], alpha)
        high_level = np.full(values.shape[1], 1 - alpha)
    bounds = np.stack(
        [_column_quantiles(resampled, low_level), _column_quantiles(resampled, high_level)], axis=1
    )
    constant = np.all(values == values[0], axis=0)
    bounds[constant] = values[0, constant, None]
    return bounds[0] if vector else bounds


# --------------------------------------------------------------------------- result.ci
def as_percent(interval: Any, lower: float = 0.0, upper: float = 100.0) -> tuple[float, float]:
    """An interval of a mean of terms, in percent, clipped to ``[lower, upper]``."""
    low, high = (float(np.clip(100.0 * float(bound), lower, upper)) for bound in interval)
    return (low, high)


def intervals_from_sums(
    n: int,
    drop_sum: float,
    drop_sq_sum: float,
    gain_sum: float,
    gain_sq_sum: float,
    increase_count: int,
    *,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """``result.ci`` of a stream: t intervals for drop and gain, Wilson for increase, in percent.

    >>> ci = intervals_from_sums(4, 2.0, 1.5, 0.0, 0.0, 2)
    >>> ci["average_drop"], ci["average_gain"]
    ((0.0, 100.0), (0.0, 0.0))
    """
    return {
        "average_drop": as_percent(t_interval(n, drop_sum, drop_sq_sum, level=level)),
        "average_increase": as_percent(wilson_interval(increase_count, n, level=level)),
        "average_gain": as_percent(t_interval(n, gain_sum, gain_sq_sum, level=level)),
    }


def intervals_from_terms(
    drop: Any,
    gain: Any,
    increase: Any,
    *,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: Any = DEFAULT_SEED,
    method: str = "BCa",
) -> dict[str, tuple[float, float]]:
    """``result.ci`` from the per-sample terms: bootstrap for drop and gain, Wilson for increase.

    >>> ci = intervals_from_terms([0.5, 0.5], [0.0, 0.0], [0.0, 1.0])
    >>> ci["average_drop"], ci["average_gain"]
    ((50.0, 50.0), (0.0, 0.0))
    """
    increase = np.asarray(increase)
    bounds = bootstrap_mean_intervals(
        np.stack([np.asarray(drop, dtype=np.float64), np.asarray(gain, dtype=np.float64)], axis=1),
        level=level,
        n_resamples=n_resamples,
        seed=seed,
        method=method,
    )
    return {
        "average_drop": as_percent(bounds[0]),
        "average_increase": as_percent(
            wilson_interval(int(np.count_nonzero(increase)), increase.shape[0], level=level)
        ),
        "average_gain": as_percent(bounds[1]),
    }
