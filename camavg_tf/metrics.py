r"""Average Drop, Average Increase and Average Gain (and any described metric) as Keras metrics.

A Keras metric here *is* a :class:`~camavg_core.state.MetricState`: one float64 variable per field
of the state (``n``, ``skipped``, each metric's sums), made with ``aggregation="sum"``, and
updated by the state's own pure update (:meth:`MetricState.add`). Under a ``tf.distribute``
strategy every replica adds its own samples to its own copy, and reading the result in
cross-replica context sums the copies, which is exact for any split of the data: the one
reduction of camavg (the JAX and host paths sum the same fields, :meth:`MetricState.merge`).

.. math::

    \text{Average Drop} = \frac{100}{n} \sum_i \frac{\max(0, Y_i - O_i)}{Y_i + \epsilon}, \quad
    \text{Average Increase} = \frac{100}{n} \sum_i [Y_i < O_i], \quad
    \text{Average Gain} = \frac{100}{n} \sum_i \frac{\max(0, O_i - Y_i)}{1 - Y_i + \epsilon}

The per-sample terms are the descriptions' (:mod:`camavg_core.metrics`) run on the TensorFlow
backend, so the numbers are the ones every other camavg path gives.

Like ``keras.metrics.Mean``, ``result()`` is 0.0 before any sample, ``count`` holds the
samples seen, and ``reset_state()`` starts over. The metrics keep the sums of powers 1-3 of the
terms, so :meth:`~StateMetric.interval` is the default interval that ``summarize`` and a
stream give for the same samples (see :mod:`camavg_core.stats`).

>>> import numpy as np
>>> metric = AverageDrop()
>>> float(metric.result()), int(metric.count)
(0.0, 0)
>>> metric.update_state(np.array([0.8, 0.5]), np.array([0.2, 0.6]))  # (0.6 / 0.8 + 0) / 2
>>> round(float(metric.result()), 4), int(metric.count)
(37.5, 2)
>>> metric.interval()  # two samples: approximate, clipped to the range of the metric
(0.0, 100.0)
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np  # noqa: F401 - the doctests' namespace
import tensorflow as tf

from camavg_core import validation
from camavg_core.metrics import (
    AVERAGE_DROP,
    AVERAGE_GAIN,
    AVERAGE_INCREASE,
    resolve_metrics,
    score_requirement,
)
from camavg_core.state import MetricState
from camavg_tf.backend import TensorFlowBackend

_BACKEND = TensorFlowBackend()
#: every sum is kept in float64: counts stay exact to 2**53 samples and sums do not round
_SUM_DTYPE = "float64"


def _score_tensor(values: Any, argument: str) -> tf.Tensor:
    """One argument as a float64 tensor, checked with :mod:`camavg_core.validation`'s checks:
    Python and NumPy values on the host (while tracing too: they are constants then), tensors
    by their dtype and static shape."""
    if tf.is_tensor(values) or isinstance(values, tf.Variable):
        validation.check_score_dtype(values.dtype.as_numpy_dtype, argument)
        tensor = tf.convert_to_tensor(values)
        if tensor.shape.rank is not None:
            validation.check_score_shape(tuple(tensor.shape), argument)
    else:
        tensor = tf.convert_to_tensor(validation.as_score_vector(values, argument))
    return tf.cast(tensor, _SUM_DTYPE)


def as_score_vectors(scores: Any, masked_scores: Any) -> tuple[tf.Tensor, tf.Tensor]:
    """The two score batches as float64 vectors of one score per sample, shape (B,).

    A column (B, 1), as a single-output model gives, is read as (B,). The checks and messages
    are ``avg_drop``'s (:mod:`camavg_core.validation`), naming ``scores`` and
    ``masked_scores``: what is known when the function is traced (types, dtypes, static
    shapes) raises ``TypeError``/``ValueError`` then; a batch size known only at run time is
    checked by ``tf.debugging`` inside the graph.
    """
    names = ("scores", "masked_scores")
    y_c, o_c = _score_tensor(scores, names[0]), _score_tensor(masked_scores, names[1])
    y_c, o_c = tf.reshape(y_c, [-1]), tf.reshape(o_c, [-1])
    if y_c.shape[0] is not None and o_c.shape[0] is not None and y_c.shape[0] != o_c.shape[0]:
        raise ValueError(validation.pair_length_message(y_c.shape[0], o_c.shape[0], names))
    tf.debugging.assert_equal(
        tf.size(y_c), tf.size(o_c), message=validation.pair_length_message(None, None, names)
    )
    return y_c, o_c


class StateMetric(keras.metrics.Metric):
    """The sum-only state of ``metrics`` (names or descriptions; default the three averages) as
    a Keras metric: its variables are the state's fields, summed across replicas.

    ``update_state(scores, masked_scores)`` is the door (the checks, once) and then the state's
    pure update; :meth:`state` reads the variables back as a :class:`MetricState` (outside
    ``strategy.run`` the replicas' copies are added), whose ``result()`` is the
    :class:`~camavg_core.state.Result` a stream gives for the same samples.

    >>> metric = StateMetric()
    >>> metric.update_state([0.8, 0.5], [0.2, 0.6])
    >>> [variable.name for variable in metric.variables][:4]
    ['n', 'skipped', 'drop_sum', 'drop_sq_sum']
    >>> round(metric.state().result().average_drop, 4)
    37.5
    """

    def __init__(self, metrics: Any = None, name: str = "camavg_state", dtype: Any = None, *,
                 nan_policy: str = "raise") -> None:
        validation.check_nan_policy(nan_policy)
        super().__init__(name=name, dtype=dtype)
        self.nan_policy = nan_policy
        self.described = resolve_metrics(metrics)
        self._template = MetricState.empty(self.described)
        self._fields = {
            field: self.add_variable(shape=(), initializer="zeros", dtype=_SUM_DTYPE, aggregation="sum", name=field)
            for field in self._template.fields()
        }

    def update_state(self, scores: Any, masked_scores: Any, sample_weight: Any = None) -> None:
        """Add a batch of samples.

        Args:
            scores: (B,) scores of the target class on the inputs (probabilities for drop and
                gain).
            masked_scores: (B,) scores of the same class on the inputs masked by their CAMs.
            sample_weight: must be None: the averages weight every sample alike, as the papers
                define them.

        The checks are those of ``avg_drop``/``avg_gain`` with the same messages
        (:mod:`camavg_core.validation`): a score or masked score outside the range the metrics
        need (drop: >= 0, gain: in [0, 1]), or under ``nan_policy='raise'`` a non-finite
        one, raises ``ValueError`` when run eagerly and ``tf.errors.InvalidArgumentError``
        carrying the same text inside ``tf.function``. Under ``'omit'`` a pair with a
        non-finite score is left out and counted in ``skipped``.
        """
        if sample_weight is not None:
            raise ValueError(validation.no_sample_weight(type(self).__name__, sample_weight))
        y_c, o_c = as_score_vectors(scores, masked_scores)
        self._check(y_c, o_c)
        self.add(y_c, o_c)

    def add(self, y_c: tf.Tensor, o_c: tf.Tensor) -> None:
        """The pure update, no check: (B,) float64 score vectors' state added to the variables
        (a pair with a non-finite score counted in ``skipped``). Runs inside ``tf.function``
        and ``strategy.run``."""
        batch = self._template.add(y_c, o_c, backend=_BACKEND)
        for variable, value in zip(self._fields.values(), batch.flat()):
            variable.assign_add(tf.cast(value, _SUM_DTYPE))

    def _check(self, y_c: tf.Tensor, o_c: tf.Tensor) -> None:
        """Finite scores under nan_policy='raise'; probabilities where the metrics need them."""
        needing, upper = score_requirement(self.described)
        arguments = ((y_c, "scores"), (o_c, "masked_scores"))
        if tf.executing_eagerly():
            for tensor, argument in arguments:
                values = tensor.numpy()
                validation.check_finite(values, argument, self.nan_policy)
                if needing:
                    validation.check_probabilities(values, needing, upper=upper, argument=argument)
            return
        # traced: the same conditions as graph assertions, raised as InvalidArgumentError at run
        # time with the text of camavg_core.validation (TensorFlow appends the values it saw)
        for tensor, argument in arguments:
            if self.nan_policy == "raise":
                tf.debugging.assert_all_finite(tensor, validation.nonfinite_message(argument))
            if not needing:
                continue
            finite = tf.where(tf.math.is_finite(tensor), tensor, tf.zeros_like(tensor))
            tf.debugging.assert_non_negative(
                finite, message=validation.probabilities_message(needing, argument, "a value < 0", upper=upper),
            )
            if upper:
                tf.debugging.assert_less_equal(
                    finite, tf.ones_like(finite),
                    message=validation.probabilities_message(needing, argument, "a value > 1", upper=upper),
                )

    def state(self) -> MetricState:
        """The variables as a :class:`MetricState` of Python numbers; read it outside
        ``strategy.run`` (the replicas' copies are added then)."""
        return self._template.from_flat([float(tf.convert_to_tensor(v)) for v in self._fields.values()])

    def result(self) -> dict:
        """``{metric: value}`` in each metric's unit; 0.0 before any sample."""
        return {m.name: self._value(m) for m in self.described}

    def _value(self, metric: Any) -> tf.Tensor:
        total = self._fields[self._template.fields()[2 + self._offset(metric)]]
        return tf.cast(metric.scale * tf.math.divide_no_nan(total, self._fields["n"]), self.dtype)

    def _offset(self, metric: Any) -> int:
        """Where ``metric``'s first sum sits among the fields after ``n`` and ``skipped``."""
        names = self._template.fields()[2:]
        prefix = metric.name[len("average_"):] if metric.name.startswith("average_") else metric.name
        return next(i for i, field in enumerate(names) if field.startswith(prefix + "_"))

    @property
    def count(self) -> tf.Tensor:
        """Samples that entered the averages (non-finite ones skipped under ``'omit'`` are not
        counted), an int64 scalar; read outside ``strategy.run`` it sums the replicas."""
        return tf.cast(tf.convert_to_tensor(self._fields["n"]), tf.int64)

    @property
    def skipped(self) -> tf.Tensor:
        """Samples left out as non-finite under ``'omit'``, a float64 scalar."""
        return tf.convert_to_tensor(self._fields["skipped"])

    def reset_state(self) -> None:
        for variable in self.variables:
            variable.assign(tf.zeros_like(variable))

    def get_config(self) -> dict:
        return {**super().get_config(), "nan_policy": self.nan_policy}


class _OneMetric(StateMetric):
    """One metric's state as a Keras metric whose ``result()`` is its value (a scalar tensor),
    as ``keras.metrics.Mean``: 0.0 before any sample and after ``reset_state()``."""

    _metric = AVERAGE_DROP

    def __init__(self, name: str | None = None, dtype: Any = None, *, nan_policy: str = "raise") -> None:
        super().__init__((self._metric,), name=name or self._metric.name, dtype=dtype, nan_policy=nan_policy)

    def result(self) -> tf.Tensor:
        """The average in its unit; 0.0 before any sample has been seen (as ``keras.metrics.Mean``)."""
        return self._value(self._metric)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The default confidence interval of the average, in its unit, from the sums kept.

        The interval ``MetricState.result().ci`` and ``summarize`` give for the same samples:
        Hall's skewness-corrected t interval for drop and gain, Wilson for increase (see
        :mod:`camavg_core.stats`). Read it outside ``strategy.run`` (the replicas' sums are
        added then). Before any sample it is the whole range ``(0.0, 100.0)``.
        """
        level = validation.check_level(level)
        state = self.state()
        if state.n == 0:
            return tuple(self._metric.bounds)
        return state.result(level=level).ci[self._metric.name]

    @property
    def ci_method(self) -> str:
        """The name of :meth:`interval`'s method (``'hall_t'`` or ``'wilson'``)."""
        return self._metric.interval

    def standard_error(self) -> tf.Tensor:
        r"""The standard error of the average, in its unit: :math:`\mathrm{scale}\, s / \sqrt{n}`.

        :math:`s` is the sample standard deviation of the terms (``ddof=1``), computed from the
        sums: :math:`s^2 = (\sum t^2 - n \bar t^2) / (n - 1)` (for 0/1 terms
        :math:`\sum t^2 = \sum t`). NaN for fewer than 2 samples.
        """
        count = tf.convert_to_tensor(self._fields["n"])
        names = self._template.fields()
        first = 2 + self._offset(self._metric)
        total = self._fields[names[first]]
        squares = total if self._metric.interval == "wilson" else self._fields[names[first + 1]]
        mean = total / count
        variance = tf.maximum(squares - count * mean * mean, 0.0) / (count - 1.0)
        return tf.cast(self._metric.scale * tf.sqrt(variance / count), self.dtype)


class AverageDrop(_OneMetric):
    r"""Average Drop in percent: :math:`\frac{100}{n}\sum_i \max(0, Y_i - O_i) / (Y_i + \epsilon)`.

    ``update_state(scores, masked_scores)`` takes the (B,) target-class probabilities on the
    inputs and on the masked inputs. Use it in a custom evaluation loop, under a
    ``tf.distribute`` strategy too: create it inside ``strategy.scope()``, call
    ``update_state`` inside ``strategy.run`` and ``result()`` outside it.

    >>> metric = AverageDrop()
    >>> metric.update_state([0.8, 0.5], [0.2, 0.6])
    >>> metric.update_state([0.5], [0.25])  # drop 0.25 / 0.5 = 0.5
    >>> round(float(metric.result()), 4)  # 100 * (0.75 + 0 + 0.5) / 3
    41.6667
    """

    _metric = AVERAGE_DROP

    def __init__(self, name: str = "average_drop", dtype: Any = None, *, nan_policy: str = "raise") -> None:
        super().__init__(name=name, dtype=dtype, nan_policy=nan_policy)


class AverageIncrease(_OneMetric):
    r"""Average Increase in percent: :math:`\frac{100}{n}\sum_i [Y_i < O_i]`.

    Defined for any score, logits included.

    >>> metric = AverageIncrease()
    >>> metric.update_state([0.8, 0.5, 0.5, -2.0], [0.2, 0.6, 0.5, 1.0])  # 2 of 4 increase
    >>> float(metric.result())
    50.0
    """

    _metric = AVERAGE_INCREASE

    def __init__(self, name: str = "average_increase", dtype: Any = None, *, nan_policy: str = "raise") -> None:
        super().__init__(name=name, dtype=dtype, nan_policy=nan_policy)


class AverageGain(_OneMetric):
    r"""Average Gain in percent: :math:`\frac{100}{n}\sum_i \max(0, O_i - Y_i) / (1 - Y_i + \epsilon)`.

    >>> metric = AverageGain()
    >>> metric.update_state([0.8, 0.5], [0.9, 0.4])  # (0.1 / 0.2 + 0) / 2
    >>> round(float(metric.result()), 4)
    25.0
    """

    _metric = AVERAGE_GAIN

    def __init__(self, name: str = "average_gain", dtype: Any = None, *, nan_policy: str = "raise") -> None:
        super().__init__(name=name, dtype=dtype, nan_policy=nan_policy)
