"""``evaluate_dataset`` for JAX: the three metrics over any iterable of batches, in memory
independent of N, through the same engine as ``AveragesCam`` (:mod:`camavg_core.stream`).

>>> import jax.numpy as jnp, numpy as np
>>> def batches():
...     for value in (1.0, 0.5):
...         yield np.ones((2, 2, 2, 1), np.float32), np.full((2, 2, 2), value, np.float32), np.zeros(2, int)
>>> apply_fn = lambda x: jnp.concatenate([x.mean((1, 2)), 1 - x.mean((1, 2))], axis=-1)
>>> result = evaluate_dataset(apply_fn, batches())  # Y = 1; O = 1, 1, 0.5, 0.5
>>> round(result.average_drop, 4), result.n
(25.0, 4)
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from camavg_core.engine import Options
from camavg_core.state import Result
from camavg_core.stream import Checkpoint, evaluate_stream
from camavg_jax.averages import JaxAdapter


def evaluate_dataset(
    apply_fn: Callable,
    batches: Iterable,
    *,
    score: str | Callable = "categorical",
    activation: str | None = None,
    keep_vectors: bool = False,
    progress: bool = False,
    nan_policy: str = "raise",
    level: float = 0.95,
    data_format: str = "channels_last",
    normalize: bool = False,
    preprocess: Callable | None = None,
    resume: Checkpoint | None = None,
    metrics: Any = None,
) -> Result:
    """Each metric (default: Average Drop, Average Increase and Average Gain; names or
    :class:`~camavg_core.metrics.Metric` descriptions) over ``(inputs, cams, targets)`` batches.

    The arguments are those of ``camavg_tf.evaluate_dataset``, with ``apply_fn`` (as for
    ``camavg_jax.AveragesCam``) in place of the Keras model; ``batches`` is any iterable
    (a generator, a list, a ``tf.data`` or Grain iterator yielding NumPy arrays).
    """
    if not callable(apply_fn):
        raise TypeError(
            f"apply_fn must be a function from a batch to the model's outputs, got "
            f"{type(apply_fn).__name__}."
        )
    try:
        total = len(batches)
    except TypeError:
        total = None
    return evaluate_stream(
        JaxAdapter(apply_fn), batches, score=score,
        options=Options(activation, data_format, normalize, False, preprocess),
        nan_policy=nan_policy, level=level, keep_vectors=keep_vectors, progress=progress,
        resume=resume, total=total, metrics=metrics,
    )
