r"""Paired comparison of two CAM methods scored on the same samples.

For each sample :math:`i` the two methods give terms :math:`a_i` and :math:`b_i` of the same
metric; the comparison is about the paired differences :math:`d_i = a_i - b_i`:

- difference: :math:`100 \cdot \bar d`, in percentage points (method a minus method b);
- interval: the skewness-corrected t interval (Hall) of :math:`\bar d`
  (:func:`camavg_core.stats.hall_t_interval`), from :math:`n, \sum d, \sum d^2, \sum d^3`;
- p-value (default ``test="t"``): the test that interval inverts, of :math:`H_0: E[d] = 0`
  (:func:`camavg_core.stats.hall_t_test`), so ``p < 1 - level`` exactly when the interval
  excludes 0. ``test="wilcoxon"`` (drop and gain) and McNemar's test (increase) are available
  by name; their p-values test other hypotheses and are not dual to the interval, which the
  result says (``Comparison.dual``).

Float noise is not a finding: two masked scores within :data:`TIE_TOLERANCE` of each other are a
tie, and the sample's three differences are set to exactly 0 before the interval and the test.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from camavg_core import validation
from camavg_core.equations import _checked_vectors, _to_numpy
from camavg_core.pair_state import TIE_TOLERANCE, PairState, paired_differences
from camavg_core.result import METRICS
from camavg_core.stats import (
    BOOTSTRAP_BCA,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    _scipy_stats,
    as_percent,
    bootstrap_mean_intervals,
    check_level,
)

__all__ = ["TIE_TOLERANCE", "Comparison", "PairState", "compare", "mcnemar_p_value", "wilcoxon_p_value"]

#: what each test tests, for ``Comparison.test``
TEST_DESCRIPTIONS = {
    "t": "skewness-corrected paired t test (Hall) of mean difference 0; dual to the interval",
    "wilcoxon": "Wilcoxon signed-rank test (zeros kept, Pratt) of differences symmetric about 0; "
    "not dual to the interval",
    "mcnemar": "exact McNemar test of equal increase rates (binomial test on the discordant "
    "pairs); not dual to the interval",
}
TESTS = ("t", "wilcoxon", "mcnemar")


@dataclasses.dataclass(frozen=True, eq=False)
class Comparison:
    """Method a against method b on the same samples, per metric.

    Attributes:
        difference: ``{"average_drop": a - b, ...}`` in percentage points.
        ci: ``{"average_drop": (low, high), ...}``, the paired interval of each difference at
            ``level``, clipped to [-100, 100].
        p_value: ``{"average_drop": p, ...}``, two-sided, from the test in ``test``.
        n: samples compared. skipped: samples left out as non-finite (``nan_policy='omit'``).
        level: the confidence level of ``ci``. names: the two methods' names, a first.
        test: ``{metric: "t" | "wilcoxon" | "mcnemar"}``, the test behind each p-value
            (:data:`TEST_DESCRIPTIONS` says what each tests).
        dual: ``{metric: bool}``, True where ``p < 1 - level`` exactly when ``ci`` excludes 0.
        no_difference: ``{metric: bool}``, True where every paired difference is 0 (ties
            within :data:`TIE_TOLERANCE` included): difference 0, interval (0, 0), p = 1.
        ci_method: the interval's method (``"hall_t"``, or ``"bootstrap_bca"`` when asked). notes: why an interval is only
            approximate (n < 30, fewer than 15% non-zero differences).
    """

    difference: dict[str, float]
    ci: dict[str, tuple[float, float]]
    p_value: dict[str, float]
    n: int
    level: float = 0.95
    names: tuple[str, str] = ("a", "b")
    skipped: int = 0
    test: dict[str, str] = dataclasses.field(default_factory=lambda: dict.fromkeys(METRICS, "t"))
    dual: dict[str, bool] = dataclasses.field(default_factory=lambda: dict.fromkeys(METRICS, True))
    no_difference: dict[str, bool] = dataclasses.field(default_factory=lambda: dict.fromkeys(METRICS, False))
    ci_method: str = "hall_t"
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line: every metric's difference, interval and p-value (and its test)."""
        parts = []
        for name in METRICS:
            if self.no_difference.get(name, False):
                parts.append(f"{name} no difference (p=1)")
                continue
            low, high = self.ci[name]
            test = "" if self.test.get(name, "t") == "t" else f" ({self.test[name]})"
            parts.append(
                f"{name} {self.difference[name]:+.2f} pp [{low:+.2f}, {high:+.2f}] "
                f"p={self.p_value[name]:.3g}{test}"
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
        }

    def __str__(self) -> str:
        return self.summary()


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
    ``"t"``. Both rank tests together: ``test="wilcoxon"`` gives McNemar for increase too.
    """
    if isinstance(test, dict):
        unknown = set(test) - set(METRICS)
        if unknown:
            raise ValueError(f"test names unknown metrics {sorted(unknown)}; use {list(METRICS)}.")
        chosen = {**dict.fromkeys(METRICS, "t"), **test}
    elif test in TESTS:
        rank = {"average_drop": "wilcoxon", "average_increase": "mcnemar", "average_gain": "wilcoxon"}
        chosen = {m: ("t" if test == "t" or (test == "mcnemar" and m != "average_increase") else rank[m]) for m in METRICS}
    else:
        raise ValueError(f"test must be one of {TESTS} or a dict {{metric: test}}, got {test!r}.")
    for metric, name in chosen.items():
        allowed = ("t", "mcnemar") if metric == "average_increase" else ("t", "wilcoxon")
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
    test: Any = "t",
    ci_method: str = "default",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: Any = DEFAULT_SEED,
) -> Comparison:
    """Compare two CAM methods, a and b, on the same samples.

    Args:
        y_c: (N,) scores of the target class on the inputs, probabilities.
        o_c_a: (N,) scores on the inputs masked by method a's CAMs.
        o_c_b: (N,) scores on the inputs masked by method b's CAMs, same samples and order.
        level: confidence level of the intervals.
        names: the two methods' names, for the summary.
        nan_policy: ``'raise'`` (default), or ``'omit'`` to leave out every sample with a
            non-finite score in y_c, o_c_a or o_c_b.
        test: ``'t'`` (default, dual to the interval), ``'wilcoxon'`` (drop and gain; McNemar
            for increase), ``'mcnemar'`` (increase only), or ``{metric: test}``.
        ci_method: ``'default'`` (the Hall t interval, dual to ``test='t'``) or
            ``'bootstrap'``: a seeded BCa bootstrap (``scipy.stats.bootstrap``) of the mean
            paired difference, the three metrics over the same resampled samples; its interval
            is then not dual to any p-value (``dual`` is all False).
        n_resamples, seed: of the bootstrap, when asked for.

    >>> y = [0.9, 0.8, 0.7, 0.6, 0.9]
    >>> result = compare(y, [0.1, 0.2, 0.3, 0.2, 0.3], [0.8, 0.8, 0.7, 0.6, 0.9])
    >>> # a drops 8/9, 6/8, 4/7, 4/6, 6/9 (mean 0.70873); b only 1/9 on sample 0 (mean 0.02222)
    >>> round(result.difference["average_drop"], 2)
    68.65
    >>> result.no_difference["average_increase"], result.p_value["average_increase"]
    (True, 1.0)
    """
    level = check_level(level)
    tests = check_test(test)
    if ci_method not in ("default", "bootstrap"):
        raise ValueError(f"ci_method must be 'default' or 'bootstrap', got {ci_method!r}.")
    y, o_a = _checked_vectors(y_c, o_c_a, nan_policy, names=("y_c", "o_c_a"))
    o_b = validation.as_score_vector(_to_numpy(o_c_b), "o_c_b")
    validation.check_pair(y, o_b, ("y_c", "o_c_b"))
    validation.check_finite(o_b, "o_c_b", nan_policy)
    for values, argument in ((y, "y_c"), (o_a, "o_c_a"), (o_b, "o_c_b")):
        validation.check_probabilities(values, "Average Drop and Average Gain", upper=True, argument=argument)
    state = PairState.empty().update(y, o_a, o_b, nan_policy="omit")
    if state.n == 0:
        raise ValueError("Every sample was skipped as non-finite: there is nothing to compare.")
    result = state.result(level=level, names=names)
    if ci_method == "default" and all(name == "t" for name in tests.values()):
        return result
    valid = np.isfinite(y) & np.isfinite(o_a) & np.isfinite(o_b)
    differences, (a_increase, b_increase) = paired_differences(
        y[valid].astype(np.float64), o_a[valid].astype(np.float64), o_b[valid].astype(np.float64)
    )
    p_value, ci = dict(result.p_value), dict(result.ci)
    for metric, name in tests.items():
        if name == "wilcoxon":
            p_value[metric] = wilcoxon_p_value(differences[metric])
        elif name == "mcnemar":
            p_value[metric] = mcnemar_p_value(a_increase, b_increase)
    dual = {m: tests[m] == "t" and ci_method == "default" for m in METRICS}
    if ci_method == "bootstrap":
        columns = np.stack([differences[m] for m in METRICS], axis=1)
        bounds = bootstrap_mean_intervals(columns, level=level, n_resamples=n_resamples, seed=seed)
        ci = {
            m: ci[m] if result.no_difference[m] else as_percent(bounds[j], -100.0, 100.0)
            for j, m in enumerate(METRICS)
        }
    return dataclasses.replace(
        result, p_value=p_value, ci=ci, test=tests, dual=dual,
        ci_method=BOOTSTRAP_BCA if ci_method == "bootstrap" else result.ci_method,
    )
