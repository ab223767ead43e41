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

import functools
import math
from typing import Any

import numpy as np

from camavg_core import validation
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
        raise ImportError(validation.needs_scipy()) from exc
    return scipy.stats


def _moments(n: int, total: float, sq_total: float, cube_total: float) -> tuple[float, float, float]:
    """Mean, standard error (ddof=1) and Hall's skewness parameter a = skew / (3 sqrt(n))."""
    mean = total / n
    centred_sq = sq_total - total * mean
    if centred_sq <= _ZERO_SPREAD * abs(sq_total):
        return mean, 0.0, 0.0
    # sum (x - m)^3 = S3 - 3 m S2 + 3 m^2 S1 - n m^3, and S1 = n m
    centred_cube = cube_total - 3.0 * mean * sq_total + 2.0 * n * mean**3
    # moment estimate, ddof 0, divided by the spread step by step: its cube underflowed to 0 for
    # terms near 1e-117 (a spread of 1e-117 cubed is below the smallest double)
    spread = math.sqrt(centred_sq / n)
    skewness = centred_cube / n / spread / spread / spread
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


def paired_hall_t(n: int, total: float, sq_total: float, cube_total: float, nonzero: int, *,
                  level: float = 0.95, bounds: tuple[float, float] = (-1.0, 1.0)) -> tuple[float, tuple[float, float]]:
    r"""The paired comparison from sums alone: Hall's t test of mean 0 and its interval
    (:func:`hall_t_test`, :func:`hall_t_interval`), held to what the exact sign-flip test of the
    same differences could show. With k non-zero differences the sign-flip p-value is at least
    :math:`2 / 2^k` (the observed pattern and its mirror image), so Hall's p-value is raised to
    that floor: equal differences (zero spread) gave p = 0 from three images, a "better" no
    test of three images can support. The interval stays dual: where no mean can be rejected
    (:math:`2 / 2^n \ge 1 - 	ext{level}`) it is ``bounds``, and it reaches 0 whenever the
    p-value keeps 0.

    >>> paired_hall_t(3, 3.0, 3.0, 3.0, 3)  # three differences of +1: p = 2 / 8, nothing rejected
    (0.25, (-1.0, 1.0))
    """
    alpha = 1.0 - check_level(level)
    p_value = max(hall_t_test(n, total, sq_total, cube_total), 2.0 ** (1 - nonzero) if nonzero else 1.0)
    if 2.0 ** (1 - n) >= alpha:
        return p_value, (float(bounds[0]), float(bounds[1]))
    low, high = hall_t_interval(n, total, sq_total, cube_total, level=level)
    if p_value >= alpha:
        low, high = min(low, 0.0), max(high, 0.0)
    return p_value, (low, high)


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
        raise ValueError(validation.bad_proportion(count, n))
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
    if not validation.is_integer(n_resamples) or n_resamples < 1:
        raise ValueError(validation.bad_resamples(n_resamples))
    if not isinstance(method, str) or method.lower() not in ("bca", "percentile", "basic"):
        raise ValueError(validation.bad_bootstrap_method(method))
    values = np.asarray(columns, dtype=np.float64)
    vector = values.ndim == 1
    values = values[:, None] if vector else values
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(validation.bad_columns(np.shape(columns)))
    if not np.all(np.isfinite(values)):
        raise ValueError(validation.nonfinite_columns())
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
def in_unit(interval: Any, scale: float, bounds: tuple[float, float]) -> tuple[float, float]:
    """An interval of a mean of terms in a metric's unit (times ``scale``), clipped to ``bounds``.

    >>> in_unit((-0.1, 0.25), 100.0, (0.0, 100.0))
    (0.0, 25.0)
    """
    low, high = (float(np.clip(scale * float(bound), *bounds)) for bound in interval)
    return (low, high)


def interval_of(metric: Any, n: int, sums: tuple, *, level: float = 0.95) -> tuple[float, float]:
    """A metric's default interval in its unit, from what a state keeps of its terms: Hall's t
    from ``(sum, sum of squares, sum of cubes, ...)``, or Wilson's from ``(count,)``.

    >>> from camavg_core.metrics import METRICS
    >>> [round(v, 2) for v in interval_of(METRICS["average_drop"], 4, (2.0, 2.0, 2.0, 2))]  # 0, 1, 0, 1
    [0.0, 100.0]
    """
    _check_n(n)
    if metric.interval == WILSON:
        interval = wilson_interval(sums[0], n, level=level)
    else:
        interval = hall_t_interval(n, *sums[:3], level=level)
    return in_unit(interval, metric.scale, metric.bounds)


