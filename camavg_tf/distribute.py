"""Run camavg's per-batch work on a ``tf.distribute`` strategy, and bring the numbers back.

The pieces ``AveragesCam`` and ``evaluate_dataset`` use when they are given a strategy (or run in
one's scope):

- :func:`current_strategy` picks the strategy: the one given, else the one whose scope is open.
- :class:`ReplicaLoop` runs a per-replica step over a ``tf.data.Dataset`` of batches with
  ``strategy.experimental_distribute_dataset`` and ``strategy.run``.
  :meth:`ReplicaLoop.metric_state` sums the :class:`~camavg_core.state.MetricState` of every
  replica and host; :meth:`ReplicaLoop.per_sample` gathers per-sample values (scores, model
  outputs) from every replica and host, in the dataset's order.
- :func:`reduce_metric_state` and :func:`gather_per_sample` do the same in one call.

Why the reduction is exact: the state holds sums and counts only (n, the skipped count, and
each metric's sums of powers 1-3 and non-zero count, or its count), so the state of the whole
data is the sum of the states of any split of it. Each replica adds its batches to its own copy
of the state's fields: the variables of a :class:`~camavg_tf.metrics.StateMetric` (``SyncOnRead``,
``aggregation=SUM``), updated by the state's own pure update, so the distributed run, the Keras
metrics and a stream share one reduction; the copies are summed once, when the result is read, which for
``MultiWorkerMirroredStrategy`` is one all-reduce across the hosts. A sample is counted by the
replica that receives it, so each is counted once, whatever the batch split, the uneven last
batch included.

Why no replica gets an empty batch: a global batch of fewer rows than replicas (N = 1, or the
last batch of 33 samples in batches of 16) would leave a replica with none, and some kernels
fail on an empty batch (oneDNN's convolution on CPU). So every batch is padded, before the
split, to a multiple of the number of replicas, with copies of its first sample (real data,
so the model runs on what it always runs on) numbered -1. Padded rows enter no sum and are
dropped from every gathered result.

Why per-sample values come back in order: every sample is numbered before the data is split
(``Dataset.scan`` over the batch sizes), the number travels with the sample, and the gathered
values are put back in the order of their numbers. This holds for any batching, any number of
replicas and hosts, and the uneven last batch; a split that does not see every sample exactly
once (e.g. ``AutoShardPolicy.FILE`` with fewer files than hosts) raises a ``ValueError``.

>>> import numpy as np, tensorflow as tf
>>> scores = tf.data.Dataset.from_tensor_slices(
...     (np.array([0.8, 0.5, 0.5]), np.array([0.2, 0.6, 0.5]))).batch(2)
>>> run = reduce_metric_state(None, lambda batch: batch, scores, keep_vectors=True)
>>> result = run.state.result()
>>> round(result.average_drop, 4), round(result.average_increase, 4), result.n
(25.0, 33.3333, 3)
>>> run.o_c.tolist()
[0.2, 0.6, 0.5]
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, NamedTuple

import numpy as np
import tensorflow as tf

from camavg_core import validation
from camavg_core.metrics import score_requirement
from camavg_core.state import MetricState
from camavg_tf.metrics import StateMetric, as_score_vectors

#: the score-range counts the checks need, summed beside the state (whose reduction is the Keras
#: metric's: camavg_tf.metrics.StateMetric)
_RANGE_FIELDS = ("below_zero", "above_one", "masked_below_zero", "masked_above_one", "nonfinite", "masked_nonfinite")
_PADDING_INDEX = -1


def current_strategy(strategy: Any = None) -> tf.distribute.Strategy | None:
    """The strategy to run on: ``strategy`` if given, else the one whose scope is open, else None.

    Args:
        strategy: a ``tf.distribute.Strategy``, or None to look for an open
            ``with strategy.scope():`` around the call.

    Returns:
        The strategy, or None when no strategy is given and none but the default one is in
        scope; also None inside ``strategy.run`` (replica context), where the caller already
        runs on one replica and must not distribute again.

    >>> current_strategy() is None
    True
    >>> one = tf.distribute.OneDeviceStrategy("/cpu:0")
    >>> with one.scope():
    ...     current_strategy() is one
    True
    """
    if strategy is not None:
        if not isinstance(strategy, tf.distribute.Strategy):
            raise TypeError(
                f"strategy must be a tf.distribute.Strategy (e.g. tf.distribute.MirroredStrategy()), "
                f"got {type(strategy).__name__}. Pass None to use the strategy whose scope is open."
            )
        return strategy
    if tf.distribute.has_strategy() and tf.distribute.in_cross_replica_context():
        return tf.distribute.get_strategy()
    return None


class DistributedRun(NamedTuple):
    """What :meth:`ReplicaLoop.metric_state` brings back from every replica and host.

    Attributes:
        state: the :class:`~camavg_core.state.MetricState` of all the samples, as Python
            numbers (``state.result()`` gives the three averages).
        y_c, o_c: the (N,) float64 scores on the inputs and on the masked inputs, in the
            dataset's order, or None when ``keep_vectors=False``.
        below_zero: how many finite scores on the inputs are < 0 (Average Drop needs >= 0).
        above_one: how many finite scores on the inputs are > 1 (Average Gain needs <= 1).
        masked_below_zero, masked_above_one: the same counts for the scores on the masked
            inputs.
        nonfinite, masked_nonfinite: how many scores on the inputs / on the masked inputs are
            NaN or infinite.
    """

    state: MetricState
    y_c: np.ndarray | None
    o_c: np.ndarray | None
    below_zero: int
    above_one: int
    masked_below_zero: int = 0
    masked_above_one: int = 0
    nonfinite: int = 0
    masked_nonfinite: int = 0


def check_distributed_run(run: DistributedRun, nan_policy: str) -> None:
    """The checks ``summarize`` makes, on what a distributed run brings back.

    Raises ``ValueError`` for a non-finite score under ``nan_policy='raise'`` (naming the
    first one when the vectors were kept) and for scores on the inputs or on the masked inputs
    outside [0, 1] (the model returns logits), which Average Drop and Average Gain cannot use:
    the messages of ``summarize`` (:mod:`camavg_core.validation`).
    """
    validation.check_nan_policy(nan_policy)
    metric = score_requirement(run.state.metrics)[0]
    if run.y_c is not None:
        validation.check_finite(run.y_c, "Y_c", nan_policy)
        validation.check_finite(run.o_c, "O_c", nan_policy)
        validation.check_probabilities(run.y_c, metric, upper=True, argument="Y_c")
        validation.check_probabilities(run.o_c, metric, upper=True, argument="O_c")
        return
    if nan_policy == "raise" and run.state.skipped:
        # without the vectors the sample cannot be named: the argument and the count can
        argument, count = ("Y_c", run.nonfinite) if run.nonfinite else ("O_c", run.masked_nonfinite)
        raise ValueError(
            f"{validation.nonfinite_message(argument)} In all, {run.state.skipped} sample(s) have a "
            f"non-finite score ({count} in {argument}); keep_vectors=True names the first."
        )
    for argument, below, above in (
        ("Y_c", run.below_zero, run.above_one),
        ("O_c", run.masked_below_zero, run.masked_above_one),
    ):
        if below or above:
            seen = f"{below} value(s) < 0 and {above} value(s) > 1"
            raise ValueError(validation.probabilities_message(metric, argument, seen, upper=True))


def with_sample_indices(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Each batch as ``(indices, batch)``: the int64 positions of its samples in the stream.

    The batch size is read from the first tensor of each element (every tensor in a batch has
    its samples on axis 0), so batches of any and varying sizes are numbered right.

    >>> batches = tf.data.Dataset.range(5).batch(2)
    >>> [indices.numpy().tolist() for indices, _ in with_sample_indices(batches)]
    [[0, 1], [2, 3], [4]]
    """

    def number(offset: tf.Tensor, batch: Any) -> tuple:
        size = tf.shape(tf.nest.flatten(batch)[0], out_type=tf.int64)[0]
        return offset + size, (offset + tf.range(size, dtype=tf.int64), batch)

    return dataset.scan(tf.constant(0, tf.int64), number)


