r"""Paired comparison of CAM methods scored on the same samples: two (:func:`compare`), from
sums (:class:`PairState`), or many with adjusted p-values (:func:`compare_methods`).

For each sample :math:`i` the two methods give terms :math:`a_i` and :math:`b_i` of the same
metric:

- difference: the metric's scale times :math:`\bar a - \bar b`, in the metric's unit (percentage
  points for the averages): exactly result a minus result b, whatever the test;
- p-value (default ``test="sign_flip"``): the sign-flip permutation test of Hall's studentised
  mean (:mod:`camavg_core.sign_flip`) on the paired differences :math:`d_i = a_i - b_i`, exact
  when the methods are exchangeable;
- interval: the mean differences that test does not reject, so ``p < 1 - level`` exactly when
  the interval excludes 0 (``Comparison.dual``). ``test="t"`` gives Hall's t test and interval
  from sums (what a merged :class:`PairState` gives); ``test="wilcoxon"`` (drop and gain) and
  McNemar's test (increase) are available by name; they test other hypotheses and are not dual
  to the interval.
- better: the method whose test is significant at ``1 - level`` **and** whose whole interval
  lies beyond ``margin`` points on its side (:func:`camavg_core.metrics.better_method`).

Float noise of the same maps is not a finding: where the two masked scores of a sample are within
:data:`TIE_ULPS` float32 ulps of each other (:func:`ties`) and a metric's two terms differ by at
most :data:`TIE_TERMS`, the sample's difference in that metric is set to 0 for the test and the
interval (never for the difference, which the tie then moves by at most :data:`TIE_TERMS`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, NamedTuple

import numpy as np

from camavg_core import validation
from camavg_core.backends import Backend, NumpyBackend, resolve_backend
from camavg_core.metrics import (
    Metric,
    as_float_pair,
    better_method,
    check_scores,
    checked_vectors,
    compute_terms,
    metric_named,
    resolve_metrics,
)
from camavg_core.state import (
    add_sums,
    float64_on,
    host_or_traced,
    named_part,
    ordered,
    power_sums_on,
    valid_pairs,
    _merged,
)
from camavg_core.stats import (
    BOOTSTRAP_BCA,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    HALL_T,
    WILSON,
    _scipy_stats,
    approximate_notes,
    bootstrap_mean_intervals,
    check_level,
    in_unit,
    paired_hall_t,
    sign_flip_interval,
    sign_flip_test,
)

__all__ = [
    "DEFAULT_MARGIN", "FLOAT32_EPS", "TIE_TERMS", "TIE_ULPS", "Comparison", "ComparisonRow", "ComparisonTable", "PairState",
    "compare", "compare_methods", "holm", "mcnemar_p_value", "ties", "wilcoxon_p_value",
]
SIGN_FLIP = "sign_flip"
_HOST = NumpyBackend()

#: the default margin of ``better``, in percentage points: a method is named better only when its
#: whole interval lies this far beyond 0 (and its test is significant)
DEFAULT_MARGIN = 0.5
#: Masked scores of the two methods within this many float32 ulps of each other are a tie:
#: float noise of the same maps, set to 0 for the test and the interval (never for the
#: difference). One ulp is taken as FLOAT32_EPS times the larger magnitude (np.spacing of float32
#: is between half of it and all of it). Measured, the same CAMs through two routes on a small
#: conv softmax model (4, 10, 2 and 1000 classes, scores 9e-6 to 0.99): batch sizes 1, 5, 7, 32
#: and 64, eager and predict() gave bit-identical scores; XLA (jit_compile=True) against not
#: differed by up to 21.4 of these ulps (32 np.spacing ulps), and by 36.5 on a very confident
#: 3-class model (score 7e-4): a route that changes the kernels can exceed the rule, and its tiny
#: differences are then reported (never ``better``: the margin). 32 covers the first; a real
#: difference smaller than that (at most 32 * 6e-8 = 1.9e-6 near Y = 1) is tied for the test only,
#: and still counted in the difference (0.99999 against 0.999995 is 42 ulps apart: not a tie).
TIE_ULPS = 32
#: ...and a tie only where it hides nothing a reader could see: a sample whose scores are a tie
#: is set to 0 only where its two terms differ by at most this much, in the terms' own unit:
#: half the last digit printed (0.005 points of a percentage, 0.0005 of a fraction printed
#: with 3 decimals, and below). Near Y = 1, Average Gain divides by 1 - Y: scores 17 ulps
#: apart (1.0 against 0.999999) are gain terms 91 points apart, and a tie there took those
#: points from the test and the interval while the difference kept them, an estimate outside
#: its own interval (2026-12-07). An Average Increase term that flips between tied scores is
#: a whole 100 points, so it is never tied either.
TIE_TERMS = 5e-5
#: float32's machine epsilon, 2**-23: one ulp of a value in [1, 2)
FLOAT32_EPS = 2.0**-23
SUMS_ONLY_NOTE = (
    "sums only: Hall t test and interval from the sums of the differences (approximate; the exact "
    "sign-flip test needs the per-sample differences: compare in memory or keep the vectors)"
)


#: what each test tests, for ``Comparison.test``
TEST_DESCRIPTIONS = {
    "sign_flip": "sign-flip permutation test of the skewness-corrected studentised mean difference "
    "(Hall's statistic), exact for exchangeable methods; dual to the interval",
    "t": "skewness-corrected paired t test (Hall) of mean difference 0, from sums; dual to the "
    "interval",
    "wilcoxon": "Wilcoxon signed-rank test (zeros kept, Pratt) of differences symmetric about 0; "
    "not dual to the interval",
    "mcnemar": "exact McNemar test of equal increase rates (binomial test on the discordant "
    "pairs); not dual to the interval",
}
TESTS = ("sign_flip", "t", "wilcoxon", "mcnemar")
#: the tests whose p-value is dual to an interval (and the interval they invert)
DUAL_TESTS = ("sign_flip", "t")



@dataclasses.dataclass(frozen=True, eq=False)
class Comparison:
    """Method a against method b on the same samples, per metric (by name, in the metrics' order).

    Attributes:
        difference: ``{"average_drop": a - b, ...}`` in each metric's unit (percentage points
            for the averages).
        ci: ``{"average_drop": (low, high), ...}``, the paired interval of each difference at
            ``level``, clipped to the range of a difference (``[-100, 100]`` for the averages).
        p_value: ``{"average_drop": p, ...}``, two-sided, from the test in ``test``; a p-value
            below the smallest float is 0 (printed ``< 1e-300``).
        n: samples compared. skipped: samples left out as non-finite (``nan_policy='omit'``).
        level: the confidence level of ``ci``. names: the two methods' names, a first.
        test: ``{metric: "sign_flip" | "t" | "wilcoxon" | "mcnemar"}``, the test behind each
            p-value (:data:`TEST_DESCRIPTIONS` says what each tests).
        dual: ``{metric: bool}``, True where ``p < 1 - level`` exactly when ``ci`` excludes 0.
        no_difference: ``{metric: bool}``, True where every paired difference is 0 once ties
            (scores within :data:`TIE_ULPS` float32 ulps) are set to 0: interval (0, 0), p = 1;
            the difference is still a minus b as computed.
        ci_method: the interval's method (``"sign_flip"``, ``"hall_t"``, or ``"bootstrap_bca"``
            when asked). notes: why a result is only approximate (n < 30, fewer than 15%
            non-zero differences, sums only).
        better: ``{metric: name or None}``: the method that is better, named only when its test
            is significant at ``1 - level`` and the interval lies beyond ``margin`` on its side.
        margin: the margin given for every metric (``DEFAULT_MARGIN`` when each metric's
            own was used). margins: ``{metric: margin}``, the margin of ``better`` in each
            metric's unit (0.5 points for the averages, 0.005 for the fraction metrics).
    """

    difference: dict[str, float]
    ci: dict[str, tuple[float, float]]
    p_value: dict[str, float]
    n: int
    level: float = 0.95
    names: tuple[str, str] = ("a", "b")
    skipped: int = 0
    test: dict[str, str] | None = None
    dual: dict[str, bool] | None = None
    no_difference: dict[str, bool] | None = None
    ci_method: str = SIGN_FLIP
    notes: tuple[str, ...] = ()
    better: dict[str, str | None] | None = None
    margin: float = DEFAULT_MARGIN
    margins: dict[str, float] | None = None

    def __post_init__(self) -> None:
        # unset per-metric fields default over the compared metrics
        defaults = {"test": SIGN_FLIP, "dual": True, "no_difference": False, "better": None,
                    "margins": self.margin}
        for field, value in defaults.items():
            if getattr(self, field) is None:
                object.__setattr__(self, field, dict.fromkeys(self.difference, value))

    def summary(self) -> str:
        """One line: every metric's difference, interval and p-value (and its test)."""
        parts = []
        for name in self.difference:
            if self.no_difference.get(name, False):
                parts.append(f"{name} no difference (p=1)")
                continue
            low, high = self.ci[name]
            test = "" if self.test.get(name, SIGN_FLIP) == SIGN_FLIP else f" ({self.test[name]})"
            better = self.better.get(name)
            unit = difference_unit(name)
            shown = metric_named(name).format
            parts.append(
                f"{name} {shown(self.difference[name], sign=True)}{unit} [{shown(low, sign=True)}, "
                f"{shown(high, sign=True)}] "
                f"p{format_p(self.p_value[name])}{test}" + (f", {better} better" if better else "")
            )
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        approximate = ", approximate" if self.notes else ""
        return (
            f"{self.names[0]} - {self.names[1]} (n={self.n}{skipped}, "
            f"{100 * self.level:g}% CI{approximate}): {'; '.join(parts)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types, ready for ``json.dumps``."""
        return {
            "names": list(self.names),
            "n": int(self.n),
            "skipped": int(self.skipped),
            "level": float(self.level),
            "difference": {name: float(value) for name, value in self.difference.items()},
            "ci": {name: [float(low), float(high)] for name, (low, high) in self.ci.items()},
            "p_value": {name: float(value) for name, value in self.p_value.items()},
            "test": {name: f"{test}: {TEST_DESCRIPTIONS[test]}" for name, test in self.test.items()},
            "dual": {name: bool(value) for name, value in self.dual.items()},
            "no_difference": {name: bool(value) for name, value in self.no_difference.items()},
            "ci_method": self.ci_method,
            "notes": list(self.notes),
            "better": dict(self.better),
            "margin": float(self.margin),
            "margins": {name: float(value) for name, value in self.margins.items()},
        }

    def __str__(self) -> str:
        return self.summary()


def difference_unit(name: str) -> str:
    """`` pp`` after a difference of a percent metric; nothing for a fraction."""
    return " pp" if metric_named(name).unit == "percent" else ""


def format_p(p_value: float) -> str:
    """``=0.0312``, or ``< 1e-300`` where the p-value underflowed to 0.

    >>> format_p(0.03123), format_p(0.0)
    ('=0.0312', '< 1e-300')
    """
    return "< 1e-300" if p_value == 0.0 else f"={p_value:.3g}"


def check_margin(margin: Any) -> float | None:
    """``margin`` as a float >= 0 (in the metrics' unit), or None: each metric's own
    (:attr:`~camavg_core.metrics.Metric.margin`)."""
    if margin is None:
        return None
    if not validation.is_number(margin) or not math.isfinite(float(margin)) or margin < 0:
        raise ValueError(validation.bad_margin(margin))
    return float(margin)


def margin_of(metric: Metric | str, margin: float | None) -> float:
    """The margin of ``better`` for ``metric``: the one given for every metric, else the
    metric's own (0.5 points for the averages, 0.005 for the fraction metrics)."""
    if margin is not None:
        return margin
    return (metric if isinstance(metric, Metric) else metric_named(metric)).margin


def mcnemar_p_value(increase_a: Any, increase_b: Any) -> float:
    r"""Exact two-sided McNemar p-value of two paired 0/1 vectors (``scipy.stats.binomtest``
    with probability 1/2 on the discordant pairs; none discordant gives 1).

    >>> mcnemar_p_value([1, 1, 1, 1, 0], [0, 0, 0, 0, 0])  # b=4, c=0: 2 / 2**4
    0.125
    """
    a = np.asarray(increase_a).astype(bool)
    b = np.asarray(increase_b).astype(bool)
    only_a = int(np.count_nonzero(a & ~b))
    discordant = only_a + int(np.count_nonzero(~a & b))
    if discordant == 0:
        return 1.0
    return float(_scipy_stats().binomtest(only_a, discordant, 0.5).pvalue)


def wilcoxon_p_value(differences: Any) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (``scipy.stats.wilcoxon``,
    ``zero_method='pratt'``: zero differences take part in the ranking, so ties are not
    dropped). All differences zero gives 1.

    >>> wilcoxon_p_value([0.1, 0.2, 0.3, 0.4, 0.5])  # exact: 2 / 2**5
    0.0625
    >>> wilcoxon_p_value([0.0, 0.0])
    1.0
    """
    values = np.asarray(differences, dtype=np.float64)
    if not np.any(values != 0):
        return 1.0
    p_value = float(_scipy_stats().wilcoxon(values, zero_method="pratt").pvalue)
    return p_value if math.isfinite(p_value) else 1.0


def rank_test(metric: Metric) -> str:
    """The rank test of a metric: McNemar for a proportion (0/1 terms), else Wilcoxon."""
    return "mcnemar" if metric.interval == WILSON else "wilcoxon"


def check_test(test: Any, metrics: tuple[Metric, ...] | None = None) -> dict[str, str]:
    """``test`` as ``{metric: name}``: a name for every metric where it applies, or a dict.

    ``"wilcoxon"`` applies to the metrics of continuous terms (drop, gain) and ``"mcnemar"`` to
    proportions (increase); other metrics keep the default, ``"sign_flip"``. Both rank tests
    together: ``test="wilcoxon"`` gives McNemar for a proportion too.
    """
    metrics = resolve_metrics(metrics)
    names = [m.name for m in metrics]
    if isinstance(test, dict):
        unknown = set(test) - set(names)
        if unknown:
            raise ValueError(validation.test_unknown_metrics(sorted(unknown), names))
        chosen = {**dict.fromkeys(names, SIGN_FLIP), **test}
    elif test in DUAL_TESTS:
        chosen = dict.fromkeys(names, test)
    elif test in TESTS:
        chosen = {
            m.name: (SIGN_FLIP if test == "mcnemar" and rank_test(m) != "mcnemar" else rank_test(m)) for m in metrics
        }
    else:
        raise ValueError(validation.bad_test(test, TESTS))
    for metric in metrics:
        allowed = DUAL_TESTS + (rank_test(metric),)
        if chosen[metric.name] not in allowed:
            raise ValueError(validation.test_does_not_apply(chosen[metric.name], metric.name, allowed))
    return chosen


def ties(o_c_a: Any, o_c_b: Any, *, backend: str | Backend | None = None) -> Any:
    """Where the two masked scores are within :data:`TIE_ULPS` float32 ulps of each other.

    >>> ties([0.5, 0.5, 0.99999], [0.5 + 1e-7, 0.5 + 1e-5, 0.999995]).tolist()
    [True, False, False]
    """
    bk = resolve_backend(backend, o_c_a, o_c_b)
    a, b = as_float_pair(o_c_a, o_c_b, bk)
    gap = bk.maximum(a - b, b - a)
    larger = bk.maximum(bk.maximum(a, -a), bk.maximum(b, -b))
    return gap <= (TIE_ULPS * FLOAT32_EPS) * larger




def tied_in_terms(tied: Any, terms_a: Any, terms_b: Any, backend: Backend) -> Any:
    """Where a tie of the scores (:func:`ties`) is a tie in a metric: where its two terms also
    differ by at most :data:`TIE_TERMS`, so that no tie hides a difference the result shows.

    >>> tied_in_terms(np.array([True, True, False]), np.array([0.5, 0.9, 0.5]), np.array([0.5, 0.0, 0.5]), _HOST).tolist()
    [True, False, False]
    """
    gap = terms_a - terms_b
    return tied & (backend.maximum(gap, -gap) <= TIE_TERMS)


def paired_differences(y_c: Any, o_c_a: Any, o_c_b: Any, *, metrics: Any = None, backend: str | Backend | None = None,
                       zero_ties: bool = True):
    """Per-sample differences a - b of each metric's terms; ties (see :func:`ties`) set to
    exactly 0 where their terms differ by at most :data:`TIE_TERMS`, unless
    ``zero_ties=False``. Returns ``({metric: d}, terms_a, terms_b)``.

    >>> d, _, _ = paired_differences([0.5, 0.5], [0.2, 0.3], [0.2 + 1e-9, 0.2])
    >>> [round(float(v), 6) for v in d["average_drop"]]  # a tie, then (0.2 - 0.3) / 0.5
    [0.0, -0.2]
    """
    described = resolve_metrics(metrics)
    bk = resolve_backend(backend, y_c, o_c_a)
    y, o_a = as_float_pair(y_c, o_c_a, bk)
    _, o_b = as_float_pair(y_c, o_c_b, bk)
    terms_a, terms_b = compute_terms(described, y, o_a, bk), compute_terms(described, y, o_b, bk)
    differences = {name: terms_a[name] - terms_b[name] for name in terms_a}
    if zero_ties:
        tied = ties(o_a, o_b, backend=bk)
        for name, d in differences.items():
            differences[name] = bk.where(tied_in_terms(tied, terms_a[name], terms_b[name], bk), d * 0.0, d)
    return differences, terms_a, terms_b


def compare(
    y_c: Any,
    o_c_a: Any,
    o_c_b: Any,
    *,
    metrics: Any = None,
    level: float = 0.95,
    names: tuple[str, str] = ("a", "b"),
    nan_policy: str = "raise",
    test: Any = SIGN_FLIP,
    ci_method: str = "default",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: Any = DEFAULT_SEED,
    margin: float | None = None,
) -> Comparison:
    """Compare two CAM methods, a and b, on the same samples.

    Args:
        y_c: (N,) scores of the target class on the inputs, probabilities.
        o_c_a: (N,) scores on the inputs masked by method a's CAMs.
        o_c_b: (N,) scores on the inputs masked by method b's CAMs, same samples and order.
        metrics: metric names or :class:`~camavg_core.metrics.Metric` descriptions (default:
            the three averages).
        level: confidence level of the intervals; ``better`` tests at ``1 - level``.
        names: the two methods' names, for the summary and ``better``.
        nan_policy: ``'raise'`` (default), or ``'omit'`` to leave out every sample with a
            non-finite score in y_c, o_c_a or o_c_b.
        test: ``'sign_flip'`` (default, dual to the interval), ``'t'`` (Hall's t from sums,
            dual to its interval), ``'wilcoxon'`` (drop and gain; McNemar for increase),
            ``'mcnemar'`` (increase only), or ``{metric: test}``.
        ci_method: ``'default'`` (the interval dual to the test; the sign-flip one for the
            rank tests) or ``'bootstrap'``: a seeded BCa bootstrap (``scipy.stats.bootstrap``)
            of the mean paired difference, every metric over the same resampled samples;
            its interval is then not dual to any p-value (``dual`` is all False).
        n_resamples, seed: of the bootstrap, when asked for.
        margin: in each metric's unit, for every metric; by default each metric's own
            (:func:`margin_of`: 0.5 percentage points for the averages, 0.005 for the fraction
            metrics): ``better`` names a method only when the whole interval lies beyond it.

    >>> y = [0.9, 0.8, 0.7, 0.6, 0.9]
    >>> result = compare(y, [0.1, 0.2, 0.3, 0.2, 0.3], [0.8, 0.8, 0.7, 0.6, 0.9])
    >>> # a drops 8/9, 6/8, 4/7, 4/6, 6/9 (mean 0.70873); b only 1/9 on sample 0 (mean 0.02222)
    >>> round(result.difference["average_drop"], 2)
    68.65
    >>> result.p_value["average_drop"]  # five positive differences: 2 / 2**5, the smallest there is
    0.0625
    >>> result.no_difference["average_increase"], result.p_value["average_increase"], result.better["average_drop"]
    (True, 1.0, None)
    """
    described = resolve_metrics(metrics)
    level = check_level(level)
    tests = check_test(test, described)
    margin = check_margin(margin)
    validation.check_ci_method(ci_method)
    y, o_a, o_b = checked_vectors({"y_c": y_c, "o_c_a": o_c_a, "o_c_b": o_c_b}, nan_policy)
    for values, argument in ((y, "y_c"), (o_a, "o_c_a"), (o_b, "o_c_b")):
        check_scores(values, described, argument)
    return compare_checked(y, o_a, o_b, described, tests=tests, level=level, names=names, ci_method=ci_method,
                           n_resamples=n_resamples, seed=seed, margin=margin)


def compare_checked(y: np.ndarray, o_a: np.ndarray, o_b: np.ndarray, metrics: tuple[Metric, ...], *,
                    tests: dict[str, str], level: float, names: tuple[str, str], ci_method: str,
                    n_resamples: int, seed: Any, margin: float | None) -> Comparison:
    """:func:`compare` of host vectors checked at a door (and checked arguments): no check again."""
    valid = np.isfinite(y) & np.isfinite(o_a) & np.isfinite(o_b)
    n = int(np.count_nonzero(valid))
    if n == 0:
        raise ValueError(validation.all_skipped("compare"))
    y, o_a, o_b = (v[valid].astype(np.float64) for v in (y, o_a, o_b))
    tied = np.asarray(ties(o_a, o_b, backend=_HOST))
    terms_a, terms_b = compute_terms(metrics, y, o_a, _HOST), compute_terms(metrics, y, o_b, _HOST)
    return compare_terms(terms_a, terms_b, dict.fromkeys(terms_a, tied), metrics, tests=tests, level=level,
                         names=names, ci_method=ci_method, n_resamples=n_resamples, seed=seed, margin=margin,
                         skipped=int(valid.size - n))


def compare_terms(terms_a: dict, terms_b: dict, tied: dict, metrics: tuple[Metric, ...], *,
                  tests: dict[str, str], level: float, names: tuple[str, str], ci_method: str,
                  n_resamples: int = DEFAULT_RESAMPLES, seed: Any = DEFAULT_SEED, margin: float | None = None,
                  skipped: int = 0) -> Comparison:
    """The comparison of two methods from their per-sample terms (host (N,) float64 vectors
    of the same samples, by metric) and ``tied[name]`` (N,): the samples whose scores are a tie
    (:func:`ties`), whose difference is set to 0 for the test and the interval (never for the
    difference). A NaN term (a metric that leaves samples out) leaves that sample out of that
    metric's comparison only: the pair is compared on the samples defined for both, and a note
    says how many were left out."""
    difference, ci, p_value, no_difference, dual, nonzero, better = {}, {}, {}, {}, {}, {}, {}
    columns, counts = {}, {}
    pair = (str(names[0]), str(names[1]))
    n = int(next(iter(terms_a.values())).size)
    for metric in metrics:
        name, bounds = metric.name, metric.difference_bounds
        unit_bounds = (bounds[0] / metric.scale, bounds[1] / metric.scale)  # in the terms' unit
        a, b = np.asarray(terms_a[name], np.float64), np.asarray(terms_b[name], np.float64)
        defined = np.isfinite(a) & np.isfinite(b)
        a, b, tie = a[defined], b[defined], np.asarray(tied[name], bool)[defined]
        counts[name] = int(a.size)
        if a.size == 0:
            raise ValueError(validation.all_undefined(name, n))
        tie = tied_in_terms(tie, a, b, _HOST)
        tied_b = np.where(tie, a, b)
        d = a - tied_b
        columns[name] = d
        # the estimate is the results' difference: no tie rule touches it
        difference[name] = metric.scale * (float(a.mean()) - float(b.mean()))
        nonzero[name] = int(np.count_nonzero(d))
        no_difference[name] = nonzero[name] == 0
        dual[name] = tests[name] in DUAL_TESTS and ci_method == "default"
        if no_difference[name]:
            ci[name], p_value[name] = (0.0, 0.0), 1.0
        elif tests[name] == "t":
            sums = (a.size, *power_sums_on(d, _HOST)[:3], nonzero[name])
            p_value[name], interval = paired_hall_t(*sums, level=level, bounds=unit_bounds)
            ci[name] = in_unit(interval, metric.scale, bounds)
        else:
            flip_p = sign_flip_test(d)
            ci[name] = in_unit(sign_flip_interval(d, level=level, bounds=unit_bounds, p_at_zero=flip_p), metric.scale, bounds)
            if tests[name] == "wilcoxon":
                p_value[name] = wilcoxon_p_value(d)
            elif tests[name] == "mcnemar":
                p_value[name] = mcnemar_p_value(a, tied_b)
            else:
                p_value[name] = flip_p
    if ci_method == "bootstrap":
        ci = dict(ci)
        groups: dict[int, list[Metric]] = {}
        for metric in metrics:  # metrics of equal sample counts resample the same samples together
            groups.setdefault(counts[metric.name], []).append(metric)
        for group in groups.values():
            stacked = np.stack([columns[m.name] for m in group], axis=1)
            resampled = bootstrap_mean_intervals(stacked, level=level, n_resamples=n_resamples, seed=seed)
            for j, m in enumerate(group):
                if not no_difference[m.name]:
                    ci[m.name] = in_unit(resampled[j], m.scale, m.difference_bounds)
    for metric in metrics:
        better[metric.name] = better_method(metric, *ci[metric.name], p_value[metric.name], alpha=1.0 - level,
                                            margin=margin_of(metric, margin), names=pair)
    hall_only = all(name == "t" for name in tests.values())
    notes = approximate_notes(n, nonzero) + tuple(
        f"{name}: compared on the {count} of {n} samples whose term is defined for both methods"
        for name, count in counts.items() if count < n
    )
    return Comparison(
        difference=difference, ci=ci, p_value=p_value, n=n, level=level, names=pair,
        skipped=skipped, test=tests, dual=dual, no_difference=no_difference,
        ci_method=BOOTSTRAP_BCA if ci_method == "bootstrap" else (HALL_T if hall_only else SIGN_FLIP),
        notes=notes, better=better, margin=DEFAULT_MARGIN if margin is None else margin,
        margins={m.name: margin_of(m, margin) for m in metrics},
    )


def curve_ties(paired_a: np.ndarray, paired_b: np.ndarray) -> np.ndarray:
    """(N,) the samples where two methods' (rows, N) scores (and a metric's array context,
    such as MuFidelity's CAM sums) are a tie at **every** row by the :func:`ties` rule: a curve
    metric's sample is tied when all its K + 1 scores are, else not at all."""
    a, b = np.asarray(paired_a, np.float64), np.asarray(paired_b, np.float64)
    return np.asarray(ties(a.ravel(), b.ravel(), backend=_HOST)).reshape(a.shape).all(axis=0)


def compare_results(results: dict, metrics: tuple[Metric, ...], *, baseline: str | None = None, methods: Any = None,
                    level: float = 0.95, adjust: str = "holm", test: Any = SIGN_FLIP, ci_method: str = "default",
                    margin: float | None = None, averages_table: Any = None) -> "ComparisonTable":
    """The table of :func:`compare_methods` for metrics of any perturbation, from results of
    the same samples that kept their per-sample terms (``AveragesCam.evaluate`` gives them):
    each pair compared by :func:`compare_terms` (ties by :func:`curve_ties`), Holm per metric
    across pairs. ``averages_table``: the table of the CAM-mask metrics, whose comparisons are
    joined pair by pair (the averages keep their own path and numbers)."""
    check_adjust(adjust)
    level, margin = check_level(level), check_margin(margin)
    tests = check_test(test, metrics)
    validation.check_ci_method(ci_method)
    pairs = selected_pairs(results, methods, baseline)
    comparisons = {}
    for a, b in pairs:
        ra, rb = results[a], results[b]
        valid = np.isfinite(ra.y_c)
        for r in (ra, rb):
            for m in metrics:
                valid &= np.isfinite(r.paired[m.name]).all(axis=0)
        terms_a = {m.name: ra.terms[m.name][valid] for m in metrics}
        terms_b = {m.name: rb.terms[m.name][valid] for m in metrics}
        tied = {m.name: curve_ties(ra.paired[m.name][:, valid], rb.paired[m.name][:, valid]) for m in metrics}
        comparison = compare_terms(terms_a, terms_b, tied, metrics, tests=tests, level=level, names=(a, b),
                                   ci_method=ci_method, margin=margin, skipped=int(valid.size - valid.sum()))
        if averages_table is not None:
            comparison = _joined(averages_table.comparisons[(a, b)], comparison)
        comparisons[(a, b)] = comparison
    return comparison_table(comparisons, level=level, adjust=adjust, margin=margin)


def _joined(first: Comparison, second: Comparison) -> Comparison:
    """One comparison of a pair holding both comparisons' metrics (the first's n and skipped:
    the samples every metric saw)."""
    def both(field: str) -> dict:
        return {**getattr(first, field), **getattr(second, field)}

    fields = ("difference", "ci", "p_value", "test", "dual", "no_difference", "better", "margins")
    notes = first.notes + tuple(note for note in second.notes if note not in first.notes)
    return dataclasses.replace(first, notes=notes, **{field: both(field) for field in fields})


# --------------------------------------------------------------------------- from sums
#: what a pair state keeps of each metric's paired differences (the count last)
PAIR_PARTS = ("sum", "sq_sum", "cube_sum", "estimate_sum", "nonzero")


class PairState(NamedTuple):
    r"""The mergeable state of a paired comparison: for each metric, sums of powers 1-3 and the
    non-zero count of the paired differences :math:`d_i = a_i - b_i` with ties set to 0 (see
    :func:`ties`: the test and the interval), and the plain sum of the differences (the
    estimate); :math:`n` and ``skipped`` count samples. Every field is summed on merge, so any
    split of the data (batches, replicas, hosts) merges back to the state of the whole.

    :meth:`result` has sums only, so its test is Hall's skewness-corrected t from the sums,
    flagged approximate in ``notes``; :func:`compare`, which has the per-sample differences,
    runs the exact sign-flip test. The difference is the same in both: mean of a's terms minus
    mean of b's.

    >>> y, o_a, o_b = np.array([0.8, 0.6]), np.array([0.2, 0.6]), np.array([0.4, 0.3])
    >>> whole = PairState.empty().update(y, o_a, o_b)
    >>> halves = PairState.empty().update(y[:1], o_a[:1], o_b[:1]).merge(
    ...     PairState.empty().update(y[1:], o_a[1:], o_b[1:]))
    >>> whole.to_numpy() == halves.to_numpy()
    True
    """

    n: Any = 0
    skipped: Any = 0
    sums: Any = None

    @classmethod
    def empty(cls, metrics: Any = None) -> "PairState":
        return cls(0, 0, {m.name: (0.0, 0.0, 0.0, 0.0, 0) for m in resolve_metrics(metrics)})

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return tuple(metric_named(name) for name in ordered(self.sums or {}))

    def __getattr__(self, name: str) -> Any:
        # the three averages' fields by their old names: drop_sum, gain_estimate_sum
        return named_part(self.sums, name, lambda metric: PAIR_PARTS)

    def update(
        self,
        y_c: Any,
        o_c_a: Any,
        o_c_b: Any,
        *,
        nan_policy: str = "raise",
        backend: str | Backend | None = None,
    ) -> "PairState":
        """The state after also seeing these samples; ``self`` is unchanged.

        The door: the checks are those of ``compare`` (under ``'raise'`` they need concrete
        values); traced values under ``'omit'`` go to :meth:`add` unchecked, where a sample with a
        non-finite score is counted in ``skipped`` without a Python branch on the values, so
        that path runs inside ``jax.jit`` and ``tf.function``.
        """
        validation.check_nan_policy(nan_policy)
        bk = resolve_backend(backend, y_c, o_c_a, o_c_b)
        if host_or_traced(bk, [y_c, o_c_a, o_c_b], nan_policy):
            vectors = checked_vectors({"y_c": y_c, "o_c_a": o_c_a, "o_c_b": o_c_b}, nan_policy, allow_empty=True)
            for values, argument in zip(vectors, ("y_c", "o_c_a", "o_c_b")):
                check_scores(values, self.metrics, argument)
            return self.add(*vectors, backend=_HOST)
        return self.add(y_c, o_c_a, o_c_b, backend=bk)

    def add(self, y_c: Any, o_c_a: Any, o_c_b: Any, *, backend: Backend) -> "PairState":
        """The pure update: checked scores' paired differences added to the sums."""
        bk = backend
        y, o_a = as_float_pair(y_c, o_c_a, bk)
        _, o_b = as_float_pair(y_c, o_c_b, bk)
        (y, o_a, o_b), compensate = float64_on(bk, [y, o_a, o_b])
        # skipped samples become zeros before the equations, so no NaN reaches a sum
        (y, o_a, o_b), valid, zero = valid_pairs([y, o_a, o_b], bk)
        metrics = self.metrics
        differences, _, _ = paired_differences(y, o_a, o_b, metrics=metrics, backend=bk)
        estimates, _, _ = paired_differences(y, o_a, o_b, metrics=metrics, backend=bk, zero_ties=False)
        n_valid = bk.sum(bk.astype(valid, "int32"))
        sums = {}
        for metric in metrics:
            s1, s2, s3, nonzero = power_sums_on(bk.where(valid, differences[metric.name], zero), bk)
            estimate = bk.sum(bk.where(valid, estimates[metric.name], zero))
            sums[metric.name] = add_sums(self.sums[metric.name], (s1, s2, s3, estimate, nonzero), bk, compensate)
        return PairState(self.n + n_valid, self.skipped + (bk.shape(y)[0] - n_valid), sums)

    def merge(self, other: "PairState") -> "PairState":
        """The state of both parts of the data together: a field-wise sum."""
        if not isinstance(other, PairState):
            raise TypeError(validation.merge_other(type(self).__name__, other))
        if set(self.sums) != set(other.sums):
            raise ValueError(validation.merge_other_metrics(sorted(self.sums), sorted(other.sums)))
        sums = {name: tuple(_merged(a, b) for a, b in zip(mine, other.sums[name])) for name, mine in self.sums.items()}
        return PairState(self.n + other.n, self.skipped + other.skipped, sums)

    def to_numpy(self) -> "PairState":
        """Concrete Python numbers (int counts, float64 sums)."""
        sums = {}
        for name in ordered(self.sums):
            *totals, count = self.sums[name]
            sums[name] = (*(float(np.asarray(t).astype(np.float64).sum()) for t in totals), int(np.asarray(count)))
        return PairState(int(np.asarray(self.n)), int(np.asarray(self.skipped)), sums)

    def result(self, *, level: float = 0.95, names: tuple[str, str] = ("a", "b"), margin: float | None = None):
        """The :class:`Comparison` of the samples seen, from the sums: the difference of the
        means, Hall's t test and interval (approximate, said in ``notes``)."""
        level = check_level(level)
        margin = check_margin(margin)
        state = self.to_numpy()
        if state.n == 0:
            raise ValueError(validation.nothing_seen("compare"))
        difference, ci, p_value, no_difference, nonzero, better = {}, {}, {}, {}, {}, {}
        pair = (str(names[0]), str(names[1]))
        for metric in state.metrics:
            name = metric.name
            total, sq_total, cube_total, estimate, nonzero[name] = state.sums[name]
            no_difference[name] = nonzero[name] == 0
            difference[name] = metric.scale * estimate / state.n
            if no_difference[name]:
                ci[name], p_value[name] = (0.0, 0.0), 1.0
            else:
                bounds = metric.difference_bounds
                p_value[name], interval = paired_hall_t(state.n, total, sq_total, cube_total, nonzero[name], level=level,
                                                        bounds=(bounds[0] / metric.scale, bounds[1] / metric.scale))
                ci[name] = in_unit(interval, metric.scale, bounds)
            better[name] = better_method(metric, *ci[name], p_value[name], alpha=1.0 - level,
                                         margin=margin_of(metric, margin), names=pair)
        return Comparison(
            difference=difference, ci=ci, p_value=p_value, n=state.n, level=level, names=pair,
            skipped=state.skipped, test=dict.fromkeys(difference, "t"), no_difference=no_difference,
            ci_method=HALL_T, notes=(SUMS_ONLY_NOTE,) + approximate_notes(state.n, nonzero), better=better,
            margin=DEFAULT_MARGIN if margin is None else margin,
            margins={m.name: margin_of(m, margin) for m in state.metrics},
        )


# --------------------------------------------------------------------------- many methods
# Many CAM methods at once: every pair (or each against a baseline), p-values adjusted.
# 
# :func:`compare_methods` runs :func:`~camavg_core.compare.compare` on each pair and adjusts the
# p-values of each metric over the pairs (Holm's step-down by default), so that the chance of any
# false "differs" among the pairs of one metric stays at most ``alpha``. Each row names the
# ``better`` method only when its adjusted p-value is below ``1 - level`` **and** its interval lies
# beyond ``margin`` points on its side: significance is not size.
# 
ADJUSTMENTS = ("holm", "none")


def smallest_sign_flip_p(n: int, pairs: int = 1, adjust: str = "holm") -> float:
    """The smallest p-value the sign-flip test can give a pair of methods measured on ``n``
    samples, whatever their maps: 2 / 2^n (every difference non-zero and of one sign), times
    ``pairs`` after Holm's adjustment (its first step), at most 1. Where it is ``1 - level`` or
    more, no pair can be significant, and a table of "no difference" says nothing of the maps.

    >>> smallest_sign_flip_p(5), smallest_sign_flip_p(6, pairs=6), smallest_sign_flip_p(8, pairs=6) < 0.05
    (0.0625, 0.1875, True)
    """
    p = 2.0 / 2.0 ** int(n)
    return min(1.0, p * int(pairs)) if adjust == "holm" else p


def sign_flip_floor(n: int, pairs: int, level: float, tests: Any, adjust: str = "holm") -> float | None:
    """:func:`smallest_sign_flip_p` where it keeps every pair from significance at ``1 -
    level`` and every one of ``tests`` (the rows' tests) is the sign-flip test, else None (some
    pair could be significant, or another test, with its own floor or none, is in the table).

    >>> sign_flip_floor(6, 6, 0.95, ["sign_flip"] * 3), sign_flip_floor(8, 6, 0.95, ["sign_flip"]), sign_flip_floor(6, 6, 0.95, ["t"])
    (0.1875, None, None)
    """
    tests = list(tests)
    if pairs < 1 or not tests or any(test != SIGN_FLIP for test in tests):
        return None
    smallest = smallest_sign_flip_p(n, pairs, adjust)
    return smallest if smallest >= 1.0 - level else None


def holm(p_values: Any) -> np.ndarray:
    r"""Holm's step-down adjusted p-values.

    Written here because SciPy has no Holm adjustment (``scipy.stats.false_discovery_control``
    does Benjamini-Hochberg and Benjamini-Yekutieli only). With the :math:`m` p-values sorted,
    :math:`p_{(1)} \le \dots \le p_{(m)}`:

    .. math::

        \tilde p_{(i)} = \min\Big(1, \max_{j \le i} (m - j + 1)\, p_{(j)}\Big)

    >>> holm([0.01, 0.04, 0.03]).tolist()  # sorted 0.01, 0.03, 0.04: 3*0.01, 2*0.03, 1*0.04 -> 0.06
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


@dataclasses.dataclass(frozen=True)
class ComparisonRow:
    """One pair and one metric of a :class:`ComparisonTable`."""

    a: str
    b: str
    metric: str
    difference: float
    low: float
    high: float
    p_value: float
    p_adjusted: float
    test: str
    adjust: str
    #: the better method's name, or None: adjusted p below 1 - level and the interval beyond the
    #: margin on its side (:func:`camavg_core.metrics.better_method`)
    better: str | None = None
    margin: float = DEFAULT_MARGIN

    def to_dict(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True, eq=False)
class ComparisonTable:
    """Every comparison of :func:`compare_methods`, one row per pair and metric.

    Attributes:
        rows: the :class:`ComparisonRow` list, pairs in order, metrics in the comparisons' order.
        comparisons: ``{(a, b): Comparison}``, with the unadjusted p-values.
        level: confidence level of the intervals. adjust: ``'holm'`` or ``'none'``; the
            family of an adjustment is the pairs of one metric. margin: of ``better``, in points.
    """

    rows: list[ComparisonRow]
    comparisons: dict[tuple[str, str], Comparison]
    level: float
    adjust: str
    margin: float = DEFAULT_MARGIN

    def to_records(self) -> list[dict[str, Any]]:
        """Plain dicts, one per row, for JSON or CSV."""
        return [row.to_dict() for row in self.rows]

    def significant(self, alpha: float = 0.05) -> list[ComparisonRow]:
        """The rows whose adjusted p-value is below ``alpha``: the pairs that differ."""
        if not 0.0 < float(alpha) < 1.0:
            raise ValueError(validation.bad_alpha(alpha))
        return [row for row in self.rows if row.p_adjusted < alpha]

    def __str__(self) -> str:
        header = (
            f"{'a':>14} {'b':>14} {'metric':>17} {'diff':>8} "
            f"{f'{100 * self.level:g}% CI':>18} {'p':>9} {'p ' + self.adjust:>9} {'better':>14}  test"
        )
        lines = [header]
        for row in self.rows:
            shown = metric_named(row.metric).format
            lines.append(
                f"{row.a:>14} {row.b:>14} {row.metric:>17} {shown(row.difference, sign=True):>8} "
                f"{f'[{shown(row.low, sign=True)}, {shown(row.high, sign=True)}]':>18} {_p_cell(row.p_value)} "
                f"{_p_cell(row.p_adjusted)} {row.better or '-':>14}  {row.test}"
            )
        floor = self.unreachable()
        if floor is not None:
            n, smallest = floor
            pairs = len(self.comparisons)
            adjusted = f", {smallest:.2g} after Holm's adjustment over {pairs} pairs" if self.adjust == "holm" and pairs > 1 else ""
            lines.append(f"n = {n}: no pair can be significant at {1 - self.level:g}, whatever the data: the sign-flip "
                         f"test's smallest p-value is 2 / 2^{n} = {smallest_sign_flip_p(n):.2g}{adjusted}")
        return "\n".join(lines)

    def unreachable(self) -> tuple[int, float] | None:
        """``(n, smallest adjusted p)`` where the table's rows, all sign-flip tests, cannot reach
        ``1 - level`` with their samples (:func:`smallest_sign_flip_p`, the largest n of its
        pairs), else None: then every row's "no difference" is the test's floor, not the data's."""
        if not self.comparisons:
            return None
        n = max(comparison.n for comparison in self.comparisons.values())
        smallest = sign_flip_floor(n, len(self.comparisons), self.level, (row.test for row in self.rows), self.adjust)
        return None if smallest is None else (n, smallest)


def _row_margin(comparison: Comparison, metric: str, margin: float | None) -> float:
    """The margin given to the table, else the one the comparison used for ``metric``."""
    if margin is not None:
        return margin
    return comparison.margins.get(metric, margin_of(metric, None))


def _p_cell(p_value: float) -> str:
    return f"{p_value:9.3g}" if p_value > 0.0 else f"{format_p(p_value):>9}"


def selected_pairs(methods_by_name: dict, methods: Any, baseline: str | None) -> list[tuple[str, str]]:
    """The pairs ``(a, b)`` a comparison of ``methods_by_name``'s methods runs, in their order:
    every pair, or each method against ``baseline``; only ``methods`` (and the baseline) when
    given. An unknown name in ``methods`` or ``baseline``, or fewer than two methods left, is
    an error that names the methods there are.

    >>> selected_pairs({"a": 0, "b": 0, "c": 0}, None, "b")
    [('a', 'b'), ('c', 'b')]
    >>> selected_pairs({"a": 0, "b": 0, "c": 0}, ["a", "c"], None)
    [('a', 'c')]
    """
    names = [str(name) for name in methods_by_name]
    if methods is not None:
        unknown = [name for name in methods if name not in methods_by_name]
        if unknown:
            raise ValueError(validation.unknown_methods(unknown, names))
        names = [name for name in names if name in set(methods) or name == baseline]
    if baseline is not None and baseline not in methods_by_name:
        raise ValueError(validation.unknown_baseline(baseline, names))
    if baseline is None:
        pairs = list(itertools.combinations(names, 2))
    else:
        pairs = [(name, baseline) for name in names if name != baseline]
    if not pairs:
        raise ValueError(validation.no_pair(names))
    return pairs


def check_adjust(adjust: Any) -> None:
    if adjust not in ADJUSTMENTS:
        raise ValueError(validation.bad_choice("adjust", adjust, ADJUSTMENTS))


def compare_methods(
    y_c: Any,
    masked_scores: dict[str, Any],
    *,
    baseline: str | None = None,
    methods: Any = None,
    level: float = 0.95,
    adjust: str = "holm",
    test: Any = SIGN_FLIP,
    nan_policy: str = "raise",
    ci_method: str = "default",
    margin: float | None = None,
    metrics: Any = None,
) -> ComparisonTable:
    """Compare several CAM methods on the same samples, with adjusted p-values.

    Args:
        y_c: (N,) scores of the target class on the inputs, probabilities.
        masked_scores: ``{name: o_c}``, each method's (N,) scores on the masked inputs.
        baseline: compare each method against this one (a - baseline) instead of every pair.
        methods: compare only these names (the baseline is kept).
        level: confidence level of the intervals.
        adjust: ``'holm'`` (default) or ``'none'``.
        test: as in :func:`~camavg_core.compare.compare`.
        nan_policy, ci_method: as in :func:`~camavg_core.compare.compare`, pair by pair.
        margin: in each metric's unit, for every metric (default: each metric's own, 0.5
            percentage points for the averages, 0.005 for the fraction metrics): a row names the
            ``better`` method only when its adjusted p-value is below ``1 - level`` and its
            interval lies beyond the margin.
        metrics: as in :func:`~camavg_core.compare.compare`.

    Every vector is checked once, here, whatever the number of pairs.

    >>> y = [0.9, 0.8, 0.7, 0.6]
    >>> table = compare_methods(y, {"a": [0.1, 0.2, 0.3, 0.2], "b": y, "c": y}, baseline="b")
    >>> [(row.a, row.b, row.metric) for row in table.rows][:2]
    [('a', 'b', 'average_drop'), ('a', 'b', 'average_increase')]
    >>> table.rows[0].better is None  # four samples: the smallest sign-flip p is 2 / 2**4
    True
    """
    if not isinstance(masked_scores, dict) or len(masked_scores) < 2:
        raise ValueError(validation.too_few_methods(masked_scores))
    check_adjust(adjust)
    described = resolve_metrics(metrics)
    level, margin, tests = check_level(level), check_margin(margin), check_test(test, described)
    validation.check_ci_method(ci_method)
    pairs = selected_pairs(masked_scores, methods, baseline)
    names = [str(name) for name in masked_scores]
    used = sorted({name for pair in pairs for name in pair}, key=names.index)
    vectors = checked_vectors({"y_c": y_c, **{name: masked_scores[name] for name in used}}, nan_policy)
    for values, argument in zip(vectors, ["y_c", *used]):
        check_scores(values, described, argument)
    y, masked = vectors[0], dict(zip(used, vectors[1:]))
    comparisons = {
        (a, b): compare_checked(
            y, masked[a], masked[b], described, tests=tests, level=level, names=(a, b), ci_method=ci_method,
            n_resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED, margin=margin,
        )
        for a, b in pairs
    }
    return comparison_table(comparisons, level=level, adjust=adjust, margin=margin)


def comparison_table(comparisons: dict[tuple[str, str], Comparison], *, level: float = 0.95, adjust: str = "holm",
                     margin: float | None = None) -> ComparisonTable:
    """The table of pairwise comparisons, each metric's p-values adjusted over the pairs, and
    each row's ``better`` decided on the adjusted p-value and the margin.

    ``comparisons`` maps ``(a, b)`` to a :class:`~camavg_core.compare.Comparison`, computed
    in memory (:func:`compare_methods`) or from sums (:meth:`PairState.result`).
    """
    check_adjust(adjust)
    level, margin = check_level(level), check_margin(margin)
    pairs = list(comparisons)
    metrics = list(next(iter(comparisons.values())).difference) if comparisons else []
    adjusted = {}
    for metric in metrics:
        raw = [comparisons[pair].p_value[metric] for pair in pairs]
        values = holm(raw) if adjust == "holm" else np.asarray(raw)
        adjusted.update({(pair, metric): float(v) for pair, v in zip(pairs, values)})
    rows = [
        ComparisonRow(
            a=a, b=b, metric=metric,
            difference=comparison.difference[metric],
            low=comparison.ci[metric][0], high=comparison.ci[metric][1],
            p_value=comparison.p_value[metric], p_adjusted=adjusted[((a, b), metric)],
            test=comparison.test[metric], adjust=adjust,
            better=better_method(metric, *comparison.ci[metric], adjusted[((a, b), metric)], alpha=1.0 - level,
                                 margin=_row_margin(comparison, metric, margin), names=(a, b)),
            margin=_row_margin(comparison, metric, margin),
        )
        for (a, b), comparison in comparisons.items()
        for metric in metrics
    ]
    return ComparisonTable(rows=rows, comparisons=comparisons, level=level, adjust=adjust,
                           margin=DEFAULT_MARGIN if margin is None else margin)


# ``import camavg_core.compare`` finds the function ``compare`` (the package exports it under the
# module's name), so the documented constants are reachable from it too.
compare.TIE_ULPS = TIE_ULPS
compare.FLOAT32_EPS = FLOAT32_EPS
compare.DEFAULT_MARGIN = DEFAULT_MARGIN