#: a skewness-corrected interval whose longer arm exceeds this many plain t half-widths is
#: flagged approximate: the Edgeworth correction is then far outside the small-skew regime it
#: is derived for (Average Drop terms of skewness -5.4 at n = 100 gave Hall [81.95, 89.60],
#: arm 6.5 = 4.2 half-widths, where the BCa bootstrap gave [86.12, 89.54], arms within 1.5)
EXTREME_SKEW_ARMS = 2.0


def skew_note(name: str, n: int, total: float, sq_total: float, cube_total: float, *,
              level: float = 0.95) -> str | None:
    """A note naming ``name`` when the skewness-corrected interval of these sums has an arm
    longer than :data:`EXTREME_SKEW_ARMS` times the plain t half-width, else None.

    >>> rng = np.random.default_rng(0)
    >>> x = np.where(rng.random(100) < 0.02, 0.0, 0.9 + 0.1 * rng.random(100))  # two zeros: skew -5.2
    >>> skew_note("average_drop", 100, x.sum(), (x**2).sum(), (x**3).sum())[:75]
    'average_drop: approximate interval, extreme skewness correction (its longer'
    >>> skew_note("average_drop", 4, 2.0, 1.5, 1.25) is None  # symmetric
    True
    """
    if n < 2:
        return None
    mean, std_error, _ = _moments(n, total, sq_total, cube_total)
    if std_error == 0.0:
        return None
    low, high = hall_t_interval(n, total, sq_total, cube_total, level=level)
    half = float(_scipy_stats().t.ppf(0.5 + level / 2.0, n - 1)) * std_error
    arm = max(mean - low, high - mean)
    if not arm > EXTREME_SKEW_ARMS * half:
        return None
    return (f"{name}: approximate interval, extreme skewness correction (its longer arm is "
            f"{arm / half:.1f} times the plain t half-width; a bootstrap, ci_method='bootstrap', is safer)")


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
        raise ValueError(validation.too_few_for_interval(n))


# --------------------------------------------------------------------------- the paired test
# The paired test of camavg and its interval: a sign-flip permutation test of Hall's statistic.
#
# For paired differences :math:`d_1, \dots, d_n` and a hypothesised mean :math:`\delta`, let
# :math:`x_i = d_i - \delta`. The statistic is Hall's skewness-corrected studentised mean
# (:func:`camavg_core.stats.hall_t_interval`):
#
# .. math::
#
#     G(x) = g(T), \quad T = \frac{\sqrt n\, \bar x}{s}, \quad
#     g(T) = T + a T^2 + \frac{a^2}{3} T^3 + \frac a2, \quad a = \frac{\hat\gamma}{3\sqrt n}.
#
# Its reference distribution is that of :math:`G(\epsilon_1 x_1, \dots, \epsilon_n x_n)` over
# independent random signs :math:`\epsilon_i = \pm 1`, and the two-sided p-value is the share of
# sign patterns with :math:`|G| \ge |G(x)|`. When two CAM methods are exchangeable (equally good)
# each :math:`d_i` is symmetric about 0, every sign pattern is equally likely, and the test is
# exact at any n: it never rejects more often than its level. Under a skewed alternative the
# observed :math:`g(T)` is close to Student's t (Hall's correction), so the interval covers about
# as well as Hall's (benchmarks/paired_test_level.py). Increase differences (-1, 0, 1) give an exact McNemar-like test.
#
# - At most :data:`MAX_EXACT_NONZERO` non-zero :math:`x_i`: all :math:`2^k` sign patterns of the
#   non-zero ones (exact p-value, at least :math:`2 / 2^k`).
# - Otherwise :data:`FLIP_SAMPLES` seeded random patterns (``seed`` :data:`FLIP_SEED`), applied to
#   the *sorted* :math:`|x_i|` (under the null :math:`\epsilon_i \operatorname{sign}(x_i)` is as
#   random as :math:`\epsilon_i`), so that the p-value depends neither on the order of the
#   samples (the same in memory, streamed or merged) nor on which method is a:
#   :math:`p = (1 + \#\{|G^*| \ge |G|\}) / (B + 1)`. When no
#   random pattern reaches the observed statistic, the p-value is below :math:`1/(B+1)` and is
#   read from Hall's t approximation (as :func:`camavg_core.stats.hall_t_test`), capped at
#   :math:`1/(B+1)`; a decision at any level :math:`\alpha \ge 1/(B+1)` is the permutation test's.
#
# The interval at ``level`` is the set of :math:`\delta` that the same test does not reject at
# :math:`\alpha = 1 - \text{level}` (:func:`sign_flip_interval`), so ``p < 1 - level`` exactly when
# the interval excludes 0.
#: at most this many non-zero differences: every sign pattern is enumerated (exact p-value)
MAX_EXACT_NONZERO = 12
#: random sign patterns of the Monte Carlo test, above :data:`MAX_EXACT_NONZERO` non-zero
FLIP_SAMPLES = 4000
#: seed of the sign patterns, fixed so the same differences always give the same p-value
FLIP_SEED = 0
#: sign patterns are kept in blocks of at most this many entries: a small matrix product runs on
#: one thread, where a large one on a loaded machine spends 10-100x longer waiting for the others
_BLOCK = 1 << 15
#: a statistic within this distance (relative and absolute) of the observed one reaches it: float
#: rounding of the same value (a balanced pattern sums to 1e-17, not 0) is not a larger statistic
_SAME = 1e-9