def pad_to_replicas(numbered: tf.data.Dataset, replicas: int) -> tf.data.Dataset:
    """Each numbered batch ``(indices, batch)`` padded to a multiple of ``replicas`` rows (and
    at least ``replicas``), so that every replica gets at least one row: the padding repeats the
    batch's first sample, with index -1. An empty batch stays empty (there is no row to repeat).

    >>> numbered = with_sample_indices(tf.data.Dataset.range(5).batch(2))
    >>> [(i.numpy().tolist(), b.numpy().tolist()) for i, b in pad_to_replicas(numbered, 4)]
    [([0, 1, -1, -1], [0, 1, 0, 0]), ([2, 3, -1, -1], [2, 3, 2, 2]), ([4, -1, -1, -1], [4, 4, 4, 4])]
    """
    if replicas == 1:
        return numbered

    def pad(indices: tf.Tensor, batch: Any) -> tuple:
        size = tf.shape(indices, out_type=tf.int64)[0]
        padded = tf.where(size > 0, (size + replicas - 1) // replicas * replicas, 0)
        rows = tf.concat([tf.range(size), tf.zeros([padded - size], tf.int64)], axis=0)
        filler = tf.fill([padded - size], tf.constant(_PADDING_INDEX, tf.int64))
        return tf.concat([indices, filler], axis=0), tf.nest.map_structure(lambda t: tf.gather(t, rows), batch)

    return numbered.map(pad)


def _check_dataset(dataset: Any) -> None:
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"dataset must be a tf.data.Dataset of batches to distribute, got "
            f"{type(dataset).__name__}. Wrap a Python iterable with "
            f"tf.data.Dataset.from_generator(...), or arrays with "
            f"tf.data.Dataset.from_tensor_slices(...).batch(batch_size)."
        )


