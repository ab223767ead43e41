r"""Confidence intervals and the paired test of camavg, from mergeable sums where it can.

Which interval each metric gets by default, and why:

- **Average Drop, Average Gain** (``ci_method`` ``"hall_t"``): a skewness-corrected t interval
  (Hall 1992) of the mean of the per-sample terms. The terms pile up at zero and are skewed,
  where a plain t interval undercovers (87.5% at n = 30 on gain-like terms); the correction needs
  only :math:`n, \sum x, \sum x^2, \sum x^3`, so a stream, a merge of splits, a distributed run
  and the Keras metrics get the same interval as the in-memory ``summarize`` (to float rounding).
- **Average Increase** (``"wilson"``): the Wilson score interval of the proportion of increases
  (``scipy.stats.binomtest``), from the count alone.
- On request, in memory only (``summarize(..., ci_method="bootstrap")``): a seeded BCa bootstrap
  (``scipy.stats.bootstrap``, ``"bootstrap_bca"``).

Calibration (``tests/test_stats_calibration.py``): at level 0.95 the default intervals cover
93-98% for n in {30, 100, 1000} when at least 15% of the terms are non-zero. Outside those
conditions (:data:`MIN_CALIBRATED_N`, :data:`MIN_NONZERO_SHARE`) the result says the interval is
approximate (:func:`approximate_notes`).

Degenerate data, never NaN: all terms equal gives ``(mean, mean)``; ``n = 1`` gives
``(-inf, inf)``, which ``result.ci`` clips to the whole range.

SciPy is imported inside the functions, so ``import camavg_core`` stays light.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from camavg_core.validation import check_level

#: bootstrap resamples of ``ci_method="bootstrap"`` unless told otherwise
DEFAULT_RESAMPLES = 2000
#: the bootstrap seed, fixed so the same scores always give the same interval
DEFAULT_SEED = 0
#: below this many samples the default intervals are not calibrated (see the module docstring)
MIN_CALIBRATED_N = 30
#: below this share of non-zero terms the drop and gain intervals are not calibrated
MIN_NONZERO_SHARE = 0.15
#: a centred sum of squares this small relative to the raw one is float rounding of zero spread
_ZERO_SPREAD = 1e-12
HALL_T = "hall_t"
WILSON = "wilson"
BOOTSTRAP_BCA = "bootstrap_bca"


def _scipy_stats() -> Any:
    try:
        import scipy.stats  # a plain import, so a missing or blocked scipy.stats is an ImportError
    except ImportError as exc:
        raise ImportError(
            "camavg's confidence intervals and tests need SciPy: pip install scipy"
        ) from exc
    return scipy.stats


def power_sums(terms: Any) -> tuple[int, float, float, float]:
    r"""``(n, sum x, sum x^2, sum x^3)`` of a vector, in float64: what the intervals need.

    >>> power_sums([0.0, 0.5, 1.0])
    (3, 1.5, 1.25, 1.125)
    """
    x = np.asarray(terms, dtype=np.float64).ravel()
    return int(x.size), float(x.sum()), float((x * x).sum()), float((x * x * x).sum())


def _moments(n: int, total: float, sq_total: float, cube_total: float) -> tuple[float, float, float]:
    """Mean, standard error (ddof=1) and Hall's skewness parameter a = skew / (3 sqrt(n))."""
    mean = total / n
    centred_sq = sq_total - total * mean
    if centred_sq <= _ZERO_SPREAD * abs(sq_total):
        return mean, 0.0, 0.0
    # sum (x - m)^3 = S3 - 3 m S2 + 3 m^2 S1 - n m^3, and S1 = n m
    centred_cube = cube_total - 3.0 * mean * sq_total + 2.0 * n * mean**3
    skewness = (centred_cube / n) / (centred_sq / n) ** 1.5  # moment estimate, ddof 0
    std_error = math.sqrt(centred_sq / (n - 1) / n)
    return mean, std_error, skewness / (3.0 * math.sqrt(n))


def _hall_inverse(u: float, a: float) -> float:
    r"""The :math:`t` with :math:`g(t) = u`, for Hall's :math:`g` (see :func:`hall_t_interval`).

    :math:`g(t) = ((1 + a t)^3 - 1) / (3a) + a/2`, so with :math:`v = u - a/2` and
    :math:`r = (1 + 3 a v)^{1/3}`: :math:`t = (r - 1)/a = 3v / (r^2 + r + 1)`. The second form
    has no cancellation as :math:`a \to 0`, where it tends to :math:`v`.
    """
    v = u - a / 2.0
    root = float(np.cbrt(1.0 + 3.0 * a * v))
    return 3.0 * v / (root * root + root + 1.0)


