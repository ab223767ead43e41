r"""``evaluate_dataset``: the three metrics over a stream of batches, in memory independent of N.

Each element of the stream is one batch ``(inputs, cams, targets)``. Per batch, one compiled
step masks the inputs, runs the model on the plain and on the masked inputs, picks the target
scores :math:`Y_i` and :math:`O_i`, and adds the batch's sums to a
:class:`~camavg_core.state.MetricState` that stays on the device: no batch is copied back to the
host. The state holds only :math:`n`, :math:`\sum \mathrm{drop}_i`, :math:`\sum \mathrm{drop}_i^2`,
:math:`\sum \mathrm{gain}_i`, :math:`\sum \mathrm{gain}_i^2`, the increase count and the skipped
count, so the averages

.. math::

    \text{Average Drop} = \frac{100}{n}\sum_i \frac{\max(0, Y_i - O_i)}{Y_i + \epsilon}, \quad
    \text{Average Increase} = \frac{100}{n}\sum_i [Y_i < O_i], \quad
    \text{Average Gain} = \frac{100}{n}\sum_i \frac{\max(0, O_i - Y_i)}{1 - Y_i + \epsilon}

come out of it once, at the end, with the same numbers ``AveragesCam`` gives on the
concatenated data.

The checks ``AveragesCam`` makes before its pass (non-finite samples, CAMs outside [0, 1],
scores that are not probabilities, class indices out of range) cannot look at a batch without a
host round trip, so the step keeps what they need on the device (the first offending sample,
the range of the CAMs and of the scores) and they run once, after the last batch.

>>> import numpy as np, tensorflow as tf
>>> inputs = np.ones((3, 2, 2, 1), np.float32)
>>> cams = np.stack([np.full((2, 2), v, np.float32) for v in (1.0, 0.5, 0.25)])
>>> model = lambda x, training=False: tf.concat([tf.reduce_mean(x, [1, 2]), 1 - tf.reduce_mean(x, [1, 2])], -1)
>>> batches = tf.data.Dataset.from_tensor_slices((inputs, cams, np.zeros(3, np.int64))).batch(2)
>>> result = evaluate_dataset(model, batches)  # Y = 1 for all three, O = 1, 0.5, 0.25
>>> round(result.average_drop, 4), result.average_increase, result.n  # (0 + 0.5 + 0.75) / 3
(41.6667, 0.0, 3)
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Iterable

import numpy as np
import tensorflow as tf

from camavg_core import validation
from camavg_core.result import Result
from camavg_core.state import MetricState
from camavg_tf.passes import ModelSteps, PassOptions
from camavg_tf.distribute import ReplicaLoop, check_distributed_run, current_strategy
from camavg_tf.metrics import batch_sums
from camavg_tf.stream_checks import (
    StreamChecks,
    Totals,
    check_totals,
    finite_range,
    first_true,
    per_sample_finite,
)

SCORES = ("categorical", "binary")
def _as_tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


class StreamingStep:
    """The per-batch work of :func:`evaluate_dataset`, for one model and one set of options.

    :meth:`score_pair` is the step a ``tf.distribute`` loop runs on each replica (it returns
    the pair ``(y_c, o_c)``, as :class:`camavg_tf.distribute.ReplicaLoop` expects);
    :meth:`batch_outcome` adds the per-batch checks; :attr:`accumulate` is the compiled
    single-device step, ``totals, y_c, o_c = accumulate(totals, batch)``, traced once for a
    batch dimension of any size.

    Args:
        model: a Keras model, or any callable ``model(x, training=False)`` that runs in
            ``tf.function``.
        element_spec: the ``(inputs, cams, targets)`` spec of one batch (a
            ``tf.data.Dataset.element_spec``); its batch dimension is relaxed to ``None``.
        score: ``'categorical'`` (targets are class indices), ``'binary'`` (targets are
            booleans for a single sigmoid output: the score is p for True, 1 - p for False),
            or a callable ``score(outputs, targets) -> (B,)`` that runs in ``tf.function``.
        activation, data_format, normalize: as for :func:`evaluate_dataset`.
    """

    def __init__(
        self,
        model: Any,
        element_spec: Any,
        *,
        score: str | Callable = "categorical",
        activation: str | None = None,
        data_format: str = "channels_last",
        normalize: bool = False,
    ) -> None:
        self.model = model
        self.score = score
        self.activation = activation
        self.data_format = data_format
        self.normalize = normalize
        self.element_spec = _relaxed_batch_spec(element_spec)
        inputs_spec, cams_spec, _ = self.element_spec
        self.multi_input = isinstance(inputs_spec, (list, tuple))
        self._steps = ModelSteps(model, PassOptions(activation, data_format, normalize, self.multi_input))
        _check_cam_specs(inputs_spec, cams_spec)
        self.trace_count = 0  # traces of the compiled step, for tests and curious users
        totals_spec = tf.nest.map_structure(tf.TensorSpec.from_tensor, _empty_totals())
        self.accumulate = tf.function(self._accumulate_graph, input_signature=[totals_spec, self.element_spec])

    # ----------------------------------------------------------------- per replica
    def _target_scores(self, outputs: list, targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(B,) float64 scores of the targets, and (B,) True where a class index is invalid."""
        batch = tf.shape(targets)[0]
        no_bad = tf.zeros((batch,), tf.bool)
        if callable(self.score):
            scores = self.score(outputs if len(outputs) > 1 else outputs[0], targets)
            return tf.reshape(tf.cast(scores, tf.float64), (batch,)), no_bad
        if len(outputs) != 1:
            raise ValueError(
                f"The model has {len(outputs)} outputs, so score={self.score!r} does not say which "
                f"to score: pass a callable score(outputs, targets) -> (B,) scores."
            )
        output = outputs[0]
        if self.score == "binary":
            if not (output.shape.rank == 1 or (output.shape.rank == 2 and output.shape[-1] == 1)):
                raise ValueError(
                    f"score='binary' needs one sigmoid output per sample, shape (B, 1), got "
                    f"shape {tuple(output.shape)}; use score='categorical' for class outputs."
                )
            p = tf.cast(tf.reshape(output, (batch,)), tf.float64)
            positive = tf.reshape(tf.cast(targets, tf.bool), (batch,))
            return tf.where(positive, p, 1.0 - p), no_bad
        if output.shape.rank != 2:
            raise ValueError(
                f"score='categorical' needs outputs of shape (B, classes), got shape "
                f"{tuple(output.shape)}; pass a callable score(outputs, targets) for other outputs."
            )
        classes = tf.shape(output, out_type=tf.int64)[1]
        indices = tf.reshape(tf.cast(targets, tf.int64), (batch,))
        bad = (indices < 0) | (indices >= classes)
        # a gather out of range fails on the CPU and reads 0 on a GPU: clip, and report `bad`
        safe = tf.clip_by_value(indices, 0, classes - 1)
        return tf.cast(tf.gather(output, safe, axis=1, batch_dims=1), tf.float64), bad

    def _model_inputs(self, inputs: Any) -> tuple:
        """Inputs in the model's input dtype (integer images become float32)."""
        return tuple(x if x.dtype.is_floating else tf.cast(x, tf.float32) for x in map(tf.convert_to_tensor, _as_tuple(inputs)))

    def score_pair(self, batch: tuple) -> tuple[tf.Tensor, tf.Tensor]:
        """``(y_c, o_c)``: the (B,) float64 target scores on the inputs and on the masked
        inputs. A sample with a non-finite input or CAM gets NaN for both."""
        y_c, o_c, _ = self._scores_and_flags(batch)
        return y_c, o_c

    def _scores_and_flags(self, batch: tuple) -> tuple:
        inputs, cams, targets = batch
        batch_inputs = self._model_inputs(inputs)
        batch_cams = tuple(tf.cast(c, "float64" if x.dtype == tf.float64 else "float32") for x, c in zip(batch_inputs, _as_tuple(cams)))
        finite = per_sample_finite(batch_inputs[0])
        for tensor in batch_inputs[1:] + batch_cams:
            finite &= per_sample_finite(tensor)
        y_c, bad_target = self._target_scores(self._steps.plain(batch_inputs), targets)
        o_c, _ = self._target_scores(self._steps.masked((batch_inputs, batch_cams)), targets)
        nan = tf.fill(tf.shape(y_c), tf.constant(np.nan, tf.float64))
        y_c = tf.where(finite & ~bad_target, y_c, nan)
        o_c = tf.where(finite & ~bad_target, o_c, nan)
        return y_c, o_c, (finite, bad_target, batch_cams)

    def batch_outcome(self, batch: tuple) -> tuple[MetricState, StreamChecks, tf.Tensor, tf.Tensor]:
        """The batch's state, its checks (sample indices within the batch), and its scores."""
        y_c, o_c, (finite, bad_target, batch_cams) = self._scores_and_flags(batch)
        nonfinite = ~(finite & tf.math.is_finite(y_c) & tf.math.is_finite(o_c)) & ~bad_target
        score_min, score_max = finite_range(y_c)
        cam_ranges = [finite_range(cam) for cam in batch_cams]
        checks = StreamChecks(
            first_nonfinite=first_true(nonfinite),
            first_bad_target=first_true(bad_target),
            score_min=score_min,
            score_max=score_max,
            cam_min=tf.reduce_min(tf.stack([low for low, _ in cam_ranges])),
            cam_max=tf.reduce_max(tf.stack([high for _, high in cam_ranges])),
        )
        return batch_sums(y_c, o_c), checks, y_c, o_c

    # ----------------------------------------------------------------- one device
    def _accumulate_graph(self, totals: Totals, batch: tuple) -> tuple[Totals, tf.Tensor, tf.Tensor]:
        self.trace_count += 1
        state, checks, y_c, o_c = self.batch_outcome(batch)
        offset = tf.cast(totals.state.n + totals.state.skipped, tf.int64)
        return Totals(totals.state.merge(state), totals.checks.then(checks, offset)), y_c, o_c