_STRATEGY_LOCKS: "weakref.WeakKeyDictionary[Any, threading.RLock]" = weakref.WeakKeyDictionary()
_STRATEGY_LOCKS_GUARD = threading.Lock()


def _strategy_lock(strategy: Any) -> threading.RLock:
    """The lock of ``strategy`` (re-entrant: a metric_state call holds it around its run)."""
    with _STRATEGY_LOCKS_GUARD:
        return _STRATEGY_LOCKS.setdefault(strategy, threading.RLock())


class ReplicaLoop:
    """A per-replica step run over a distributed ``tf.data.Dataset``, compiled once.

    Args:
        strategy: the ``tf.distribute.Strategy`` to run on; None for the default (one device,
            no distribution). Build the model under ``strategy.scope()``, or build it the same
            way on every host for ``MultiWorkerMirroredStrategy``.
        step_fn: ``step_fn(batch)``, traced inside ``strategy.run``: it takes one replica's
            share of a dataset element (the same structure, fewer samples, at least one: a
            batch is padded with copies of its first sample, left out of every result) and
            returns per-sample tensors, each with the samples on axis 0. For
            :meth:`metric_state` it returns the pair ``(y_c, o_c)`` of (B,) scores on the
            inputs and on the masked inputs; for :meth:`per_sample` any structure (e.g. the
            model's outputs on the masked inputs).

    The dataset's batch size is the global batch: each of the ``strategy.num_replicas_in_sync``
    replicas gets a slice of it. Build one ``ReplicaLoop`` and call it for many datasets: the
    step is traced once per kind of call (and once more for a different batch shape).

    >>> loop = ReplicaLoop(None, lambda batch: (batch[0], batch[1]))
    >>> pairs = tf.data.Dataset.from_tensor_slices(([0.8, 0.5], [0.2, 0.6])).batch(1)
    >>> loop.metric_state(pairs).state.increase_count
    1
    """

    def __init__(self, strategy: tf.distribute.Strategy | None, step_fn: Callable[[Any], Any]) -> None:
        if not callable(step_fn):
            raise TypeError(
                f"step_fn must be callable (batch -> per-sample tensors), got {type(step_fn).__name__}."
            )
        chosen = current_strategy(strategy)
        self.strategy = chosen or tf.distribute.get_strategy()  # the default: one device
        self.step_fn = step_fn
        # Values computed here are all on this host when every replica is; otherwise
        # (MultiWorkerMirroredStrategy) they are all-gathered across the hosts.
        self._single_host = chosen is None or (
            len(chosen.extended.worker_devices) == chosen.num_replicas_in_sync
        )
        with self.strategy.scope():
            # the state's fields: the Keras metric's sum-aggregated variables, the one reduction
            self._state = StateMetric(nan_policy="omit")
            self._ranges = tf.Variable(
                tf.zeros([len(_RANGE_FIELDS)], tf.float64),
                trainable=False,
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.SUM,
                name="camavg_score_ranges",
            )
        self._compiled: dict[str, Any] = {}
        self.trace_count = 0  # traces of the compiled steps, for tests and curious users

    # ----------------------------------------------------------------- public calls
    def metric_state(self, dataset: tf.data.Dataset, *, keep_vectors: bool = False) -> DistributedRun:
        """The summed state of every sample, and the (N,) score vectors when asked for.

        ``step_fn(batch)`` must return ``(y_c, o_c)``. Non-finite pairs enter no sum and are
        counted in ``state.skipped``; call :func:`check_distributed_run` to apply a
        ``nan_policy``. Only the vectors (when kept) and one reduction come back to the host.
        """
        _check_dataset(dataset)
        with _strategy_lock(self.strategy):  # the state is reset, filled and read as one
            self._state.reset_state()
            self._ranges.assign(tf.zeros_like(self._ranges))
            if keep_vectors:
                gathered = self._run("state_and_vectors", dataset)
                if gathered:
                    y_c, o_c = (values.numpy() for values in self._in_order(gathered))
                else:  # a dataset without batches: no sample, and nothing to concatenate
                    y_c = o_c = np.zeros(0)
            else:
                self._run("state", dataset)
                y_c = o_c = None
            ranges = [int(round(v)) for v in self._ranges.read_value().numpy().tolist()]
            state = self._state.state()
        return DistributedRun(state, y_c, o_c, *ranges)

    def per_sample(self, dataset: tf.data.Dataset) -> Any:
        """``step_fn``'s per-sample outputs over the whole dataset, in the dataset's order.

        Returns the structure ``step_fn`` returns, each tensor now holding all N samples
        (``tf.Tensor`` on this host, (N, ...)). Every host gets the full result.
        """
        _check_dataset(dataset)
        gathered = self._run("per_sample", dataset)
        if not gathered:
            raise ValueError("dataset is empty: there is no sample to gather.")
        return self._in_order(gathered)

    # ----------------------------------------------------------------- replica steps
    def _add_to_sums(self, indices: tf.Tensor, y_c: tf.Tensor, o_c: tf.Tensor) -> None:
        """Runs on one replica: add its batch, padding left out, to its own copy of the sums."""
        if indices is not None:
            real = indices != _PADDING_INDEX
            y_c, o_c = tf.boolean_mask(y_c, real), tf.boolean_mask(o_c, real)
        self._state.add(y_c, o_c)
        out_of_range = []
        nonfinite = []
        for scores in (y_c, o_c):
            is_finite = tf.math.is_finite(scores)
            finite = tf.boolean_mask(scores, is_finite)
            out_of_range.append(tf.reduce_sum(tf.cast(finite < 0.0, tf.float64)))
            out_of_range.append(tf.reduce_sum(tf.cast(finite > 1.0, tf.float64)))
            nonfinite.append(tf.reduce_sum(tf.cast(~is_finite, tf.float64)))
        self._ranges.assign_add(tf.stack([*out_of_range, *nonfinite]))

    def _replica_state(self, numbered: tuple) -> None:
        indices, batch = numbered
        self._add_to_sums(indices, *as_score_vectors(*self._score_pair(batch)))

    def _replica_state_unnumbered(self, batch: Any) -> None:
        self._add_to_sums(None, *as_score_vectors(*self._score_pair(batch)))

    def _replica_state_and_vectors(self, numbered: tuple) -> tuple:
        indices, batch = numbered
        y_c, o_c = as_score_vectors(*self._score_pair(batch))
        self._add_to_sums(indices, y_c, o_c)
        return self._share(indices, (y_c, o_c))

    def _replica_per_sample(self, numbered: tuple) -> tuple:
        indices, batch = numbered
        return self._share(indices, self.step_fn(batch))

    def _score_pair(self, batch: Any) -> tuple:
        pair = self.step_fn(batch)
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(
                f"step_fn must return the pair (y_c, o_c) of (B,) scores on the inputs and on the "
                f"masked inputs, got {type(pair).__name__}"
                + (f" of length {len(pair)}" if isinstance(pair, (tuple, list)) else "")
                + "."
            )
        return tuple(pair)

    def _share(self, indices: tf.Tensor, values: Any) -> tuple:
        """This replica's numbered values, all-gathered across hosts when there are several.

        ``all_gather`` needs the same shape on every replica, and the uneven last batch has
        fewer samples on some: each replica pads to the largest batch, with index -1.
        """
        if self._single_host:
            return indices, values
        context = tf.distribute.get_replica_context()
        size = tf.shape(indices)[0]
        largest = tf.reduce_max(context.all_gather(tf.reshape(size, [1]), axis=0))

        def pad(tensor: tf.Tensor, value: Any = 0) -> tf.Tensor:
            widths = tf.concat([[[0, largest - size]], tf.zeros([tf.rank(tensor) - 1, 2], tf.int32)], axis=0)
            return tf.pad(tensor, widths, constant_values=tf.cast(value, tensor.dtype))

        padded = (pad(indices, _PADDING_INDEX), tf.nest.map_structure(pad, values))
        return context.all_gather(padded, axis=0)

    # ----------------------------------------------------------------- the loop
    def _run(self, kind: str, dataset: tf.data.Dataset) -> list | None:
        """Run the step of ``kind`` over the distributed batches (numbered, and padded so that
        no replica gets an empty one); the gathered values, if any.

        One loop at a time per strategy: two threads iterating distributed datasets on one
        strategy at once got each other's batches (wrong numbers in 3 of 30 trials of four
        threads sharing an AveragesCam, and an ``OutOfRangeError`` from the multi-device
        iterator), so the loop, and the sums it resets and reads, are held by the strategy's lock.
        """
        with _strategy_lock(self.strategy):
            return self._run_locked(kind, dataset)

    def _run_locked(self, kind: str, dataset: tf.data.Dataset) -> list | None:
        if kind == "state" and any(spec.shape.rank == 0 for spec in tf.nest.flatten(dataset.element_spec)):
            # elements without a sample axis cannot be numbered: the step's checks name them
            kind = "state_unnumbered"
        else:
            dataset = pad_to_replicas(with_sample_indices(dataset), self.strategy.num_replicas_in_sync)
        step = self._compiled.get(kind)
        if step is None:
            step = self._compiled[kind] = tf.function(self._step_graph(kind), reduce_retracing=True)
        distributed = self.strategy.experimental_distribute_dataset(dataset)
        gathered = [step(batch) for batch in distributed]
        return None if kind in ("state", "state_unnumbered") else gathered

    def _step_graph(self, kind: str) -> Callable:
        replica_fn = {
            "state": self._replica_state,
            "state_unnumbered": self._replica_state_unnumbered,
            "state_and_vectors": self._replica_state_and_vectors,
            "per_sample": self._replica_per_sample,
        }[kind]

        def step(batch: Any) -> Any:
            self.trace_count += 1
            per_replica = self.strategy.run(replica_fn, args=(batch,))
            if kind in ("state", "state_unnumbered"):
                return tf.constant(0)  # the sums stay in the replicas' variables
            local = self.strategy.experimental_local_results(per_replica)
            if not self._single_host:
                return local[0]  # all-gathered: every replica holds the whole step
            return tf.nest.map_structure(lambda *parts: tf.concat(parts, axis=0), *local)

        return step

    def _in_order(self, gathered: list) -> Any:
        """Concatenate the steps, drop the padding, and sort the samples by their index."""
        indices = tf.concat([indices for indices, _ in gathered], axis=0)
        values = tf.nest.map_structure(lambda *parts: tf.concat(parts, axis=0), *[v for _, v in gathered])
        real = indices != _PADDING_INDEX
        indices = tf.boolean_mask(indices, real)
        order = tf.argsort(indices, stable=True)
        sorted_indices = tf.gather(indices, order).numpy()
        if not np.array_equal(sorted_indices, np.arange(sorted_indices.size)):
            counts = np.bincount(sorted_indices, minlength=int(sorted_indices.max(initial=-1)) + 1)
            raise ValueError(
                f"The distributed dataset did not give every sample exactly once "
                f"({int((counts == 0).sum())} missing, {int((counts > 1).sum())} repeated). Each "
                f"host must see the whole dataset and let tf.distribute split it: set "
                f"options.experimental_distribute.auto_shard_policy = "
                f"tf.data.experimental.AutoShardPolicy.DATA (dataset.with_options(options))."
            )
        return tf.nest.map_structure(lambda tensor: tf.gather(tf.boolean_mask(tensor, real), order), values)


