r"""Paired comparison of two CAM methods scored on the same samples.

For each sample :math:`i` the two methods give terms :math:`a_i` and :math:`b_i` of the same
metric:

- difference: :math:`100 (\bar a - \bar b)`, in percentage points: exactly result a minus
  result b, whatever the test;
- p-value (default ``test="sign_flip"``): the sign-flip permutation test of Hall's studentised
  mean (:mod:`camavg_core.sign_flip`) on the paired differences :math:`d_i = a_i - b_i`, exact
  when the methods are exchangeable;
- interval: the mean differences that test does not reject, so ``p < 1 - level`` exactly when
  the interval excludes 0 (``Comparison.dual``). ``test="t"`` gives Hall's t test and interval
  from sums (what a merged :class:`PairState` gives); ``test="wilcoxon"`` (drop and gain) and
  McNemar's test (increase) are available by name; they test other hypotheses and are not dual
  to the interval.
- better: the method whose test is significant at ``1 - level`` **and** whose whole interval
  lies beyond ``margin`` points on its side (:func:`camavg_core.metric_info.better_method`).

Float noise of the same maps is not a finding: where the two masked scores of a sample are within
:data:`TIE_ULPS` float32 ulps of each other (:func:`camavg_core.pair_state.ties`), the sample's
differences are set to 0 for the test and the interval (never for the difference).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from camavg_core import validation
from camavg_core.equations import _checked_vectors, _to_numpy
from camavg_core.backends import NumpyBackend
from camavg_core.metric_info import better_method
from camavg_core.pair_state import (
    DEFAULT_MARGIN,
    FLOAT32_EPS,
    TIE_ULPS,
    PairState,
    method_terms,
    paired_differences,
    ties,
)
from camavg_core.result import METRICS
from camavg_core.sign_flip import sign_flip_interval, sign_flip_test
from camavg_core.stats import (
    BOOTSTRAP_BCA,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    HALL_T,
    _scipy_stats,
    approximate_notes,
    as_percent,
    bootstrap_mean_intervals,
    check_level,
    hall_t_interval,
    hall_t_test,
    power_sums,
)

__all__ = [
    "DEFAULT_MARGIN", "FLOAT32_EPS", "TIE_ULPS", "Comparison", "PairState", "compare", "mcnemar_p_value",
    "ties", "wilcoxon_p_value",
]
SIGN_FLIP = "sign_flip"

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
    """Method a against method b on the same samples, per metric.

    Attributes:
        difference: ``{"average_drop": a - b, ...}`` in percentage points.
        ci: ``{"average_drop": (low, high), ...}``, the paired interval of each difference at
            ``level``, clipped to [-100, 100].
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
        margin: the margin of ``better``, in percentage points.
    """

    difference: dict[str, float]
    ci: dict[str, tuple[float, float]]
    p_value: dict[str, float]
    n: int
    level: float = 0.95
    names: tuple[str, str] = ("a", "b")
    skipped: int = 0
    test: dict[str, str] = dataclasses.field(default_factory=lambda: dict.fromkeys(METRICS, SIGN_FLIP))
    dual: dict[str, bool] = dataclasses.field(default_factory=lambda: dict.fromkeys(METRICS, True))
    no_difference: dict[str, bool] = dataclasses.field(default_factory=lambda: dict.fromkeys(METRICS, False))
    ci_method: str = SIGN_FLIP
    notes: tuple[str, ...] = ()
    better: dict[str, str | None] = dataclasses.field(default_factory=lambda: dict.fromkeys(METRICS))
    margin: float = DEFAULT_MARGIN

    def summary(self) -> str:
        """One line: every metric's difference, interval and p-value (and its test)."""
        parts = []
        for name in METRICS:
            if self.no_difference.get(name, False):
                parts.append(f"{name} no difference (p=1)")
                continue
            low, high = self.ci[name]
            test = "" if self.test.get(name, SIGN_FLIP) == SIGN_FLIP else f" ({self.test[name]})"
            better = self.better.get(name)
            parts.append(
                f"{name} {self.difference[name]:+.2f} pp [{low:+.2f}, {high:+.2f}] "
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
        }

    def __str__(self) -> str:
        return self.summary()