def _empty_totals() -> Totals:
    zero = tf.constant(0.0, tf.float64)
    return Totals(MetricState(*([zero] * len(MetricState._fields))), StreamChecks.empty())


def _relaxed_batch_spec(element_spec: Any) -> Any:
    """The ``(inputs, cams, targets)`` spec with every batch dimension ``None``, so that the
    ragged last batch runs the same trace."""
    if not isinstance(element_spec, (tuple, list)) or len(element_spec) != 3:
        raise TypeError(
            f"Each element of the dataset must be a batch (inputs, cams, targets), got an element "
            f"of structure {element_spec!r}. Zip them: tf.data.Dataset.zip((images, cams, labels))."
        )

    def relax(spec: Any) -> tf.TensorSpec:
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank is None or spec.shape.rank < 1:
            raise TypeError(
                f"Each part of a batch must be a tensor with a batch axis, got {spec!r}; batch the "
                f"dataset (dataset.batch(32)) before evaluating it."
            )
        return tf.TensorSpec((None, *spec.shape[1:]), spec.dtype)

    return tuple(tf.nest.map_structure(relax, tuple(element_spec)))


def _check_cam_specs(inputs_spec: Any, cams_spec: Any) -> None:
    several = isinstance(inputs_spec, (list, tuple))
    if several != isinstance(cams_spec, (list, tuple)) or len(_as_tuple(inputs_spec)) != len(_as_tuple(cams_spec)):
        raise ValueError(
            f"Each batch holds {len(_as_tuple(inputs_spec))} input(s) "
            f"({'a tuple' if several else 'one array'}) but {len(_as_tuple(cams_spec))} CAM "
            f"array(s): pass one CAM array per model input, a tuple for a multi-input model."
        )
    for spec in _as_tuple(cams_spec):
        if not (spec.dtype.is_floating or spec.dtype.is_integer or spec.dtype == tf.bool):
            raise TypeError(f"cams must hold numbers, got dtype {spec.dtype.name}.")