def reduce_metric_state(
    strategy: tf.distribute.Strategy | None,
    step_fn: Callable[[Any], tuple],
    dataset: tf.data.Dataset,
    *,
    keep_vectors: bool = False,
) -> DistributedRun:
    """:meth:`ReplicaLoop.metric_state` in one call (traces the step each time).

    Args:
        strategy: a ``tf.distribute.Strategy``, or None for the one in scope or the default.
        step_fn: ``batch -> (y_c, o_c)``, the (B,) scores of one replica's share of a batch
            on the inputs and on the masked inputs (see :class:`ReplicaLoop`).
        dataset: a ``tf.data.Dataset`` of batches (the global batch size), e.g. of
            ``(inputs, cams, targets)``.
        keep_vectors: also bring back the (N,) score vectors, in the dataset's order.
    """
    return ReplicaLoop(strategy, step_fn).metric_state(dataset, keep_vectors=keep_vectors)


def gather_per_sample(
    strategy: tf.distribute.Strategy | None, step_fn: Callable[[Any], Any], dataset: tf.data.Dataset
) -> Any:
    """:meth:`ReplicaLoop.per_sample` in one call: ``step_fn``'s outputs for all N samples, in order.

    >>> numbers = tf.data.Dataset.range(5).batch(2)
    >>> gather_per_sample(None, lambda batch: batch * 10, numbers).numpy().tolist()
    [0, 10, 20, 30, 40]
    """
    return ReplicaLoop(strategy, step_fn).per_sample(dataset)
