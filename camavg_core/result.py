"""The result every ``evaluate`` returns: the three averages, n, the vectors and the intervals."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np

from camavg_core import validation
from camavg_core.metrics import metric_named


@dataclasses.dataclass(frozen=True, eq=False)
class Result:
    """Each metric's value of one CAM set, in its unit (percent for the three averages).

    Attributes:
        values: ``{"average_drop": value, ...}``, by metric name, in the metrics' order.
        average_drop, average_increase, average_gain: the three averages, read from ``values``.
        n: samples that entered the averages.
        skipped: samples left out as non-finite under ``nan_policy='omit'``.
        y_c, o_c: the (N,) score vectors on the inputs and on the masked inputs (all N
            samples, skipped ones included), or None when a stream kept no vectors.
        ci: ``{"average_drop": (low, high), ...}`` at ``level``, or None.
        level: the confidence level of ``ci``.
        ci_method: ``{"average_drop": "hall_t", ...}``, the interval method of each metric
            (see :mod:`camavg_core.stats`), or None without intervals.
        notes: why an interval is only approximate (n < 30, few non-zero terms); empty when
            every interval is within its calibrated conditions.
        counts: ``{metric: samples in its value}`` where some metric leaves samples out
            (MuFidelity's undefined correlations), else None: ``n`` then counts the samples
            with finite scores, and each such metric's value and interval use its own count.
        undefined: ``{metric: samples left out because the term is undefined}`` for the
            metrics that leave samples out, else None.
        terms: ``{metric: (N,) per-sample terms}`` (NaN where left out) for the metrics beside
            the averages, what comparisons pair; None otherwise.
        curves: ``{metric: tuple of arrays}``, what ``return_vector`` gives after the terms.
        paired: ``{metric: (rows, N) scores}`` that a comparison's tie rule reads (the
            perturbation's step scores, and a metric's array context, such as MuFidelity's CAM
            sums, below them).

    >>> result = Result({"average_drop": 12.5, "average_gain": 3.0}, n=4)
    >>> result.average_drop, list(result.values)
    (12.5, ['average_drop', 'average_gain'])
    """

    values: dict[str, float]
    n: int
    skipped: int = 0
    y_c: np.ndarray | None = None
    o_c: np.ndarray | None = None
    ci: dict[str, tuple[float, float]] | None = None
    level: float = 0.95
    ci_method: dict[str, str] | None = None
    notes: tuple[str, ...] = ()
    counts: dict[str, int] | None = None
    undefined: dict[str, int] | None = None
    terms: dict[str, np.ndarray] | None = None
    curves: dict[str, tuple] | None = None
    paired: dict[str, np.ndarray] | None = None

    def n_of(self, metric: str) -> int:
        """The samples in ``metric``'s value: ``n`` unless the metric leaves some out."""
        return int((self.counts or {}).get(metric, self.n))

    def __getattr__(self, name: str) -> Any:
        # result.average_drop and any other metric's value by its name
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(validation.no_such_metric(type(self).__name__, name, list(values or ())))

    @property
    def approximate(self) -> bool:
        """True when some interval is outside the conditions it was calibrated for."""
        return bool(self.notes)

    def to_dict(self, *, vectors: bool = True) -> dict[str, Any]:
        """Plain Python types only, ready for ``json.dumps`` (NaN-free by construction)."""
        out: dict[str, Any] = {name: float(value) for name, value in self.values.items()}
        out["n"] = int(self.n)
        out["skipped"] = int(self.skipped)
        out["level"] = float(self.level)
        out["ci"] = (
            None
            if self.ci is None
            else {name: [float(low), float(high)] for name, (low, high) in self.ci.items()}
        )
        out["ci_method"] = None if self.ci_method is None else dict(self.ci_method)
        out["notes"] = list(self.notes)
        if self.counts is not None:
            out["counts"] = {name: int(v) for name, v in self.counts.items()}
            out["undefined"] = {name: int(v) for name, v in (self.undefined or {}).items()}
        if vectors:
            out["y_c"] = None if self.y_c is None else [_json_float(v) for v in self.y_c]
            out["o_c"] = None if self.o_c is None else [_json_float(v) for v in self.o_c]
        return out

    def __str__(self) -> str:
        parts = []
        for name, value in self.values.items():
            text = f"{name} {value:.2f}{_unit_label(name)}"
            if self.ci is not None and name in self.ci:
                low, high = self.ci[name]
                text += f" [{low:.2f}, {high:.2f}]"
            parts.append(text)
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        approximate = ", approximate intervals" if self.notes else ""
        return f"{', '.join(parts)} (n={self.n}{skipped}{approximate})"

    def __repr__(self) -> str:
        return f"Result({self})"


def _unit_label(name: str) -> str:
    return metric_named(name).unit_label


def _json_float(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class MethodResults(NamedTuple):
    """Several CAM methods on the same samples: one :class:`Result` per method, by name, and
    their pairwise comparison (a :class:`~camavg_core.multiple.ComparisonTable`)."""

    results: dict
    comparisons: Any

    def __str__(self) -> str:
        width = max(len(str(name)) for name in self.results)
        lines = [f"{str(name):<{width}}  {result}" for name, result in self.results.items()]
        return "\n".join(lines) + "\n\n" + str(self.comparisons)