# --------------------------------------------------------------------------- the stream
def _spec_of(value: Any) -> Any:
    array = np.asarray(value)
    if array.ndim == 0:
        raise TypeError(
            f"Each part of a batch must be an array with a batch axis, got a scalar {value!r}."
        )
    return tf.TensorSpec((None, *array.shape[1:]), tf.as_dtype(array.dtype))


def as_prefetched_dataset(data: Any) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(inputs, cams, targets)`` batches, prefetched.

    A dataset is used as it is; any other iterable (a generator, a list of batches, a Keras
    ``PyDataset``) is read through ``Dataset.from_generator``, its element spec taken from
    the first batch. Prefetching lets the host read the next batch while the device runs
    this one.
    """
    if isinstance(data, tf.data.Dataset):
        return data.prefetch(tf.data.AUTOTUNE)
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise TypeError(
            f"dataset must be a tf.data.Dataset or an iterable of (inputs, cams, targets) batches, "
            f"got {type(data).__name__}."
        )
    iterator = iter(data)
    try:
        first = next(iterator)
    except StopIteration:
        raise ValueError("dataset is empty: there is no sample to evaluate.") from None
    if not isinstance(first, (tuple, list)) or len(first) != 3:
        raise TypeError(
            f"Each batch must be a tuple (inputs, cams, targets), got {type(first).__name__}"
            + (f" of length {len(first)}" if isinstance(first, (tuple, list)) else "")
            + "."
        )
    inputs, cams, targets = first
    # a list or tuple of inputs (and of CAMs) is a multi-input model's; targets are one array
    signature = (
        *(tuple(_spec_of(v) for v in part) if isinstance(part, (list, tuple)) else _spec_of(part) for part in (inputs, cams)),
        _spec_of(targets),
    )

    def batches():
        for inputs, cams, targets in itertools.chain([first], iterator):
            yield (
                tuple(inputs) if isinstance(inputs, list) else inputs,
                tuple(cams) if isinstance(cams, list) else cams,
                np.asarray(targets),
            )

    return tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(tf.data.AUTOTUNE)


def _progress_bar(dataset: tf.data.Dataset) -> Any:
    """tqdm when it is installed, else Keras' Progbar; counts batches."""
    cardinality = int(dataset.cardinality())
    total = cardinality if cardinality >= 0 else None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        import keras

        bar = keras.utils.Progbar(total, unit_name="batch")
        return lambda: bar.add(1), lambda: None
    bar = tqdm(total=total, unit="batch", desc="camavg")
    return lambda: bar.update(1), bar.close


