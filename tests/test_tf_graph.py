"""The TensorFlow path is GPU-ready: no host round trip per batch, and the input is prefetched.

Shown on the compiled graphs and by counting, not by timing:

- ``AveragesCam``'s masked pass is one ``tf.function`` call per CAM set whatever N and the
  batch size; its graph consumes a ``PrefetchDataset`` in a loop that runs inside the graph
  (``ReduceDataset``, or a ``While`` over ``IteratorGetNext``), and the number of tensors read
  back to the host (``EagerTensor._numpy``) does not grow with the number of batches.
- ``evaluate_dataset`` runs each batch through the same compiled passes, traced once (the
  ragged last batch included); only the batch's (B,) scores come back to the host.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from tensorflow.python.framework import ops  # noqa: E402

from camavg_tf import AveragesCam  # noqa: E402
from camavg_tf.streaming import evaluate_dataset  # noqa: E402

SIZE, CLASSES = 6, 3


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(11)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(CLASSES, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def sample(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (n, SIZE, SIZE, 3)).astype(np.float32)
    cams = rng.uniform(0, 1, (n, SIZE, SIZE)).astype(np.float32)
    return images, cams, rng.integers(0, CLASSES, n)


class HostReads:
    """Counts the tensors copied back to the host (``numpy()``, ``np.asarray``, ``bool``,
    ``int``, ``float`` of an eager tensor all go through ``_numpy``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = ops._EagerTensorBase._numpy

        def counted(tensor):
            self.count += 1
            return original(tensor)

        monkeypatch.setattr(ops._EagerTensorBase, "_numpy", counted)


class CallCounter:
    """Wraps a compiled function and counts its calls."""

    def __init__(self, function):
        self.function = function
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


def graph_ops(concrete) -> set[str]:
    """Every op type of a concrete function, its nested functions (loop bodies) included."""
    graph_def = concrete.graph.as_graph_def()
    found = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        found |= {node.op for node in function.node_def}
    return found


def dataset_ops(dataset: tf.data.Dataset) -> set[str]:
    """The op types of a dataset's pipeline, read from its serialised graph."""
    serialised = tf.raw_ops.DatasetToGraphV2(input_dataset=dataset._variant_tensor)
    return {node.op for node in tf.compat.v1.GraphDef.FromString(serialised.numpy()).node}


def _passes(metrics):
    """The compiled passes an AveragesCam runs (its own: traced by its adapter)."""
    return metrics.engine.adapter.passes(metrics.engine.options, metrics.engine.inputs)


# --------------------------------------------------------------------------- AveragesCam
def test_masked_pass_loops_over_a_prefetched_pipeline_inside_the_graph(model):
    images, cams, _ = sample(10)
    metrics = AveragesCam(model, images, batch_size=3)
    cam_tensors = metrics.engine.own_cams(cams, False).arrays
    arguments = (tuple(metrics.engine.inputs), tuple(cam_tensors))
    compiled = _passes(metrics)._function("masked", arguments)
    concrete = compiled.get_concrete_function(*arguments, tf.constant(3, tf.int64))
    found = graph_ops(concrete)
    assert "PrefetchDataset" in found
    in_graph_loop = "ReduceDataset" in found or ("While" in found and {"IteratorGetNext", "IteratorGetNextAsOptional"} & found)
    assert in_graph_loop, sorted(found)
    # the whole loop is one op of the graph: no Python iteration over batches
    assert not {"PyFunc", "EagerPyFunc"} & found


@pytest.mark.parametrize("n, batch", [(8, 8), (40, 4), (41, 5)])
def test_one_compiled_call_per_cam_set_whatever_n_and_batch(model, monkeypatch, n, batch):
    from tf_keras_vis.utils.scores import CategoricalScore

    images, cams, labels = sample(n)
    metrics = AveragesCam(model, images, batch_size=batch)
    passes = _passes(metrics)
    counter = CallCounter(passes.masked)
    monkeypatch.setattr(passes, "masked", counter)
    metrics.evaluate(cams, CategoricalScore(list(labels)))
    traces = passes.trace_count  # the masked pass traced (unless another N already did)
    metrics.average_drop(cams, CategoricalScore(list(labels)))  # the cached pass: no call
    metrics.evaluate(cams[::-1].copy(), CategoricalScore(list(labels)))  # new CAMs, same shapes
    assert counter.calls == 2
    assert passes.trace_count == traces  # reused: no trace for another N, batch or CAM set


def test_host_reads_per_evaluate_do_not_grow_with_the_batches(model, monkeypatch):
    """The same number of reads for 1 batch and for 12: none of them is per batch."""
    from tf_keras_vis.utils.scores import CategoricalScore

    reads = []
    for n, batch in ((6, 6), (36, 3)):
        images, cams, labels = sample(n)
        metrics = AveragesCam(model, images, batch_size=batch)
        score = CategoricalScore(list(labels))
        metrics.evaluate(cams, score)  # trace outside the count
        counter = HostReads(monkeypatch)
        metrics.evaluate(cams[::-1].copy(), score)
        reads.append(counter.count)
        monkeypatch.undo()
    assert reads[0] > 0  # the counter sees the (N,) score vectors come back once
    assert reads[0] == reads[1], reads


# --------------------------------------------------------------------------- evaluate_dataset
@pytest.mark.slow
@pytest.mark.parametrize("n, batch", [(7, 7), (50, 4)])
def test_a_stream_runs_the_compiled_passes_once_per_batch_and_traces_them_once(model, monkeypatch, n, batch):
    """Each batch is one call of the plain and one of the masked compiled pass; the ragged
    last batch (50 = 12 * 4 + 2) runs the same traces. Each stream traces its own passes."""
    import camavg_tf.streaming
    from camavg_tf.averages import TensorFlowAdapter

    adapters = []

    class RecordedAdapter(TensorFlowAdapter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            adapters.append(self)

    monkeypatch.setattr(camavg_tf.streaming, "TensorFlowAdapter", RecordedAdapter)
    images, cams, labels = sample(n)
    result = None
    for _ in range(2):
        dataset = tf.data.Dataset.from_tensor_slices((images, cams, labels)).batch(batch)
        result = evaluate_dataset(model, dataset)
    from camavg_core.engine import Options

    assert len(adapters) == 2
    for adapter in adapters:
        # plain and masked, once each, for every batch size of the stream
        assert adapter.passes(Options(), [tf.constant(images)]).trace_count == 2
    assert result.n == n


@pytest.mark.parametrize("n, batch", [(1, 4), (8, 8), (10, 3), (12, 4), (5, 7)])
def test_batch_slices_are_the_batches_in_order(n, batch):
    """The compiled passes' pipeline gives what slicing the arrays in NumPy gives, the ragged
    last batch included."""
    from camavg_tf.passes import batch_slices

    images = np.arange(n * 2 * 2 * 3, dtype=np.float32).reshape(n, 2, 2, 3)
    cams = np.arange(n * 2 * 2, dtype=np.float32).reshape(n, 2, 2) / 100
    got = list(batch_slices((tf.constant(images), tf.constant(cams)), tf.constant(batch, tf.int64)))
    starts = range(0, n, batch)
    assert len(got) == len(starts)
    for (x, c), start in zip(got, starts):
        np.testing.assert_array_equal(x.numpy(), images[start : start + batch])
        np.testing.assert_array_equal(c.numpy(), cams[start : start + batch])