def format_p(p_value: float) -> str:
    """``=0.0312``, or ``< 1e-300`` where the p-value underflowed to 0.

    >>> format_p(0.03123), format_p(0.0)
    ('=0.0312', '< 1e-300')
    """
    return "< 1e-300" if p_value == 0.0 else f"={p_value:.3g}"


def check_margin(margin: Any) -> float:
    """``margin`` as a float >= 0 (percentage points)."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(margin)) or margin < 0:
        raise ValueError(
            f"margin must be a number of percentage points >= 0 (0.5 by default; 0 names the better "
            f"method on significance alone), got {margin!r}."
        )
    return float(margin)


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


def check_test(test: Any) -> dict[str, str]:
    """``test`` as ``{metric: name}``: a name for every metric where it applies, or a dict.

    ``"wilcoxon"`` applies to drop and gain and ``"mcnemar"`` to increase; other metrics keep
    the default, ``"sign_flip"``. Both rank tests together: ``test="wilcoxon"`` gives McNemar
    for increase too.
    """
    if isinstance(test, dict):
        unknown = set(test) - set(METRICS)
        if unknown:
            raise ValueError(f"test names unknown metrics {sorted(unknown)}; use {list(METRICS)}.")
        chosen = {**dict.fromkeys(METRICS, SIGN_FLIP), **test}
    elif test in DUAL_TESTS:
        chosen = dict.fromkeys(METRICS, test)
    elif test in TESTS:
        rank = {"average_drop": "wilcoxon", "average_increase": "mcnemar", "average_gain": "wilcoxon"}
        chosen = {m: (SIGN_FLIP if test == "mcnemar" and m != "average_increase" else rank[m]) for m in METRICS}
    else:
        raise ValueError(f"test must be one of {TESTS} or a dict {{metric: test}}, got {test!r}.")
    for metric, name in chosen.items():
        allowed = DUAL_TESTS + (("mcnemar",) if metric == "average_increase" else ("wilcoxon",))
        if name not in allowed:
            raise ValueError(f"test {name!r} does not apply to {metric}; use one of {allowed}.")
    return chosen


def compare(
    y_c: Any,
    o_c_a: Any,
    o_c_b: Any,
    *,
    level: float = 0.95,
    names: tuple[str, str] = ("a", "b"),
    nan_policy: str = "raise",
    test: Any = SIGN_FLIP,
    ci_method: str = "default",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: Any = DEFAULT_SEED,
    margin: float = DEFAULT_MARGIN,
) -> Comparison:
    """Compare two CAM methods, a and b, on the same samples.

    Args:
        y_c: (N,) scores of the target class on the inputs, probabilities.
        o_c_a: (N,) scores on the inputs masked by method a's CAMs.
        o_c_b: (N,) scores on the inputs masked by method b's CAMs, same samples and order.
        level: confidence level of the intervals; ``better`` tests at ``1 - level``.
        names: the two methods' names, for the summary and ``better``.
        nan_policy: ``'raise'`` (default), or ``'omit'`` to leave out every sample with a
            non-finite score in y_c, o_c_a or o_c_b.
        test: ``'sign_flip'`` (default, dual to the interval), ``'t'`` (Hall's t from sums,
            dual to its interval), ``'wilcoxon'`` (drop and gain; McNemar for increase),
            ``'mcnemar'`` (increase only), or ``{metric: test}``.
        ci_method: ``'default'`` (the interval dual to the test; the sign-flip one for the
            rank tests) or ``'bootstrap'``: a seeded BCa bootstrap (``scipy.stats.bootstrap``)
            of the mean paired difference, the three metrics over the same resampled samples;
            its interval is then not dual to any p-value (``dual`` is all False).
        n_resamples, seed: of the bootstrap, when asked for.
        margin: in percentage points (default 0.5): ``better`` names a method only when the
            whole interval lies beyond it.

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
    level = check_level(level)
    tests = check_test(test)
    margin = check_margin(margin)
    if ci_method not in ("default", "bootstrap"):
        raise ValueError(f"ci_method must be 'default' or 'bootstrap', got {ci_method!r}.")
    y, o_a = _checked_vectors(y_c, o_c_a, nan_policy, names=("y_c", "o_c_a"))
    o_b = validation.as_score_vector(_to_numpy(o_c_b), "o_c_b")
    validation.check_pair(y, o_b, ("y_c", "o_c_b"))
    validation.check_finite(o_b, "o_c_b", nan_policy)
    for values, argument in ((y, "y_c"), (o_a, "o_c_a"), (o_b, "o_c_b")):
        validation.check_probabilities(values, "Average Drop and Average Gain", upper=True, argument=argument)
    valid = np.isfinite(y) & np.isfinite(o_a) & np.isfinite(o_b)
    n = int(np.count_nonzero(valid))
    if n == 0:
        raise ValueError("Every sample was skipped as non-finite: there is nothing to compare.")
    y, o_a, o_b = (v[valid].astype(np.float64) for v in (y, o_a, o_b))
    differences, (a_increase, b_increase) = paired_differences(y, o_a, o_b)
    terms_a, terms_b = method_terms(y, o_a, NumpyBackend()), method_terms(y, o_b, NumpyBackend())
    difference, ci, p_value, no_difference, dual, nonzero = {}, {}, {}, {}, {}, {}
    for metric in METRICS:
        d = differences[metric]
        # the estimate is the results' difference: no tie rule touches it
        difference[metric] = 100.0 * (float(terms_a[metric].mean()) - float(terms_b[metric].mean()))
        nonzero[metric] = int(np.count_nonzero(d))
        no_difference[metric] = nonzero[metric] == 0
        dual[metric] = tests[metric] in DUAL_TESTS and ci_method == "default"
        if no_difference[metric]:
            ci[metric], p_value[metric] = (0.0, 0.0), 1.0
            continue
        if tests[metric] == "t":
            sums = power_sums(d)
            p_value[metric] = hall_t_test(*sums)
            ci[metric] = as_percent(hall_t_interval(*sums, level=level), -100.0, 100.0)
            continue
        flip_p = sign_flip_test(d)
        ci[metric] = as_percent(sign_flip_interval(d, level=level, p_at_zero=flip_p), -100.0, 100.0)
        if tests[metric] == "wilcoxon":
            p_value[metric] = wilcoxon_p_value(d)
        elif tests[metric] == "mcnemar":
            p_value[metric] = mcnemar_p_value(a_increase, b_increase)
        else:
            p_value[metric] = flip_p
    if ci_method == "bootstrap":
        columns = np.stack([differences[m] for m in METRICS], axis=1)
        bounds = bootstrap_mean_intervals(columns, level=level, n_resamples=n_resamples, seed=seed)
        ci = {
            m: ci[m] if no_difference[m] else as_percent(bounds[j], -100.0, 100.0)
            for j, m in enumerate(METRICS)
        }
    pair = (str(names[0]), str(names[1]))
    better = {
        m: better_method(m, *ci[m], p_value[m], alpha=1.0 - level, margin=margin, names=pair) for m in METRICS
    }
    hall_only = all(name == "t" for name in tests.values())
    return Comparison(
        difference=difference, ci=ci, p_value=p_value, n=n, level=level, names=pair,
        skipped=int(valid.size - n), test=tests, dual=dual, no_difference=no_difference,
        ci_method=BOOTSTRAP_BCA if ci_method == "bootstrap" else (HALL_T if hall_only else SIGN_FLIP),
        notes=approximate_notes(n, nonzero), better=better, margin=margin,
    )


# ``import camavg_core.compare`` finds the function ``compare`` (the package exports it under the
# module's name), so the documented constants are reachable from it too.
compare.TIE_ULPS = TIE_ULPS
compare.FLOAT32_EPS = FLOAT32_EPS
compare.DEFAULT_MARGIN = DEFAULT_MARGIN
