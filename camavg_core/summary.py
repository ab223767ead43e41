"""``summarize``: the one place that turns two score vectors into a :class:`Result`.

Every adapter's ``evaluate`` ends here, so the numbers and checks are the same everywhere.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from camavg_core import validation
from camavg_core.equations import _checked_vectors, drop_terms, gain_terms
from camavg_core.result import Result
from camavg_core.state import MetricState
from camavg_core.stats import (
    BOOTSTRAP_BCA,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    as_percent,
    bootstrap_mean_intervals,
)

CI_METHODS = ("default", "bootstrap")


def summarize(
    y_c: Any,
    o_c: Any,
    *,
    nan_policy: str = "raise",
    level: float = 0.95,
    ci_method: str = "default",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: Any = DEFAULT_SEED,
) -> Result:
    """Average Drop, Increase and Gain of one CAM set, with its score vectors.

    The numbers and the default intervals come from :class:`MetricState`, so a stream, a
    merge of splits or a distributed run over the same samples gives the same result.

    Args:
        y_c: (N,) scores of the target class on the inputs, probabilities.
        o_c: (N,) scores of the same class on the inputs masked by their CAMs.
        nan_policy: ``'raise'`` (default) names the first non-finite score; ``'omit'`` leaves
            such samples out of the averages and counts them in ``skipped``.
        level: confidence level of the intervals in ``result.ci``.
        ci_method: ``'default'``: the skewness-corrected t interval (Hall) for drop and gain,
            Wilson for increase (``result.ci_method`` names them); ``'bootstrap'``: a seeded
            BCa bootstrap (``scipy.stats.bootstrap``) for drop and gain instead.
        n_resamples, seed: of the bootstrap, when asked for.

    >>> result = summarize([0.8, 0.5, 0.5, 0.1], [0.2, 0.6, 0.5, 0.3])
    >>> round(result.average_drop, 4), result.average_increase, result.n
    (18.75, 50.0, 4)
    >>> result.ci_method["average_drop"], result.approximate  # n = 4 < 30
    ('hall_t', True)
    """
    if ci_method not in CI_METHODS:
        raise ValueError(f"ci_method must be one of {CI_METHODS}, got {ci_method!r}.")
    y, o = _checked_vectors(y_c, o_c, nan_policy)
    validation.check_pair_probabilities(y, o)
    state = MetricState.empty().update(y, o, nan_policy="omit", backend="numpy")
    result = state.result(level=level)
    vectors = {"y_c": np.array(y, dtype=np.float64), "o_c": np.array(o, dtype=np.float64)}
    if ci_method == "default":
        return dataclasses.replace(result, **vectors)
    valid = np.isfinite(y) & np.isfinite(o)
    y_valid, o_valid = y[valid].astype(np.float64), o[valid].astype(np.float64)
    columns = np.stack(
        [drop_terms(y_valid, o_valid, backend="numpy"), gain_terms(y_valid, o_valid, backend="numpy")],
        axis=1,
    )
    bounds = bootstrap_mean_intervals(columns, level=level, n_resamples=n_resamples, seed=seed)
    ci = {**result.ci, "average_drop": as_percent(bounds[0]), "average_gain": as_percent(bounds[1])}
    methods = {**result.ci_method, "average_drop": BOOTSTRAP_BCA, "average_gain": BOOTSTRAP_BCA}
    return dataclasses.replace(result, ci=ci, ci_method=methods, **vectors)
