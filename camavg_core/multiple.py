r"""Many CAM methods at once: every pair (or each against a baseline), p-values adjusted.

:func:`compare_methods` runs :func:`~camavg_core.compare.compare` on each pair and adjusts the
p-values of each metric over the pairs (Holm's step-down by default), so that the chance of any
false "differs" among the pairs of one metric stays at most ``alpha``. Each row names the
``better`` method only when its adjusted p-value is below ``1 - level`` **and** its interval lies
beyond ``margin`` points on its side: significance is not size.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np

from camavg_core.compare import DEFAULT_MARGIN, SIGN_FLIP, Comparison, check_margin, compare, format_p
from camavg_core.metric_info import better_method
from camavg_core.result import METRICS
from camavg_core.stats import check_level

ADJUSTMENTS = ("holm", "none")


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
    #: margin on its side (:func:`camavg_core.metric_info.better_method`)
    better: str | None = None
    margin: float = DEFAULT_MARGIN

    def to_dict(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True, eq=False)
class ComparisonTable:
    """Every comparison of :func:`compare_methods`, one row per pair and metric.

    Attributes:
        rows: the :class:`ComparisonRow` list, pairs in order, metrics in ``METRICS`` order.
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
            raise ValueError(f"alpha must lie strictly between 0 and 1 (0.05 is usual), got {alpha!r}.")
        return [row for row in self.rows if row.p_adjusted < alpha]

    def __str__(self) -> str:
        header = (
            f"{'a':>14} {'b':>14} {'metric':>17} {'diff pp':>8} "
            f"{f'{100 * self.level:g}% CI':>18} {'p':>9} {'p ' + self.adjust:>9} {'better':>14}  test"
        )
        lines = [header]
        for row in self.rows:
            lines.append(
                f"{row.a:>14} {row.b:>14} {row.metric:>17} {row.difference:+8.2f} "
                f"{f'[{row.low:+.2f}, {row.high:+.2f}]':>18} {_p_cell(row.p_value)} "
                f"{_p_cell(row.p_adjusted)} {row.better or '-':>14}  {row.test}"
            )
        return "\n".join(lines)


def _p_cell(p_value: float) -> str:
    return f"{p_value:9.3g}" if p_value > 0.0 else f"{format_p(p_value):>9}"


def _pairs(names: list[str], baseline: str | None) -> list[tuple[str, str]]:
    if baseline is None:
        return list(itertools.combinations(names, 2))
    return [(name, baseline) for name in names if name != baseline]


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
    margin: float = DEFAULT_MARGIN,
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
        margin: percentage points (default 0.5): a row names the ``better`` method only when its
            adjusted p-value is below ``1 - level`` and its interval lies beyond the margin.

    >>> y = [0.9, 0.8, 0.7, 0.6]
    >>> table = compare_methods(y, {"a": [0.1, 0.2, 0.3, 0.2], "b": y, "c": y}, baseline="b")
    >>> [(row.a, row.b, row.metric) for row in table.rows][:2]
    [('a', 'b', 'average_drop'), ('a', 'b', 'average_increase')]
    >>> table.rows[0].better is None  # four samples: the smallest sign-flip p is 2 / 2**4
    True
    """
    if not isinstance(masked_scores, dict) or len(masked_scores) < 2:
        raise ValueError(
            f"masked_scores must be a dict {{name: o_c}} of at least two methods, got "
            f"{type(masked_scores).__name__} of {len(masked_scores) if hasattr(masked_scores, '__len__') else '?'}."
        )
    if adjust not in ADJUSTMENTS:
        raise ValueError(f"adjust must be one of {ADJUSTMENTS}, got {adjust!r}.")
    margin = check_margin(margin)
    names = [str(name) for name in masked_scores]
    if methods is not None:
        unknown = [name for name in methods if name not in masked_scores]
        if unknown:
            raise ValueError(f"methods names {unknown}, not in masked_scores ({names}).")
        names = [name for name in names if name in set(methods) or name == baseline]
    if baseline is not None and baseline not in masked_scores:
        raise ValueError(f"baseline={baseline!r} is not in masked_scores ({names}).")
    pairs = _pairs(names, baseline)
    if not pairs:
        raise ValueError(f"No pair of methods to compare among {names}.")
    comparisons = {
        (a, b): compare(
            y_c, masked_scores[a], masked_scores[b], level=level, names=(a, b),
            nan_policy=nan_policy, test=test, ci_method=ci_method, margin=margin,
        )
        for a, b in pairs
    }
    return comparison_table(comparisons, level=level, adjust=adjust, margin=margin)


def comparison_table(comparisons: dict[tuple[str, str], Comparison], *, level: float = 0.95, adjust: str = "holm",
                     margin: float = DEFAULT_MARGIN) -> ComparisonTable:
    """The table of pairwise comparisons, each metric's p-values adjusted over the pairs, and
    each row's ``better`` decided on the adjusted p-value and the margin.

    ``comparisons`` maps ``(a, b)`` to a :class:`~camavg_core.compare.Comparison`, computed
    in memory (:func:`compare_methods`) or from sums (:meth:`PairState.result`).
    """
    if adjust not in ADJUSTMENTS:
        raise ValueError(f"adjust must be one of {ADJUSTMENTS}, got {adjust!r}.")
    level, margin = check_level(level), check_margin(margin)
    pairs = list(comparisons)
    adjusted = {}
    for metric in METRICS:
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
                                 margin=margin, names=(a, b)),
            margin=margin,
        )
        for (a, b), comparison in comparisons.items()
        for metric in METRICS
    ]
    return ComparisonTable(rows=rows, comparisons=comparisons, level=level, adjust=adjust, margin=margin)
