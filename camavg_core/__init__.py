"""camavg_core: Average Drop, Average Increase and Average Gain on plain arrays.

Imports NumPy only (SciPy lazily, inside the statistics functions). Framework backends (TensorFlow, JAX) are loaded when an array of theirs is
seen and the framework is already imported.
"""

from camavg_core.backends import Backend, NumpyBackend, get_backend, resolve_backend
from camavg_core.compare import DEFAULT_MARGIN, TIE_ULPS, Comparison, compare
from camavg_core.equations import (
    EPSILON,
    avg_drop,
    avg_gain,
    avg_increase,
    drop_terms,
    gain_terms,
    increase_terms,
)
from camavg_core.masking import apply_cams, mask_inputs
from camavg_core.result import METRICS, Result
from camavg_core.state import MetricState
from camavg_core.multiple import ComparisonTable, compare_methods, holm
from camavg_core.metric_info import METRIC_INFO
from camavg_core.pair_state import PairState, ties
from camavg_core.sign_flip import sign_flip_interval, sign_flip_test
from camavg_core.stats import (
    bootstrap_mean_intervals,
    hall_t_interval,
    hall_t_test,
    t_interval,
    wilson_interval,
)
from camavg_core.summary import summarize

__all__ = [
    "DEFAULT_MARGIN",
    "EPSILON",
    "METRICS",
    "METRIC_INFO",
    "TIE_ULPS",
    "Backend",
    "Comparison",
    "ComparisonTable",
    "MetricState",
    "PairState",
    "NumpyBackend",
    "Result",
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
    "summarize",
    "t_interval",
    "ties",
    "wilson_interval",
]

__version__ = "0.1.0"
