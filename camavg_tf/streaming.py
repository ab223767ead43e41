r"""``evaluate_dataset``: the three metrics over a stream of batches, in memory independent of N.

Each element of the stream is one batch ``(inputs, cams, targets)``: a ``tf.data.Dataset`` or
any iterable (a generator, a list, a Keras ``PyDataset``). Every batch runs through the same
engine as ``AveragesCam`` (:mod:`camavg_core.stream`): the same checks and messages, one
compiled step that masks, runs the model and scores, and only the batch's sums kept, so the
result equals ``AveragesCam`` on the concatenated data.

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

from typing import Any, Callable, Iterable, Iterator

import tensorflow as tf

from camavg_core import validation
from camavg_core.engine import Options
from camavg_core.state import Result
from camavg_core.stream import Checkpoint, check_first_batch, evaluate_stream, skip_counted
from camavg_tf.averages import TensorFlowAdapter
from camavg_tf.distribute import current_strategy


def reshuffles(dataset: tf.data.Dataset) -> bool:
    """Whether the dataset's graph holds a shuffle with ``reshuffle_each_iteration=True``: such
    a pipeline gives another order on every pass, so no pass can skip the batches another one
    counted. Read from the graph, so it is exact and costs no element."""
    from tensorflow.core.framework import graph_pb2

    serialized = dataset._as_serialized_graph(
        external_state_policy=tf.data.experimental.ExternalStatePolicy.IGNORE
    )
    graph = graph_pb2.GraphDef.FromString(serialized.numpy())
    nodes = list(graph.node) + [node for function in graph.library.function for node in function.node_def]
    return any(
        "Shuffle" in node.op
        and "reshuffle_each_iteration" in node.attr
        and node.attr["reshuffle_each_iteration"].b
        for node in nodes
    )


def _skip(batches: Iterable, done: Checkpoint) -> Iterator:
    """Past the checkpoint's batches: ``Dataset.skip`` for a dataset (not brought to the host),
    read and dropped for any other iterable; a dataset is prefetched.

    A dataset is checked first: no reshuffling in its graph, at least as many batches as were
    counted (when its cardinality is known), and the same first batch (one batch read again)."""
    if not isinstance(batches, tf.data.Dataset):
        return skip_counted(iter(batches), done)
    if done.batches:
        if reshuffles(batches):
            raise ValueError(validation.resume_reshuffling_dataset())
        cardinality = int(batches.cardinality())
        if 0 <= cardinality < done.batches:
            raise ValueError(validation.resume_source_too_short(done.batches, cardinality))
        for first in batches.take(1):
            check_first_batch(first, done)
    return iter(batches.skip(done.batches).prefetch(tf.data.AUTOTUNE))


def _total(batches: Any) -> int | None:
    if isinstance(batches, tf.data.Dataset):
        cardinality = int(batches.cardinality())
        return cardinality if cardinality >= 0 else None
    try:
        return len(batches)
    except TypeError:
        return None


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
    preprocess: Callable | None = None,
    strategy: Any = None,
    resume: Checkpoint | None = None,
    metrics: Any = None,
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
            Or a callable ``score(outputs, targets) -> (B,)``.
        activation, nan_policy, level, data_format, normalize, preprocess: as for
            ``AveragesCam``.
        keep_vectors: also return the (N,) score vectors ``y_c`` and ``o_c`` (memory then
            grows with N; without them it does not).
        progress: show a tqdm progress bar over the batches.
        strategy: a ``tf.distribute.Strategy`` to spread every batch over its replicas; by
            default the one whose ``scope()`` is open, if any.
        resume: ``error.camavg_checkpoint`` of a stream that stopped: its batches are skipped
            (``Dataset.skip`` for a dataset) and its sums are the start. ``dataset`` must start
            again from its first batch (a re-created generator, a dataset that does not
            reshuffle); one that cannot is refused (see docs/streams.md).

    Returns:
        A :class:`~camavg_core.state.Result`; ``y_c`` and ``o_c`` are None unless
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
    if not callable(model):
        raise TypeError(f"model must be a Keras model (callable), got {type(model).__name__}.")
    options = Options(activation, data_format, normalize, False, preprocess)
    adapter = TensorFlowAdapter(model, current_strategy(strategy))
    return evaluate_stream(
        adapter, dataset,
        score=score, options=options, nan_policy=nan_policy, level=level, keep_vectors=keep_vectors,
        progress=progress, resume=resume, total=_total(dataset), skip=_skip, metrics=metrics,
    )
