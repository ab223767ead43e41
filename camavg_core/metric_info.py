"""What each metric is, said once: its title, its unit and which way is better.

Comparisons (which method is ``better``), the conclusion and the report read the direction from
here. A fuller description of each metric (its terms, its interval rule) can grow from this one.

>>> METRIC_INFO["average_drop"].higher_is_better, METRIC_INFO["average_gain"].title
(False, 'Average Gain')
"""

from __future__ import annotations

from typing import NamedTuple


class MetricInfo(NamedTuple):
    name: str
    title: str
    #: the unit of the metric and of a comparison's difference, interval and margin
    unit: str
    #: True where a higher value means a more faithful CAM
    higher_is_better: bool


METRIC_INFO = {
    "average_drop": MetricInfo("average_drop", "Average Drop", "percentage points", False),
    "average_increase": MetricInfo("average_increase", "Average Increase", "percentage points", True),
    "average_gain": MetricInfo("average_gain", "Average Gain", "percentage points", True),
}


def better_method(
    metric: str, low: float, high: float, p_value: float, *, alpha: float, margin: float, names: tuple[str, str]
) -> str | None:
    """The method of the pair (a, b) that is better on ``metric``, or None.

    A method is named only when the test is significant (``p_value < alpha``) **and** the whole
    interval of a - b lies beyond ``margin`` (in the metric's unit) on that method's side: for
    a metric where lower is better, ``high < -margin`` names a and ``low > margin`` names b.
    Significance is not size: a tiny but certain difference names no method.

    >>> better_method("average_drop", -3.0, -1.0, 1e-4, alpha=0.05, margin=0.5, names=("a", "b"))
    'a'
    >>> better_method("average_gain", 0.1, 0.4, 1e-9, alpha=0.05, margin=0.5, names=("a", "b")) is None
    True
    """
    if not p_value < alpha:
        return None
    sign = 1.0 if METRIC_INFO[metric].higher_is_better else -1.0
    # in "better" units: positive when a is better
    a_low, a_high = sorted((sign * low, sign * high))
    if a_low > margin:
        return names[0]
    if a_high < -margin:
        return names[1]
    return None