def _batch_size(batch: tuple) -> int:
    """Samples in a batch, read from the shapes (host metadata: no device round trip); every
    part must agree."""
    sizes = {int(t.shape[0]) for t in tf.nest.flatten(batch)}
    if len(sizes) != 1:
        raise ValueError(
            f"A batch holds inputs, CAMs and targets of different lengths {sorted(sizes)}: each "
            f"batch needs one CAM and one target per input sample."
        )
    return sizes.pop()


def run_stream(step: StreamingStep, dataset: tf.data.Dataset, *, keep_vectors: bool, progress: bool) -> tuple[Totals, Any, Any]:
    """Run ``step.accumulate`` once per batch. The totals stay device tensors throughout;
    nothing is read back until the caller asks, after the last batch."""
    totals = _empty_totals()
    advance, close = _progress_bar(dataset) if progress else (lambda: None, lambda: None)
    kept_y, kept_o = [], []
    try:
        for batch in dataset:
            _batch_size(batch)
            totals, y_c, o_c = step.accumulate(totals, tuple(batch))
            if keep_vectors:
                kept_y.append(y_c)
                kept_o.append(o_c)
            advance()
    finally:
        close()
    if not keep_vectors:
        return totals, None, None
    if not kept_y:
        return totals, np.zeros(0), np.zeros(0)
    return totals, tf.concat(kept_y, 0).numpy(), tf.concat(kept_o, 0).numpy()


def _check_options(score: Any, nan_policy: str, level: float, data_format: str, activation: Any, normalize: Any) -> None:
    if not (callable(score) or score in SCORES):
        raise ValueError(
            f"score must be one of {SCORES} or a callable score(outputs, targets) -> (B,), got "
            f"{score!r}."
        )
    validation.check_options(
        activation=activation, nan_policy=nan_policy, data_format=data_format, level=level, normalize=normalize
    )


