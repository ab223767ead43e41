"""Run camavg's per-batch work on a ``tf.distribute`` strategy, and bring the outputs back in order.

The pieces ``AveragesCam`` and ``evaluate_dataset`` use when they are given a strategy (or run in
one's scope):

- :func:`current_strategy` picks the strategy: the one given, else the one whose scope is open.
- :class:`ReplicaLoop` runs a per-replica step over a ``tf.data.Dataset`` of batches with
  ``strategy.experimental_distribute_dataset`` and ``strategy.run``, and
  :meth:`ReplicaLoop.per_sample` gathers its per-sample outputs (model outputs, scores) from
  every replica and host, in the dataset's order. :func:`gather_per_sample` does it in one call.

This is the one distributed path: the replicas run the model (the plain pass, the CAM mask, a
perturbation's K steps) and the engine reduces the gathered outputs on the host, with the same
checks and the same sums (:mod:`camavg_core.state`) as on one device, so the numbers equal the
single-device ones. A custom training loop or ``model.fit`` that wants the averages without
gathering uses the Keras metrics (:class:`~camavg_tf.metrics.StateMetric`), whose sum-aggregated
variables reduce across replicas.

Why no replica gets an empty batch: a global batch of fewer rows than replicas (N = 1, or the
last batch of 33 samples in batches of 16) would leave a replica with none, and some kernels
fail on an empty batch (oneDNN's convolution on CPU). So every batch is padded, before the
split, to a multiple of the number of replicas, with copies of its first sample (real data,
so the model runs on what it always runs on) numbered -1. Padded rows are dropped from every
gathered result.

Why per-sample values come back in order: every sample is numbered before the data is split
(``Dataset.scan`` over the batch sizes), the number travels with the sample, and the gathered
values are put back in the order of their numbers. This holds for any batching, any number of
replicas and hosts, and the uneven last batch; a split that does not see every sample exactly
once (e.g. ``AutoShardPolicy.FILE`` with fewer files than hosts) raises a ``ValueError``.

>>> import numpy as np, tensorflow as tf
>>> scores = tf.data.Dataset.from_tensor_slices(np.array([0.8, 0.5, 0.25])).batch(2)
>>> gather_per_sample(None, lambda batch: 1.0 - batch, scores).numpy().tolist()
[0.2, 0.5, 0.75]
"""

from __future__ import annotations

import functools
import threading
import weakref
from typing import Any, Callable

import numpy as np
import tensorflow as tf

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


_STRATEGY_LOCKS: "weakref.WeakKeyDictionary[Any, threading.Lock]" = weakref.WeakKeyDictionary()
_STRATEGY_LOCKS_GUARD = threading.Lock()


def _strategy_lock(strategy: Any) -> threading.Lock:
    """The lock of ``strategy``: one distributed loop at a time on it (see :meth:`ReplicaLoop.per_sample`)."""
    with _STRATEGY_LOCKS_GUARD:
        return _STRATEGY_LOCKS.setdefault(strategy, threading.Lock())


