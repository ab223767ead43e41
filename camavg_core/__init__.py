"""camavg_core: CAM faithfulness metrics (Average Drop, Increase and Gain) on plain arrays.

Imports NumPy only (SciPy lazily, inside the statistics functions). Framework backends (TensorFlow, JAX) are loaded when an array of theirs is
seen and the framework is already imported.
"""

from camavg_core.backends import Backend, NumpyBackend, get_backend, resolve_backend
from camavg_core.compare import (
    DEFAULT_MARGIN,
    TIE_ULPS,
    Comparison,
    ComparisonTable,
    PairState,
    compare,
    compare_methods,
    holm,
    smallest_sign_flip_p,
    ties,
)
from camavg_core.masking import apply_cams, mask_inputs
from camavg_core.metrics import (
    AVERAGES,
    EPSILON,
    METRICS,
    Metric,
    avg_drop,
    avg_gain,
    avg_increase,
    drop_terms,
    gain_terms,
    increase_terms,
)
from camavg_core.state import MetricState, Result, summarize
from camavg_core.stats import (
    bootstrap_mean_intervals,
    hall_t_interval,
    hall_t_test,
    sign_flip_interval,
    sign_flip_test,
    t_interval,
    wilson_interval,
)
from camavg_core.validation import RoadNoiseWarning

#: the metric descriptions by name (the former ``METRIC_INFO``: title, unit, direction)
METRIC_INFO = METRICS

__all__ = [
    "AVERAGES",
    "DEFAULT_MARGIN",
    "EPSILON",
    "METRICS",
    "METRIC_INFO",
    "TIE_ULPS",
    "Backend",
    "Comparison",
    "ComparisonTable",
    "Metric",
    "MetricState",
    "PairState",
    "NumpyBackend",
    "Result",
    "RoadNoiseWarning",
    "apply_cams",
    "avg_drop",
    "avg_gain",
    "avg_increase",
    "bootstrap_mean_intervals",
    "compare",
    "compare_methods",
    "drop_terms",
    "gain_terms",
    "get_backend",
    "hall_t_interval",
    "hall_t_test",
    "holm",
    "increase_terms",
    "mask_inputs",
    "resolve_backend",
    "sign_flip_interval",
    "sign_flip_test",
    "smallest_sign_flip_p",
    "summarize",
    "t_interval",
    "ties",
    "wilson_interval",
]

__version__ = "0.1.0"
