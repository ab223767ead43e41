"""camavg_tf: Average Drop, Average Increase and Average Gain for Keras models.

The TensorFlow backend, the ``AveragesCam`` bridge for Keras models and tf-keras-vis score
functions, Keras metric classes, streaming over ``tf.data``, and the ``camavg`` command line.

TensorFlow is imported when ``AveragesCam`` (or another TensorFlow name) is first used, not when
the package is, so ``camavg --help`` and argument errors answer at once.
"""

from importlib import import_module
from typing import Any

from camavg_core import Result, avg_drop, avg_gain, avg_increase, summarize

_LAZY = {
    "AveragesCam": "camavg_tf.averages",
    "evaluate_dataset": "camavg_tf.streaming",
    "metrics": "camavg_tf.metrics",
}

__all__ = ["AveragesCam", "Result", "avg_drop", "avg_gain", "avg_increase", "evaluate_dataset", "summarize"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = import_module(_LAZY[name])
        return module if name == "metrics" else getattr(module, name)
    raise AttributeError(f"module 'camavg_tf' has no attribute {name!r}")
