r"""Average Drop, Average Increase and Average Gain as Keras metrics.

Each metric keeps sums and counts only, in variables made with ``aggregation="sum"``: under a
``tf.distribute`` strategy every replica adds its own samples to its own copy, and reading the
result in cross-replica context sums the copies, which is exact for any split of the data.

.. math::

    \text{Average Drop} = \frac{100}{n} \sum_i \frac{\max(0, Y_i - O_i)}{Y_i + \epsilon}, \quad
    \text{Average Increase} = \frac{100}{n} \sum_i [Y_i < O_i], \quad
    \text{Average Gain} = \frac{100}{n} \sum_i \frac{\max(0, O_i - Y_i)}{1 - Y_i + \epsilon}

The per-sample terms come from :mod:`camavg_core.equations` run on the TensorFlow backend, so
the numbers are the ones every other camavg path gives.

>>> import numpy as np
>>> metric = AverageDrop()
>>> metric.update_state(np.array([0.8, 0.5]), np.array([0.2, 0.6]))  # (0.6 / 0.8 + 0) / 2
>>> round(float(metric.result()), 4)
37.5
"""

from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np  # noqa: F401 - the doctests' namespace
import tensorflow as tf

from camavg_core import stats, validation
from camavg_core.equations import drop_terms, gain_terms, increase_terms
from camavg_core.state import MetricState
from camavg_tf.backend import TensorFlowBackend

_BACKEND = TensorFlowBackend()
#: every sum is kept in float64: counts stay exact to 2**53 samples and sums do not round
_SUM_DTYPE = "float64"


def as_score_vectors(scores: Any, masked_scores: Any) -> tuple[tf.Tensor, tf.Tensor]:
    """The two score batches as float64 vectors of one score per sample, shape (B,).

    A column (B, 1), as a single-output model gives, is read as (B,). Shapes that are known
    when the function is traced are checked with a ``ValueError``; a batch size known only at
    run time is checked by ``tf.debugging`` inside the graph.
    """
    y_c = tf.cast(tf.convert_to_tensor(scores), _SUM_DTYPE)
    o_c = tf.cast(tf.convert_to_tensor(masked_scores), _SUM_DTYPE)
    for name, tensor in (("scores", y_c), ("masked_scores", o_c)):
        shape = tensor.shape
        is_vector = shape.rank == 1 or (shape.rank == 2 and shape[1] == 1)
        if shape.rank is not None and not is_vector:
            raise ValueError(
                f"{name} must hold one score per sample, shape (B,) or (B, 1), got shape "
                f"{tuple(shape)}. Select the target class first (e.g. with a tf-keras-vis "
                f"CategoricalScore) and pass the (B,) scores."
            )
    y_c, o_c = tf.reshape(y_c, [-1]), tf.reshape(o_c, [-1])
    if y_c.shape[0] is not None and o_c.shape[0] is not None and y_c.shape[0] != o_c.shape[0]:
        raise ValueError(
            f"scores holds {y_c.shape[0]} samples but masked_scores holds {o_c.shape[0]}: pass "
            f"both for the same samples, in the same order."
        )
    tf.debugging.assert_equal(
        tf.size(y_c), tf.size(o_c), message="scores and masked_scores hold different numbers of samples"
    )
    return y_c, o_c