class ReplicaLoop:
    """A per-replica step run over a distributed ``tf.data.Dataset``, compiled once.

    Args:
        strategy: the ``tf.distribute.Strategy`` to run on; None for the one whose scope is
            open, else the default (one device, no distribution). Build the model under
            ``strategy.scope()``, or build it the same way on every host for
            ``MultiWorkerMirroredStrategy``.
        step_fn: ``step_fn(batch, *arguments)``, traced inside ``strategy.run``: it takes one
            replica's share of a dataset element (the same structure, fewer samples, at least
            one: a batch is padded with copies of its first sample, left out of every result)
            and returns any structure of per-sample tensors, each with the samples on axis 0
            (e.g. the model's outputs on the masked inputs).
        argument_specs: one ``tf.TensorSpec`` per tensor that :meth:`per_sample` passes to
            every replica beside the batch (the same on each, e.g. a perturbation's (K, P) step
            parameters). An unknown axis (``tf.TensorSpec((None, None), tf.float32)``) takes
            any size: new values and sizes never re-trace the step.

    The dataset's batch size is the global batch: each of the ``strategy.num_replicas_in_sync``
    replicas gets a slice of it. Build one ``ReplicaLoop`` and call it for many datasets: the
    step is traced once per element signature of the dataset (the sample axis is unknown in it,
    so neither N nor the batch size re-traces).

    >>> loop = ReplicaLoop(None, lambda batch, scale: batch * scale, [tf.TensorSpec((), tf.float32)])
    >>> numbers = tf.data.Dataset.range(5).map(lambda i: tf.cast(i, tf.float32)).batch(2)
    >>> loop.per_sample(numbers, tf.constant(10.0)).numpy().tolist()
    [0.0, 10.0, 20.0, 30.0, 40.0]
    >>> loop.per_sample(numbers, tf.constant(0.5)).numpy().tolist(), loop.trace_count
    ([0.0, 0.5, 1.0, 1.5, 2.0], 1)
    """

    def __init__(self, strategy: tf.distribute.Strategy | None, step_fn: Callable[..., Any],
                 argument_specs: Any = ()) -> None:
        if not callable(step_fn):
            raise TypeError(
                f"step_fn must be callable (batch -> per-sample tensors), got {type(step_fn).__name__}."
            )
        chosen = current_strategy(strategy)
        self.strategy = chosen or tf.distribute.get_strategy()  # the default: one device
        self.step_fn = step_fn
        self.argument_specs = tuple(argument_specs)
        # Values computed here are all on this host when every replica is; otherwise
        # (MultiWorkerMirroredStrategy) they are all-gathered across the hosts.
        self._single_host = chosen is None or (
            len(chosen.extended.worker_devices) == chosen.num_replicas_in_sync
        )
        self._compiled: dict[Any, Any] = {}
        self.trace_count = 0  # traces of the compiled step, for tests and curious users

    def per_sample(self, dataset: tf.data.Dataset, *arguments: Any) -> Any:
        """``step_fn``'s per-sample outputs over the whole dataset, in the dataset's order.

        Returns the structure ``step_fn`` returns, each tensor now holding all N samples
        (``tf.Tensor`` on this host, (N, ...)). Every host gets the full result. ``arguments``:
        the tensors of ``argument_specs``, given to every replica's step.

        One loop at a time per strategy: two threads iterating distributed datasets on one
        strategy at once got each other's batches (wrong numbers in 3 of 30 trials of four
        threads sharing an AveragesCam, and an ``OutOfRangeError`` from the multi-device
        iterator), so the loop is held by the strategy's lock.
        """
        _check_dataset(dataset)
        if len(arguments) != len(self.argument_specs):
            raise TypeError(
                f"per_sample takes {len(self.argument_specs)} tensor(s) beside the dataset (one per "
                f"argument_specs), got {len(arguments)}."
            )
        arguments = tuple(tf.convert_to_tensor(value, spec.dtype) for value, spec in zip(arguments, self.argument_specs))
        numbered = pad_to_replicas(with_sample_indices(dataset), self.strategy.num_replicas_in_sync)
        with _strategy_lock(self.strategy):
            distributed = self.strategy.experimental_distribute_dataset(numbered)
            step = self._step(distributed.element_spec)
            gathered = [step(batch, *arguments) for batch in distributed]
        if not gathered:
            raise ValueError("dataset is empty: there is no sample to gather.")
        return self._in_order(gathered)

    # ----------------------------------------------------------------- the compiled step
    def _step(self, element_spec: Any) -> Any:
        """The step compiled for ``element_spec`` (the distributed dataset's): an input
        signature, so that the arguments' unknown axes stay unknown and one trace serves all."""
        key = repr(element_spec)
        step = self._compiled.get(key)
        if step is None:
            signature = [element_spec, *self.argument_specs]
            step = self._compiled[key] = tf.function(self._step_graph(), input_signature=signature)
        return step

    def _step_graph(self) -> Callable:
        """The step of this loop alone. TensorFlow counts traces per code object (a closure
        shares its code with every other) but per object for a ``functools.partial``: each
        loop traces its own step, which is no retracing to warn about."""

        def step(batch: Any, *arguments: tf.Tensor) -> Any:
            self.trace_count += 1
            per_replica = self.strategy.run(self._replica_per_sample, args=(batch, *arguments))
            local = self.strategy.experimental_local_results(per_replica)
            if not self._single_host:
                return local[0]  # all-gathered: every replica holds the whole step
            return tf.nest.map_structure(lambda *parts: tf.concat(parts, axis=0), *local)

        return functools.partial(step)

    def _replica_per_sample(self, numbered: tuple, *arguments: tf.Tensor) -> tuple:
        indices, batch = numbered
        return self._share(indices, self.step_fn(batch, *arguments))

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


def gather_per_sample(
    strategy: tf.distribute.Strategy | None, step_fn: Callable[[Any], Any], dataset: tf.data.Dataset
) -> Any:
    """:meth:`ReplicaLoop.per_sample` in one call: ``step_fn``'s outputs for all N samples, in order.

    >>> numbers = tf.data.Dataset.range(5).batch(2)
    >>> gather_per_sample(None, lambda batch: batch * 10, numbers).numpy().tolist()
    [0, 10, 20, 30, 40]
    """
    return ReplicaLoop(strategy, step_fn).per_sample(dataset)