def evaluate_dataset(
    model: Any,
    dataset: Any,
    *,
    score: str | Callable = "categorical",
    activation: str | None = None,
    keep_vectors: bool = False,
    progress: bool = False,
    nan_policy: str = "raise",
    level: float = 0.95,
    data_format: str = "channels_last",
    normalize: bool = False,
    strategy: Any = None,
) -> Result:
    """Average Drop, Average Increase and Average Gain over a stream of batches.

    Args:
        model: a Keras model (or a callable ``model(x, training=False)`` that runs in
            ``tf.function``).
        dataset: a ``tf.data.Dataset`` or any iterable of ``(inputs, cams, targets)`` batches:
            inputs (B, H, W, C) (a tuple of them for a multi-input model), cams (B, h, w) in
            [0, 1] (resized when (h, w) differs; a tuple, one per input), targets (B,).
        score: ``'categorical'``: targets are class indices, the score is the output at the
            target class (tf-keras-vis' ``CategoricalScore``). ``'binary'``: targets are
            booleans for a single sigmoid output, the score is p for True and 1 - p for False.
            Or a callable ``score(outputs, targets) -> (B,)`` that runs in ``tf.function``.
        activation: ``'softmax'`` or ``'sigmoid'`` for a model that returns logits.
        keep_vectors: also return the (N,) score vectors ``y_c`` and ``o_c`` (memory then
            grows with N; without them it does not).
        progress: show a progress bar (tqdm if installed, else Keras' ``Progbar``).
        nan_policy: ``'raise'`` names the first sample with a non-finite input, CAM or score
            (after the stream has ended); ``'omit'`` skips such samples and counts them.
        level: confidence level of the intervals in ``result.ci``.
        data_format: ``'channels_last'`` or ``'channels_first'``.
        normalize: min-max normalise each CAM to [0, 1] before masking.
        strategy: a ``tf.distribute.Strategy`` to spread every batch over its replicas (and
            hosts); by default the one whose ``scope()`` is open, if any. The dataset's batch
            is then the global batch, and the sum-only state is reduced across replicas, so
            the numbers equal the single-device ones. ``progress`` is ignored there.

    Returns:
        A :class:`~camavg_core.result.Result`; ``y_c`` and ``o_c`` are None unless
        ``keep_vectors=True``.

    >>> import numpy as np, tensorflow as tf
    >>> def batches():  # any iterable of batches works, a generator too
    ...     for value in (1.0, 0.5):
    ...         yield np.ones((2, 2, 2, 1), np.float32), np.full((2, 2, 2), value, np.float32), [True, False]
    >>> model = lambda x, training=False: tf.reduce_mean(x, [1, 2]) * 0.8  # p = 0.8 * mean(x)
    >>> result = evaluate_dataset(model, batches(), score="binary", keep_vectors=True)
    >>> result.y_c.round(4).tolist(), result.o_c.round(4).tolist()  # p, 1 - p for False
    ([0.8, 0.2, 0.8, 0.2], [0.8, 0.2, 0.4, 0.6])
    >>> result.average_increase  # one of four scores went up: 0.2 -> 0.6
    25.0
    """
    _check_options(score, nan_policy, level, data_format, activation, normalize)
    strategy = current_strategy(strategy)
    if strategy is not None:
        return _evaluate_distributed(
            model, dataset, strategy, score=score, activation=activation, keep_vectors=keep_vectors,
            nan_policy=nan_policy, level=level, data_format=data_format, normalize=normalize,
        )
    batches = as_prefetched_dataset(dataset)
    step = StreamingStep(model, batches.element_spec, score=score, activation=activation, data_format=data_format, normalize=normalize)
    totals, y_c, o_c = run_stream(step, batches, keep_vectors=keep_vectors, progress=progress)
    state = check_totals(totals, nan_policy=nan_policy, normalize=normalize)
    result = state.result(level=level)
    if not keep_vectors:
        return result
    return dataclasses.replace(result, y_c=y_c, o_c=o_c)


def _checked_score_pair(step: StreamingStep, normalize: bool) -> Callable:
    """The replica step, with the CAM range checked on the device (an assertion, turned into
    camavg's ValueError by the caller): replicas cannot stop to ask the host."""

    def pair(batch: tuple) -> tuple:
        if not normalize:
            for cam in _as_tuple(batch[1]):
                low, high = finite_range(tf.cast(cam, tf.float64))
                tf.debugging.assert_less_equal(
                    tf.maximum(-low, high - 1.0),
                    tf.constant(validation.CAM_RANGE_TOLERANCE, tf.float64),
                    message=_CAM_RANGE_MESSAGE,
                )
        return step.score_pair(batch)

    return pair


_CAM_RANGE_MESSAGE = "camavg: cams outside [0, 1]"


def _evaluate_distributed(model, dataset, strategy, *, score, activation, keep_vectors, nan_policy, level, data_format, normalize) -> Result:
    batches = as_prefetched_dataset(dataset)
    step = StreamingStep(model, batches.element_spec, score=score, activation=activation, data_format=data_format, normalize=normalize)
    try:
        run = ReplicaLoop(strategy, _checked_score_pair(step, normalize)).metric_state(batches, keep_vectors=keep_vectors)
    except tf.errors.InvalidArgumentError as error:
        if _CAM_RANGE_MESSAGE not in str(error):
            raise
        raise ValueError(
            "cams must lie in [0, 1], but a batch holds values outside it. Normalise each CAM "
            "(tf-keras-vis does so by default), or pass normalize=True for a per-sample min-max "
            "normalisation."
        ) from None
    check_distributed_run(run, nan_policy)
    result = run.state.result(level=level)
    if not keep_vectors:
        return result
    return dataclasses.replace(result, y_c=run.y_c, o_c=run.o_c)