def hall_statistic(n: int, total: Any, sq_total: Any, cube_total: Any) -> np.ndarray:
    r""":math:`g(T)` of the hypothesis mean 0, from power sums (arrays broadcast).

    Zero spread gives :math:`\pm\infty` (0 when the values are all 0).

    >>> float(hall_statistic(4, 2.0, 1.5, 1.25))  # x = 0, .5, .5, 1: symmetric, g = T = sqrt(6)
    2.449489742783178
    """
    total, sq_total, cube_total = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (total, sq_total, cube_total)))
    mean = total / n
    centred_sq = sq_total - total * mean
    flat = centred_sq <= _ZERO_SPREAD * np.abs(sq_total)
    safe_sq = np.where(flat, 1.0, centred_sq)
    centred_cube = cube_total - mean * (3.0 * sq_total - 2.0 * n * mean * mean)
    root_sq = np.sqrt(safe_sq)
    # skewness m3 / m2^1.5 (ddof 0) over 3 sqrt(n): Hall's a; T = sqrt(n) mean / s (ddof 1)
    a = np.where(flat, 0.0, centred_cube / (3.0 * safe_sq * root_sq))
    t = mean * math.sqrt(n * (n - 1)) / root_sq
    g = t * (1.0 + a * t * (1.0 + a * t / 3.0)) + a / 2.0
    infinite = np.where(mean > 0, np.inf, np.where(mean < 0, -np.inf, 0.0))
    return np.where(flat, infinite, g)


@functools.lru_cache(maxsize=1)
def _all_patterns(k: int) -> np.ndarray:
    """Every sign pattern of k values, (2**k, k), read-only."""
    bits = (np.arange(2**k)[:, None] >> np.arange(k)) & 1
    signs = (1.0 - 2.0 * bits)
    signs.flags.writeable = False
    return signs


