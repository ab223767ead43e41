"""camavg_tf: Average Drop, Average Increase and Average Gain for Keras models.

The TensorFlow backend, the ``AveragesCam`` bridge for Keras models and tf-keras-vis score
functions, and the ``camavg`` command line.
"""

from camavg_core import Result, avg_drop, avg_gain, avg_increase, summarize
from camavg_tf.averages import AveragesCam

__all__ = ["AveragesCam", "Result", "avg_drop", "avg_gain", "avg_increase", "summarize"]