def hall_t_interval(
    n: int, total: float, sq_total: float, cube_total: float, *, level: float = 0.95
) -> tuple[float, float]:
    r"""Skewness-corrected t interval of a mean (Hall 1992) from power sums of the values.

    With :math:`\bar x = S_1/n`, :math:`s^2 = \sum (x_i - \bar x)^2 / (n - 1)`, the sample
    skewness :math:`\hat\gamma = m_3 / m_2^{3/2}` (:math:`m_k = \frac1n \sum (x_i - \bar
    x)^k`, all from :math:`S_1, S_2, S_3`) and :math:`T = \sqrt n (\bar x - \mu) / s`, the
    Edgeworth expansion of the studentised mean is :math:`P(T \le x) = \Phi(x) +
    n^{-1/2} \frac{\hat\gamma}{6} (2x^2 + 1) \phi(x) + O(n^{-1})`. The map

    .. math::

        g(T) = T + a T^2 + \frac{a^2}{3} T^3 + \frac{a}{2}, \qquad
        a = \frac{\hat\gamma}{3 \sqrt n}

    removes that :math:`n^{-1/2}` term (its quadratic and constant parts cancel it; the cubic
    part, of order :math:`n^{-1}`, makes :math:`g(t) = ((1 + a t)^3 - 1)/(3a) + a/2` increasing
    and invertible in closed form). Taking :math:`g(T)` as Student's t with :math:`n - 1`
    degrees of freedom, quantile :math:`q = t_{(1+\mathrm{level})/2,\,n-1}`:

    .. math::

        \Big[\bar x - g^{-1}(q) \frac{s}{\sqrt n},\; \bar x - g^{-1}(-q) \frac{s}{\sqrt n}\Big]

    With :math:`\hat\gamma = 0` it is the plain t interval. Zero spread gives
    ``(mean, mean)``; ``n = 1`` gives ``(-inf, inf)``.

    >>> low, high = hall_t_interval(4, 2.0, 1.5, 1.25)  # x = 0, .5, .5, 1: symmetric, plain t
    >>> round(low, 6), round(high, 6)
    (-0.149614, 1.149614)
    """
    level = check_level(level)
    _check_n(n)
    if n == 1:
        return (-math.inf, math.inf)
    mean, std_error, a = _moments(n, total, sq_total, cube_total)
    if std_error == 0.0:
        return (mean, mean)
    quantile = float(_scipy_stats().t.ppf(0.5 + level / 2.0, n - 1))
    return (
        mean - _hall_inverse(quantile, a) * std_error,
        mean - _hall_inverse(-quantile, a) * std_error,
    )


def hall_t_test(
    n: int, total: float, sq_total: float, cube_total: float, *, null: float = 0.0
) -> float:
    r"""Two-sided p-value of :math:`H_0: \mu = \mathrm{null}` by the test that
    :func:`hall_t_interval` inverts: :math:`p = 2\, P(t_{n-1} \ge |g(T_0)|)`, with
    :math:`T_0 = \sqrt n (\bar x - \mathrm{null}) / s`.

    Since :math:`g` is increasing, ``null`` lies outside the interval at ``level`` exactly
    when ``p < 1 - level``. Zero spread gives 1 if the mean equals ``null``, else 0;
    ``n = 1`` gives 1.

    >>> hall_t_test(4, 2.0, 1.5, 1.25, null=0.5)
    1.0
    """
    _check_n(n)
    if n == 1:
        return 1.0
    mean, std_error, a = _moments(n, total, sq_total, cube_total)
    if std_error == 0.0:
        return 1.0 if mean == null else 0.0
    t0 = (mean - null) / std_error
    transformed = t0 + a * t0**2 + a * a * t0**3 / 3.0 + a / 2.0
    return float(min(1.0, 2.0 * _scipy_stats().t.sf(abs(transformed), n - 1)))


def t_interval(n: int, total: float, sq_total: float, *, level: float = 0.95) -> tuple[float, float]:
    r"""Plain Student t interval of a mean from :math:`n, \sum x, \sum x^2` (no skewness
    correction; kept for callers that have no cube sums).

    >>> low, high = t_interval(4, 2.0, 1.5, level=0.95)  # x = 0, 0.5, 0.5, 1: s^2 = 1/6
    >>> round(low, 6), round(high, 6)
    (-0.149614, 1.149614)
    """
    # with the cube sum of a symmetric sample Hall's a is 0: the plain t interval
    mean = total / n if n else 0.0
    symmetric_cube = 3.0 * mean * sq_total - 2.0 * n * mean**3
    return hall_t_interval(n, total, sq_total, symmetric_cube, level=level)


