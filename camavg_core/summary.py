"""``summarize``: the one place that turns two score vectors into a :class:`Result`.

Every adapter's ``evaluate`` ends here, so the numbers and checks are the same everywhere.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from camavg_core import validation
from camavg_core.equations import _checked_vectors, drop_terms, gain_terms, increase_terms
from camavg_core.result import Result
from camavg_core.state import MetricState
from camavg_core.stats import intervals_from_terms


def summarize(
    y_c: Any,
    o_c: Any,
    *,
    nan_policy: str = "raise",
    level: float = 0.95,
) -> Result:
    """Average Drop, Increase and Gain of one CAM set, with its score vectors.

    Args:
        y_c: (N,) scores of the target class on the inputs, probabilities.
        o_c: (N,) scores of the same class on the inputs masked by their CAMs.
        nan_policy: ``'raise'`` (default) names the first non-finite score; ``'omit'`` leaves
            such samples out of the averages and counts them in ``skipped``.
        level: confidence level of the intervals in ``result.ci``: a seeded BCa bootstrap
            (``stats.DEFAULT_RESAMPLES`` resamples, ``stats.DEFAULT_SEED``) for drop and gain,
            the Wilson score interval for increase.

    >>> result = summarize([0.8, 0.5, 0.5, 0.1], [0.2, 0.6, 0.5, 0.3])
    >>> round(result.average_drop, 4), result.average_increase, result.n
    (18.75, 50.0, 4)
    """
    y, o = _checked_vectors(y_c, o_c, nan_policy)
    validation.check_probabilities(y, "Average Drop and Average Gain", upper=True)
    validation.check_probabilities(o, "Average Drop and Average Gain", upper=True, argument="O_c")
    state = MetricState.empty().update(y, o, nan_policy="omit", backend="numpy")
    result = state.result(level=level)
    valid = np.isfinite(y) & np.isfinite(o)
    y_valid, o_valid = y[valid].astype(np.float64), o[valid].astype(np.float64)
    ci = intervals_from_terms(
        drop_terms(y_valid, o_valid, backend="numpy"),
        gain_terms(y_valid, o_valid, backend="numpy"),
        increase_terms(y_valid, o_valid, backend="numpy"),
        level=level,
    )
    return dataclasses.replace(
        result, y_c=np.array(y, dtype=np.float64), o_c=np.array(o, dtype=np.float64), ci=ci
    )