@functools.lru_cache(maxsize=4)
def _random_patterns(n: int) -> tuple[np.ndarray, ...]:
    """:data:`FLIP_SAMPLES` seeded sign patterns of n values, in read-only blocks."""
    rng = np.random.default_rng(FLIP_SEED)
    rows = max(1, _BLOCK // n)
    blocks, left = [], FLIP_SAMPLES
    while left:
        block = np.where(rng.random((min(rows, left), n)) < 0.5, -1.0, 1.0)
        block.flags.writeable = False
        blocks.append(block)
        left -= block.shape[0]
    return tuple(blocks)


def _flipped(x: np.ndarray, n: int, blocks: Any) -> np.ndarray:
    """|G| of every sign pattern (rows of the blocks) of every column of x: (patterns, m)."""
    m = x.shape[1]
    powers, sq_total = np.concatenate([x, x**3], axis=1), (x * x).sum(axis=0)
    both = np.concatenate([block @ powers for block in blocks])
    return np.abs(hall_statistic(n, both[:, :m], sq_total, both[:, m:]))


def _critical(flipped: np.ndarray, needed: float) -> np.ndarray:
    """Per column, the ``needed``-th largest |G*|: the observed |G| is kept at most there."""
    count = flipped.shape[0]
    k = math.ceil(needed - 1e-9)
    if k <= 0:
        return np.full(flipped.shape[1], np.inf)
    if k > count:
        return np.full(flipped.shape[1], -np.inf)
    return -np.partition(-flipped, k - 1, axis=0)[k - 1]


def _flip(columns: Any, alpha: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """p-values of mean 0 of each column; with ``alpha`` also ``|G| - critical``, which is <= 0
    where the column is kept at ``alpha`` (a continuous function of a shift of the column, for
    the interval's root search)."""
    signed = np.sort(np.asarray(columns, dtype=np.float64), axis=0)
    n, m = signed.shape
    gap = None if alpha is None else np.full(m, -np.inf)
    if n < 2:
        return np.ones(m), gap
    observed = np.abs(hall_statistic(n, signed.sum(axis=0), (signed * signed).sum(axis=0), (signed**3).sum(axis=0)))
    # the patterns flip the sorted magnitudes: under the null eps * sign(x) is as random as eps,
    # and the reference then depends on neither the samples' order nor the sign of x (a - b
    # and b - a get the same p-value)
    x = np.sort(np.abs(signed), axis=0)
    reach = observed * (1.0 - _SAME) - _SAME
    p_values = np.ones(m)
    nonzero = np.count_nonzero(x, axis=0)
    random = nonzero > MAX_EXACT_NONZERO
    for j in np.flatnonzero(~random & (nonzero > 0)):
        p_values[j], gap_j = _exact_flip(signed[:, j], n, alpha)
        if alpha is not None:
            gap[j] = gap_j
    if np.any(random):
        x_random = x[:, random]
        flipped = _flipped(x_random, n, _random_patterns(n))
        reached = np.count_nonzero(flipped >= reach[random], axis=0)
        p_random = (1.0 + reached) / (FLIP_SAMPLES + 1.0)
        # beyond every random pattern: Hall's t tail (stats.hall_t_test of the same statistic),
        # below the Monte Carlo floor 1 / (B + 1), but never below what the exact test could
        # give: with k non-zero differences the observed pattern and its mirror image both
        # reach |G|, so the exact sign-flip p-value is at least 2 / 2^k (a tail far beyond that,
        # e.g. 5e-39 from 128 samples, would claim more than sign flips can show)
        beyond = reached == 0
        if np.any(beyond):
            tail = 2.0 * _scipy_stats().t.sf(observed[random][beyond], n - 1)
            floor = np.exp2(1.0 - nonzero[random][beyond].astype(np.float64))
            p_random[beyond] = np.minimum(p_random[beyond], np.maximum(tail, floor))
        p_values[random] = p_random
        if alpha is not None:
            with np.errstate(invalid="ignore"):
                gap[random] = observed[random] - _critical(flipped, alpha * (FLIP_SAMPLES + 1.0) - 1.0)
    return np.minimum(p_values, 1.0), gap


def _exact_flip(column: np.ndarray, n: int, alpha: float | None) -> tuple[float, float]:
    """The exact test of one column of at most :data:`MAX_EXACT_NONZERO` non-zero values: its
    p-value and, with ``alpha``, its gap ``|G| - critical``.

    The observed statistic is read from the enumeration itself (the row of the column's own
    signs), not computed apart: for nearly equal differences (a method that keeps the score
    against one that loses nearly all of it) the statistic's power sums cancel, and two sums
    of the same values in another order can differ by far more than :data:`_SAME`; an observed
    |G| above its own row would give p = 0, below the exact floor 2 / 2^k. A pattern and its
    mirror image have the same |G| (G is odd), so only the half whose largest magnitude keeps
    its sign is computed, each standing for two: the observed pattern and its mirror both reach
    |G| by construction, and the p-value is at least 2 / 2^k whatever the rounding."""
    values = column[column != 0]
    order = np.argsort(np.abs(values), kind="stable")
    magnitudes, negative = np.abs(values)[order], values[order] < 0
    k = magnitudes.size
    # row r of _all_patterns(k) gives value i the sign 1 - 2 * bit i of r; rows below 2^(k-1)
    # keep the largest magnitude's sign (+): the other half are their mirror images
    half = _all_patterns(k)[: 1 << (k - 1)]
    # the zeros still count in n: they are samples where the methods agree
    flipped = _flipped(magnitudes[:, None], n, [half])[:, 0]
    row = int(np.dot(negative.astype(np.int64), 1 << np.arange(k, dtype=np.int64)))
    if negative[-1]:
        row ^= (1 << k) - 1  # the mirror image: the same |G|, in the half computed
    observed = flipped[row]
    p_value = 2.0 * np.count_nonzero(flipped >= observed * (1.0 - _SAME) - _SAME) / float(1 << k)
    if alpha is None:
        return p_value, -np.inf
    # the needed-th largest of all 2^k patterns is the ceil(needed / 2)-th of the half
    needed = math.ceil(alpha * (1 << k) - 1e-9)
    with np.errstate(invalid="ignore"):  # inf - inf: no slope to follow, the search bisects
        return p_value, float(observed - _critical(flipped[:, None], (needed + 1) // 2)[0])


def sign_flip_p_values(columns: Any) -> np.ndarray:
    """Two-sided p-values of mean 0, one per column of an (n, m) array (see the module).

    >>> x = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, 1.0], [-1.0, 1.0]])
    >>> sign_flip_p_values(x).tolist()  # balanced: every pattern reaches 0; all +1: 2 of 16
    [1.0, 0.125]
    """
    return _flip(columns)[0]


def sign_flip_test(differences: Any, *, null: float = 0.0) -> float:
    """Two-sided p-value of :math:`H_0: E[d] = \\text{null}` (see the module).

    >>> sign_flip_test([0.2, -0.1, 0.1, -0.2])  # symmetric about 0
    1.0
    """
    d = np.asarray(differences, dtype=np.float64).ravel()
    return float(sign_flip_p_values((d - null)[:, None])[0])


def sign_flip_interval(
    differences: Any,
    *,
    level: float = 0.95,
    bounds: tuple[float, float] = (-math.inf, math.inf),
    p_at_zero: float | None = None,
    tolerance: float = 1e-6,
) -> tuple[float, float]:
    r"""The :math:`\delta` in ``bounds`` that :func:`sign_flip_test` does not reject at
    :math:`1 - \text{level}`: the interval dual to the test.

    Each end is bracketed between a :math:`\delta` the test keeps (the mean, or 0 when 0 is
    kept and lies on that side) and one it rejects (0 when 0 is rejected and lies on that side;
    else the first rejected of a few points around Hall's end, or the bound), then narrowed by
    regula falsi on the test's continuous gap :math:`|G| - G_{crit}` with a bisection safeguard,
    both ends in one matrix product per step, until the bracket is narrower than ``tolerance``
    (1e-4 points); the end is the last kept point. ``bounds`` are the range a mean difference
    can take (a comparison passes its metric's: +-1 for terms in [0, 1], +-2 for MuFidelity's
    correlations); an unbounded side is searched up to a point far beyond the data.
    Since 0 starts on the right side of every bracket, the interval contains 0 exactly when
    ``p(0) >= 1 - level``, whatever the shape of :math:`p(\delta)` elsewhere. An end that no
    :math:`\delta` in ``bounds`` rejects is the bound.

    >>> d = [0.3, 0.1, 0.2, 0.4, 0.25, 0.35, 0.15, 0.3]
    >>> low, high = sign_flip_interval(d)
    >>> bool(0.0 < low < 0.2575 < high < 0.4), sign_flip_test(d) < 0.05
    (True, True)
    """
    alpha = 1.0 - check_level(level)
    d = np.asarray(differences, dtype=np.float64).ravel()
    if d.size < 2:
        return (float(bounds[0]), float(bounds[1]))
    centre = float(d.mean())
    keeps_zero = (sign_flip_test(d) if p_at_zero is None else p_at_zero) >= alpha
    if not np.any(d != d[0]) and not keeps_zero:  # every difference the same, and 0 rejected
        return (centre, centre)
    sides = (-1.0, 1.0)
    # the centre (T = 0, |g| = |a|/2 < 1/6) is kept at any usual level; 0 joins the bracket of
    # the side it lies on, kept or rejected as the test says
    kept, rejected = [centre, centre], [None, None]
    for i, side in enumerate(sides):
        if side * (0.0 - centre) >= 0:
            if keeps_zero:
                kept[i] = 0.0
            elif centre != 0.0:
                rejected[i] = 0.0
    hall = hall_t_interval(d.size, float(d.sum()), float((d * d).sum()), float((d**3).sum()), level=level)
    width = max(hall[1] - hall[0], tolerance)
    # an unbounded side is searched up to a point far beyond the data (every difference on one
    # side of it: rejected there if anywhere) and reported as unbounded if even that is kept
    reach = 64.0 * (float(np.ptp(d)) + abs(centre) + width)
    ends = [float(bounds[0]) if math.isfinite(bounds[0]) else centre - reach,
            float(bounds[1]) if math.isfinite(bounds[1]) else centre + reach]
    search = _Search(d, alpha, kept, rejected)
    candidates = {}
    for i in (0, 1):
        if rejected[i] is None:
            side = sides[i]
            points = [hall[i] + side * width * step for step in (-0.05, 0.0, 0.05, 0.25)] + [ends[i]]
            # only points beyond the kept one: 0, when kept, stays inside the interval
            candidates[i] = [c for c in (min(max(c, ends[0]), ends[1]) for c in points)
                             if side * (c - kept[i]) > 0]
    search.try_points(candidates)
    for _ in range(100):
        active = [i for i in (0, 1) if search.rejected[i] is not None
                  and abs(search.rejected[i] - search.kept[i]) > tolerance]
        if not active:
            break
        search.try_points({i: search.proposals(i, tolerance) for i in active})
    low, high = min(search.kept), max(search.kept)
    return (float(bounds[0]) if low <= ends[0] else low, float(bounds[1]) if high >= ends[1] else high)


class _Search:
    """Both ends' brackets: a kept and a rejected delta each, and the test's gap |G| - critical
    at them (<= 0 kept), narrowed by regula falsi (Illinois) with a safeguard bisection."""

    def __init__(self, d: np.ndarray, alpha: float, kept: list, rejected: list) -> None:
        self.d, self.alpha = d, alpha
        self.kept, self.rejected = list(kept), list(rejected)
        self.kept_gap, self.rejected_gap = [-1.0, -1.0], [1.0, 1.0]
        # rounds in a row in which only the kept (or only the rejected) point moved
        self.kept_moves, self.rejected_moves = [0, 0], [0, 0]

    def proposals(self, i: int, tolerance: float) -> list[float]:
        """Where the gap crosses 0 by linear interpolation, a step to either side of it, and
        the midpoint: one call then either brackets the crossing tightly or halves the bracket."""
        kept, rejected = self.kept[i], self.rejected[i]
        weight_kept, weight_rejected = abs(self.rejected_gap[i]), abs(self.kept_gap[i])
        # Illinois: the point that stays put round after round counts half each time
        weight_kept /= 2.0 ** max(0, self.kept_moves[i] - 1)
        weight_rejected /= 2.0 ** max(0, self.rejected_moves[i] - 1)
        if not (math.isfinite(weight_kept) and math.isfinite(weight_rejected)) or weight_kept + weight_rejected == 0:
            guess = 0.5 * (kept + rejected)
        else:
            guess = (weight_kept * kept + weight_rejected * rejected) / (weight_kept + weight_rejected)
        step = 0.25 * tolerance * (1.0 if rejected > kept else -1.0)
        points = [guess - step, guess + step, 0.5 * (kept + rejected)]
        inside = [p for p in points if min(kept, rejected) < p < max(kept, rejected)]
        return sorted(set(inside), key=lambda p: abs(p - kept))

    def try_points(self, candidates: dict) -> None:
        """Test every candidate of both ends in one call; each end's bracket moves to the first
        rejected candidate (ordered outward from its kept point) and the last kept one before
        it. An end with no rejected candidate and no rejected point yet is done at its last."""
        order = [(i, c) for i in sorted(candidates) for c in sorted(candidates[i], key=lambda c: abs(c - self.kept[i]))]
        if not order:
            return
        deltas = np.array([c for _, c in order], dtype=np.float64)
        p_values, gaps = _flip(self.d[:, None] - deltas[None, :], self.alpha)
        for i in sorted(candidates):
            moved_kept = moved_rejected = False
            for (end, point), p, gap in zip(order, p_values, gaps):
                if end != i:
                    continue
                if p >= self.alpha:
                    if self.rejected[i] is None or abs(point - self.kept[i]) < abs(self.rejected[i] - self.kept[i]):
                        self.kept[i], self.kept_gap[i] = point, float(gap)
                        moved_kept = True
                else:
                    self.rejected[i], self.rejected_gap[i] = point, float(gap)
                    moved_rejected = True
                    break
            self.kept_moves[i] = self.kept_moves[i] + 1 if moved_kept and not moved_rejected else 0
            self.rejected_moves[i] = self.rejected_moves[i] + 1 if moved_rejected and not moved_kept else 0