def wilson_interval(count: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    r"""Wilson score interval of a proportion ``count / n`` (``scipy.stats.binomtest``).

    >>> low, high = wilson_interval(3, 10)
    >>> round(low, 4), round(high, 4)
    (0.1078, 0.6032)
    """
    level = check_level(level)
    count, n = int(count), int(n)
    if n < 1 or not 0 <= count <= n:
        raise ValueError(
            f"wilson_interval needs 0 <= count <= n and n >= 1, got count={count}, n={n}."
        )
    interval = _scipy_stats().binomtest(count, n).proportion_ci(level, method="wilson")
    return (max(0.0, float(interval.low)), min(1.0, float(interval.high)))


def bootstrap_mean_intervals(
    columns: Any,
    *,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: Any = DEFAULT_SEED,
    method: str = "BCa",
) -> np.ndarray:
    """Bootstrap intervals of the mean of each column (``scipy.stats.bootstrap``), seeded.

    Each column is resampled with a generator made from the same ``seed``, so the columns of
    one call see the same resampled rows.

    Args:
        columns: (n,) or (n, k) finite values.
        level: confidence level.
        n_resamples: bootstrap resamples.
        seed: an int seed (a ``numpy.random.Generator`` is used as it is, shared by columns).
        method: ``'BCa'`` (default), ``'percentile'`` or ``'basic'``.

    Returns:
        (2,) for a vector, (k, 2) for k columns. A constant column gives ``[mean, mean]``;
        ``n = 1`` gives ``[-inf, inf]``.

    >>> bootstrap_mean_intervals([0.25, 0.25, 0.25])
    array([0.25, 0.25])
    >>> low, high = bootstrap_mean_intervals(np.linspace(0, 1, 101))
    >>> bool(0.43 < low < 0.46 and 0.54 < high < 0.57)
    True
    """
    level = check_level(level)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive int such as 2000, got {n_resamples!r}.")
    if not isinstance(method, str) or method.lower() not in ("bca", "percentile", "basic"):
        raise ValueError(f"method must be 'BCa', 'percentile' or 'basic', got {method!r}.")
    values = np.asarray(columns, dtype=np.float64)
    vector = values.ndim == 1
    values = values[:, None] if vector else values
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"columns must have shape (n,) or (n, k) with n >= 1, got {np.shape(columns)}.")
    if not np.all(np.isfinite(values)):
        raise ValueError("columns holds non-finite values; drop those samples first.")
    bounds = np.empty((values.shape[1], 2))
    for j, column in enumerate(values.T):
        if column.size == 1:
            bounds[j] = (-np.inf, np.inf)
        elif np.all(column == column[0]):
            bounds[j] = (column[0], column[0])
        else:
            rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
            result = _scipy_stats().bootstrap(
                (column,), np.mean, n_resamples=int(n_resamples), confidence_level=level,
                method=method, vectorized=True, rng=rng,
            )
            low, high = result.confidence_interval
            # BCa is undefined when every resample has the same mean; fall back to that mean
            bounds[j] = (low, high) if np.isfinite(low) and np.isfinite(high) else (column.mean(),) * 2
    return bounds[0] if vector else bounds


# --------------------------------------------------------------------------- result.ci
def as_percent(interval: Any, lower: float = 0.0, upper: float = 100.0) -> tuple[float, float]:
    """An interval of a mean of terms, in percent, clipped to ``[lower, upper]``."""
    low, high = (float(np.clip(100.0 * float(bound), lower, upper)) for bound in interval)
    return (low, high)


def default_ci_methods() -> dict[str, str]:
    return {"average_drop": HALL_T, "average_increase": WILSON, "average_gain": HALL_T}


def intervals_from_sums(
    n: int,
    drop_sums: tuple[float, float, float],
    gain_sums: tuple[float, float, float],
    increase_count: int,
    *,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """The default ``result.ci``, in percent: Hall t for drop and gain from their
    ``(sum, sum of squares, sum of cubes)``, Wilson for increase from its count.

    >>> ci = intervals_from_sums(4, (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), 2)  # drop 0, 1, 0, 1
    >>> ci["average_gain"], [round(v, 2) for v in ci["average_drop"]]
    ((0.0, 0.0), [0.0, 100.0])
    """
    _check_n(n)
    return {
        "average_drop": as_percent(hall_t_interval(n, *drop_sums, level=level)),
        "average_increase": as_percent(wilson_interval(increase_count, n, level=level)),
        "average_gain": as_percent(hall_t_interval(n, *gain_sums, level=level)),
    }


def approximate_notes(n: int, nonzero: dict[str, int]) -> tuple[str, ...]:
    """Why an interval is outside its calibrated conditions, one note per reason.

    Args:
        n: samples.
        nonzero: ``{metric: count of non-zero terms}`` for the metrics whose calibration needs
            :data:`MIN_NONZERO_SHARE` (drop, gain, paired differences).

    >>> approximate_notes(100, {"average_drop": 40, "average_gain": 5})
    ('average_gain: approximate interval, 5 of 100 terms non-zero (calibrated from 15%)',)
    """
    notes = []
    if n < MIN_CALIBRATED_N:
        notes.append(f"approximate intervals: n = {n} (calibrated from n = {MIN_CALIBRATED_N})")
    for metric, count in nonzero.items():
        if n and count < MIN_NONZERO_SHARE * n:
            notes.append(
                f"{metric}: approximate interval, {count} of {n} terms non-zero "
                f"(calibrated from {MIN_NONZERO_SHARE:.0%})"
            )
    return tuple(notes)


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"n must be at least 1 to form an interval, got {n}.")