def finite_terms(terms_fn: Callable, y_c: tf.Tensor, o_c: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``terms_fn(y_c, o_c)`` with 0 for every pair that holds a non-finite score, and the
    boolean mask of the finite pairs.

    >>> terms, valid = finite_terms(drop_terms, tf.constant([0.8, np.nan]), tf.constant([0.2, 0.1]))
    >>> np.round(terms.numpy(), 4).tolist(), valid.numpy().tolist()
    ([0.75, 0.0], [True, False])
    """
    valid = tf.math.is_finite(y_c) & tf.math.is_finite(o_c)
    zeros = tf.zeros_like(y_c)
    # zeros stand in for skipped pairs before the equation, so no NaN reaches a sum even as 0 * NaN
    y_safe, o_safe = tf.where(valid, y_c, zeros), tf.where(valid, o_c, zeros)
    terms = terms_fn(y_safe, o_safe, backend=_BACKEND)
    return tf.where(valid, terms, tf.zeros_like(terms)), valid


def batch_sums(y_c: tf.Tensor, o_c: tf.Tensor) -> MetricState:
    """The :class:`~camavg_core.state.MetricState` of one batch, as float64 scalar tensors.

    Runs inside ``tf.function`` and ``strategy.run`` (no Python branch on values). A pair with
    a non-finite score enters no sum and is counted in ``skipped``; whether that is allowed is
    the caller's decision (check ``skipped`` afterwards under ``nan_policy='raise'``).

    Args:
        y_c: (B,) scores on the inputs, float64.
        o_c: (B,) scores on the masked inputs, float64.

    >>> y_c = tf.constant([0.8, 0.5, np.nan], tf.float64)
    >>> state = batch_sums(y_c, tf.constant([0.2, 0.6, 0.1], tf.float64))
    >>> [round(float(value), 4) for value in state][:7]  # n, drop, drop², gain, gain², increase, skipped
    [2.0, 0.75, 0.5625, 0.2, 0.04, 1.0, 1.0]
    >>> [round(float(value), 4) for value in state][7:]  # drop³, gain³, non-zero drops and gains
    [0.4219, 0.008, 1.0, 1.0]
    """
    drop, valid = finite_terms(drop_terms, y_c, o_c)
    gain, _ = finite_terms(gain_terms, y_c, o_c)
    increase, _ = finite_terms(increase_terms, y_c, o_c)
    n_valid = tf.reduce_sum(tf.cast(valid, _SUM_DTYPE))
    return MetricState(
        n=n_valid,
        drop_sum=tf.reduce_sum(drop),
        drop_sq_sum=tf.reduce_sum(drop * drop),
        gain_sum=tf.reduce_sum(gain),
        gain_sq_sum=tf.reduce_sum(gain * gain),
        increase_count=tf.reduce_sum(increase),
        skipped=tf.cast(tf.size(y_c), _SUM_DTYPE) - n_valid,
        drop_cube_sum=tf.reduce_sum(drop * drop * drop),
        gain_cube_sum=tf.reduce_sum(gain * gain * gain),
        drop_nonzero=tf.reduce_sum(tf.cast(drop > 0.0, _SUM_DTYPE)),
        gain_nonzero=tf.reduce_sum(tf.cast(gain > 0.0, _SUM_DTYPE)),
    )


class _AverageOfTerms(keras.metrics.Metric):
    """A mean of per-sample terms, in percent, kept as sums so that replicas add up exactly.

    Like ``keras.metrics.Mean``: ``result()`` is 0.0 before any sample and after
    ``reset_state()``, and ``count`` holds the samples seen. The variables (count, sums of
    powers 1-3 of the terms, non-zero terms, skipped samples) are the ones
    :class:`~camavg_core.state.MetricState` keeps, so :meth:`interval` is the interval
    ``summarize`` and a stream give for the same samples.

    Subclasses set ``_terms`` (a ``camavg_core.equations`` ``*_terms`` function), ``_label``,
    what the scores must satisfy (``_needs_probabilities``: >= 0, ``_needs_upper_bound``: <= 1,
    both for the scores and the masked scores, as ``avg_drop``/``avg_gain`` check them) and
    ``_ci_method``.
    """

    _terms: Callable = staticmethod(drop_terms)
    _label = "Average Drop"
    _needs_probabilities = True
    _needs_upper_bound = False
    _ci_method = stats.HALL_T

    def __init__(self, name: str | None = None, dtype: Any = None, *, nan_policy: str = "raise") -> None:
        validation.check_nan_policy(nan_policy)
        super().__init__(name=name, dtype=dtype)
        self.nan_policy = nan_policy
        self._count = self._sum_variable("count")
        self.term_sum = self._sum_variable("term_sum")
        self.term_sq_sum = self._sum_variable("term_sq_sum")
        self.term_cube_sum = self._sum_variable("term_cube_sum")
        self.nonzero = self._sum_variable("nonzero")
        self.skipped = self._sum_variable("skipped")

    def _sum_variable(self, name: str) -> Any:
        return self.add_variable(
            shape=(), initializer="zeros", dtype=_SUM_DTYPE, aggregation="sum", name=name
        )

    def update_state(self, scores: Any, masked_scores: Any, sample_weight: Any = None) -> None:
        """Add a batch of samples.

        Args:
            scores: (B,) scores of the target class on the inputs (probabilities for drop and
                gain).
            masked_scores: (B,) scores of the same class on the inputs masked by their CAMs.
            sample_weight: must be None: the averages weight every sample alike, as the papers
                define them.

        The checks are those of ``avg_drop``/``avg_gain`` with the same messages
        (:mod:`camavg_core.validation`): a score or masked score outside the range the metric
        needs (drop: >= 0, gain: in [0, 1]), or under ``nan_policy='raise'`` a non-finite
        one, raises ``ValueError`` when run eagerly and ``tf.errors.InvalidArgumentError``
        carrying the same text inside ``tf.function``. Under ``'omit'`` a pair with a
        non-finite score is left out and counted in ``skipped``.
        """
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} takes no sample_weight (got {validation.describe(sample_weight)}): "
                f"the average weights every sample alike. To leave samples out, pass only the "
                f"samples you want; to count them twice, pass them twice."
            )
        y_c, o_c = as_score_vectors(scores, masked_scores)
        self._check(y_c, o_c)
        terms, valid = finite_terms(self._terms, y_c, o_c)
        n_valid = tf.reduce_sum(tf.cast(valid, _SUM_DTYPE))
        self._count.assign_add(n_valid)
        self.term_sum.assign_add(tf.reduce_sum(terms))
        self.term_sq_sum.assign_add(tf.reduce_sum(terms * terms))
        self.term_cube_sum.assign_add(tf.reduce_sum(terms * terms * terms))
        self.nonzero.assign_add(tf.reduce_sum(tf.cast(terms != 0.0, _SUM_DTYPE)))
        self.skipped.assign_add(tf.cast(tf.size(y_c), _SUM_DTYPE) - n_valid)

    def _check(self, y_c: tf.Tensor, o_c: tf.Tensor) -> None:
        """Finite scores under nan_policy='raise'; probabilities where the metric needs them."""
        arguments = ((y_c, "scores"), (o_c, "masked_scores"))
        if tf.executing_eagerly():
            for tensor, argument in arguments:
                values = tensor.numpy()
                validation.check_finite(values, argument, self.nan_policy)
                if self._needs_probabilities:
                    validation.check_probabilities(
                        values, self._label, upper=self._needs_upper_bound, argument=argument
                    )
            return
        # traced: the same conditions as graph assertions, raised as InvalidArgumentError at run
        # time with the text of camavg_core.validation (TensorFlow appends the values it saw)
        for tensor, argument in arguments:
            if self.nan_policy == "raise":
                tf.debugging.assert_all_finite(tensor, validation.nonfinite_message(argument))
            if not self._needs_probabilities:
                continue
            finite = tf.where(tf.math.is_finite(tensor), tensor, tf.zeros_like(tensor))
            upper = self._needs_upper_bound
            tf.debugging.assert_non_negative(
                finite,
                message=validation.probabilities_message(self._label, argument, "a value < 0", upper=upper),
            )
            if upper:
                tf.debugging.assert_less_equal(
                    finite,
                    tf.ones_like(finite),
                    message=validation.probabilities_message(self._label, argument, "a value > 1", upper=upper),
                )

    def result(self) -> tf.Tensor:
        """The average in percent; 0.0 before any sample has been seen (as ``keras.metrics.Mean``)."""
        return tf.cast(100.0 * tf.math.divide_no_nan(self.term_sum, self._count), self.dtype)

    @property
    def count(self) -> tf.Tensor:
        """Samples that entered the average (non-finite ones skipped under ``'omit'`` are not
        counted), an int64 scalar; read outside ``strategy.run`` it sums the replicas."""
        return tf.cast(tf.convert_to_tensor(self._count), tf.int64)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The default confidence interval of the average, in percent, from the sums kept.

        The interval ``MetricState.result().ci`` and ``summarize`` give for the same samples:
        Hall's skewness-corrected t interval for drop and gain, Wilson for increase (see
        :mod:`camavg_core.stats`). Read it outside ``strategy.run`` (the replicas' sums are
        added then). Before any sample it is the whole range ``(0.0, 100.0)``.
        """
        level = validation.check_level(level)
        # reading a sum-aggregated variable outside strategy.run adds the replicas' copies
        total, sq_total, cube_total, count = (
            float(tf.convert_to_tensor(v)) for v in (self.term_sum, self.term_sq_sum, self.term_cube_sum, self._count)
        )
        n = round(count)
        if n == 0:
            return (0.0, 100.0)
        if self._ci_method == stats.WILSON:
            return stats.as_percent(stats.wilson_interval(round(total), n, level=level))
        return stats.as_percent(stats.hall_t_interval(n, total, sq_total, cube_total, level=level))

    @property
    def ci_method(self) -> str:
        """The name of :meth:`interval`'s method (``'hall_t'`` or ``'wilson'``)."""
        return self._ci_method

    def standard_error(self) -> tf.Tensor:
        r"""The standard error of the average, in percent: :math:`100\, s / \sqrt{n}`.

        :math:`s` is the sample standard deviation of the terms (``ddof=1``), computed from the
        sums: :math:`s^2 = (\sum t^2 - n \bar t^2) / (n - 1)`. NaN for fewer than 2 samples.
        """
        count = tf.convert_to_tensor(self._count)
        mean = self.term_sum / count
        variance = tf.maximum(self.term_sq_sum - count * mean * mean, 0.0) / (count - 1.0)
        return tf.cast(100.0 * tf.sqrt(variance / count), self.dtype)

    def reset_state(self) -> None:
        for variable in self.variables:
            variable.assign(tf.zeros_like(variable))

    def get_config(self) -> dict:
        return {**super().get_config(), "nan_policy": self.nan_policy}


class AverageDrop(_AverageOfTerms):
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

    _terms = staticmethod(drop_terms)
    _label = "Average Drop"
    _needs_upper_bound = False

    def __init__(self, name: str = "average_drop", dtype: Any = None, *, nan_policy: str = "raise") -> None:
        super().__init__(name=name, dtype=dtype, nan_policy=nan_policy)


class AverageIncrease(_AverageOfTerms):
    r"""Average Increase in percent: :math:`\frac{100}{n}\sum_i [Y_i < O_i]`.

    Defined for any score, logits included.

    >>> metric = AverageIncrease()
    >>> metric.update_state([0.8, 0.5, 0.5, -2.0], [0.2, 0.6, 0.5, 1.0])  # 2 of 4 increase
    >>> float(metric.result())
    50.0
    """

    _terms = staticmethod(increase_terms)
    _label = "Average Increase"
    _needs_probabilities = False
    _ci_method = stats.WILSON

    def __init__(self, name: str = "average_increase", dtype: Any = None, *, nan_policy: str = "raise") -> None:
        super().__init__(name=name, dtype=dtype, nan_policy=nan_policy)


class AverageGain(_AverageOfTerms):
    r"""Average Gain in percent: :math:`\frac{100}{n}\sum_i \max(0, O_i - Y_i) / (1 - Y_i + \epsilon)`.

    >>> metric = AverageGain()
    >>> metric.update_state([0.8, 0.5], [0.9, 0.4])  # (0.1 / 0.2 + 0) / 2
    >>> round(float(metric.result()), 4)
    25.0
    """

    _terms = staticmethod(gain_terms)
    _label = "Average Gain"
    _needs_upper_bound = True

    def __init__(self, name: str = "average_gain", dtype: Any = None, *, nan_policy: str = "raise") -> None:
        super().__init__(name=name, dtype=dtype, nan_policy=nan_policy)
