"""camavg_tf.distribute, AveragesCam(strategy=...), evaluate_dataset and the Keras metrics under
MirroredStrategy over 2 logical CPU devices.

TensorFlow fixes its devices when it first initialises them, and pytest has done that by the
time this module runs, so the two-replica part runs in a child process: this file, run as a
script, splits the CPU into two logical devices, evaluates, and prints its numbers as JSON. The
tests compare them with NumPy on the same data (the model is a softmax layer whose weights are
known, so NumPy computes its scores without TensorFlow) and with the single-device numbers
computed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from camavg_core.scoring import CategoricalScore  # noqa: E402
from camavg_tf.distribute import (  # noqa: E402
    ReplicaLoop,
    current_strategy,
    gather_per_sample,
    with_sample_indices,
)
from reference import reference_metrics, reference_terms  # noqa: E402

BATCH = 8
CLASSES = 4
SHAPE = (5, 5, 3)
# 37 = 4 full batches of 8 and one of 5 (split 3 + 2 over two replicas);
# 17 = 2 full batches and one of 1, so one replica gets an empty batch.
SIZES = (37, 17)
CHILD_TIMEOUT_S = 150


# --------------------------------------------------------------------------- shared data
def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + n)
    inputs = rng.uniform(0.0, 1.0, (n, *SHAPE)).astype(np.float32)
    cams = rng.uniform(0.0, 1.0, (n, *SHAPE[:2])).astype(np.float32)
    targets = rng.integers(0, CLASSES, n).astype(np.int32)
    return inputs, cams, targets


def model_weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    kernel = rng.normal(0.0, 0.3, (int(np.prod(SHAPE)), CLASSES)).astype(np.float32)
    bias = rng.normal(0.0, 0.1, CLASSES).astype(np.float32)
    return kernel, bias


def make_model():
    model = keras.Sequential(
        [keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(CLASSES, activation="softmax")]
    )
    model.layers[-1].set_weights(list(model_weights()))
    return model


def score_step(model):
    """A user's step: the target's probability on the inputs and on the CAM-masked inputs."""

    def step(batch):
        inputs, cams, targets = batch
        masked = inputs * cams[..., None]
        y_c = tf.gather(model(inputs), targets, axis=1, batch_dims=1)
        o_c = tf.gather(model(masked), targets, axis=1, batch_dims=1)
        return y_c, o_c

    return step


def dataset(n: int):
    return tf.data.Dataset.from_tensor_slices(make_data(n)).batch(BATCH)


# --------------------------------------------------------------------------- NumPy reference
def numpy_scores(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y_c, O_c and the probabilities, from the known weights, without TensorFlow."""
    inputs, cams, targets = make_data(n)
    kernel, bias = (w.astype(np.float64) for w in model_weights())

    def probabilities(x):
        logits = x.reshape(len(x), -1).astype(np.float64) @ kernel + bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    plain = probabilities(inputs)
    masked = probabilities(inputs * cams[..., None])
    rows = np.arange(n)
    return plain[rows, targets], masked[rows, targets], masked


def numpy_metrics(y: np.ndarray, o: np.ndarray) -> dict[str, float]:
    """The shared reference's three averages."""
    return reference_metrics(y, o)


def in_memory_intervals(y: np.ndarray, o: np.ndarray) -> dict:
    """The default intervals of the in-memory call on NumPy's scores: they read n and the sums
    of the terms, their squares and their cubes, so they check every moment the reduction keeps."""
    from camavg_core import summarize

    return {name: list(interval) for name, interval in summarize(y, o).ci.items()}


def assert_matches_numpy(report: dict, n: int) -> None:
    y, o, _ = numpy_scores(n)
    expected = numpy_metrics(y, o)
    for name in ("average_drop", "average_increase", "average_gain"):
        assert report[name] == pytest.approx(expected[name], abs=1e-4), name
    for name, interval in in_memory_intervals(y, o).items():
        assert report["ci"][name] == pytest.approx(interval, abs=1e-3), name
    assert report["n"] == n and report["skipped"] == 0
    if report.get("y_c") is not None:  # in the inputs' order, whatever replica took which sample
        np.testing.assert_allclose(report["y_c"], y, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(report["o_c"], o, rtol=1e-5, atol=1e-7)


def summary_of(result) -> dict:
    """What a :class:`~camavg_core.state.Result` says, as JSON."""
    return {
        "average_drop": result.average_drop,
        "average_increase": result.average_increase,
        "average_gain": result.average_gain,
        "ci": {name: list(interval) for name, interval in result.ci.items()},
        "n": result.n,
        "skipped": result.skipped,
        "y_c": None if result.y_c is None else result.y_c.tolist(),
        "o_c": None if result.o_c is None else result.o_c.tolist(),
    }


def averages_cam(n: int, model, **options):
    """``AveragesCam`` on the data of ``dataset(n)``, and its result."""
    from camavg_tf import AveragesCam

    inputs, cams, targets = make_data(n)
    metrics = AveragesCam(model, inputs, batch_size=BATCH, **options)
    return metrics, metrics.evaluate(cams, CategoricalScore(targets))


# --------------------------------------------------------------------------- the child process
def child_main() -> None:
    """Two logical CPU devices, MirroredStrategy over both, every path; JSON on stdout."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from camavg_tf import evaluate_dataset
    from camavg_tf.metrics import AverageDrop, AverageGain, AverageIncrease

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = make_model()
    step = score_step(model)
    report: dict = {"replicas": strategy.num_replicas_in_sync}
    with strategy.scope():
        report["strategy_in_scope"] = current_strategy() is strategy
        loop_in_scope = ReplicaLoop(None, step)  # picks the strategy up from the scope
    report["loop_replicas"] = loop_in_scope.strategy.num_replicas_in_sync
    loop = ReplicaLoop(strategy, step)
    for n in SIZES:
        entry: dict = {}
        entry["given"] = summary_of(averages_cam(n, model, strategy=strategy)[1])
        with strategy.scope():  # AveragesCam picks the strategy up from the scope
            scoped, result = averages_cam(n, model)
        entry["in_scope"] = {**summary_of(result), "found": scoped.strategy is strategy}
        entry["streamed"] = summary_of(evaluate_dataset(model, dataset(n), strategy=strategy))
        entry["user_step"] = [values.numpy().tolist() for values in loop.per_sample(dataset(n))]
        entry["user_step_in_scope"] = [values.numpy().tolist() for values in loop_in_scope.per_sample(dataset(n))]
        entry["probabilities"] = gather_per_sample(
            strategy, lambda batch: model(batch[0] * batch[1][..., None]), dataset(n)
        ).numpy().tolist()
        entry["replica_of_sample"] = gather_per_sample(strategy, replica_ids, dataset(n)).numpy().tolist()
        last = list(strategy.experimental_distribute_dataset(dataset(n)))[-1]
        entry["last_batch_split"] = [int(t.shape[0]) for t in strategy.experimental_local_results(last[2])]
        with strategy.scope():
            metrics = [AverageDrop(), AverageIncrease(), AverageGain()]

        @tf.function
        def evaluate_step(batch):
            def on_replica(replica_batch):
                y_c, o_c = step(replica_batch)
                for metric in metrics:
                    metric.update_state(y_c, o_c)

            strategy.run(on_replica, args=(batch,))

        for batch in strategy.experimental_distribute_dataset(dataset(n)):
            evaluate_step(batch)
        entry["keras_metrics"] = [float(metric.result()) for metric in metrics]
        entry["keras_counts"] = [float(tf.convert_to_tensor(metric.count)) for metric in metrics]
        entry["keras_standard_error"] = float(metrics[0].standard_error())
        report[str(n)] = entry
    print("CHILD-REPORT " + json.dumps(report), flush=True)


def replica_ids(batch):
    context = tf.distribute.get_replica_context()
    return tf.fill(tf.shape(batch[2]), context.replica_id_in_sync_group)


@pytest.fixture(scope="module")
def mirrored() -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    try:
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child"],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            env=env,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills the child before raising
        pytest.fail(f"the MirroredStrategy child ran past {CHILD_TIMEOUT_S} s:\n{(exc.stderr or '')[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("CHILD-REPORT ")]
    assert done.returncode == 0 and lines, f"child failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(lines[-1][len("CHILD-REPORT ") :])


# --------------------------------------------------------------------------- two replicas
@pytest.mark.slow
def test_child_ran_on_two_replicas_and_found_the_strategy_in_scope(mirrored):
    assert mirrored["replicas"] == 2
    assert mirrored["strategy_in_scope"] is True
    assert mirrored["loop_replicas"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_last_batch_is_uneven_over_the_replicas(mirrored, n):
    split = mirrored[str(n)]["last_batch_split"]
    assert sum(split) == n % BATCH and len(split) == 2
    assert len(set(split)) == 2  # 3 + 2 for n=37, 1 + 0 for n=17


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_every_sample_is_handled_by_one_of_both_replicas(mirrored, n):
    replica_of = np.array(mirrored[str(n)]["replica_of_sample"])
    assert replica_of.shape == (n,)
    assert set(replica_of.tolist()) == {0, 1}
    full = (n // BATCH) * BATCH
    # in a full batch of 8 each replica takes a half: samples 0-3 on replica 0, 4-7 on 1
    np.testing.assert_array_equal(replica_of[:full], (np.arange(full) % BATCH) // (BATCH // 2))


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("path", ["given", "in_scope", "streamed"])
def test_mirrored_averages_cam_and_stream_equal_numpy(mirrored, n, path):
    entry = mirrored[str(n)][path]
    assert_matches_numpy(entry, n)
    assert entry.get("found", True) is True
    assert (entry["y_c"] is None) == (path == "streamed")  # a stream keeps no vectors unless asked


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_mirrored_per_sample_values_come_back_in_dataset_order(mirrored, n):
    y, o, probabilities = numpy_scores(n)
    entry = mirrored[str(n)]
    for path in ("user_step", "user_step_in_scope"):
        np.testing.assert_allclose(entry[path][0], y, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(entry[path][1], o, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(entry["probabilities"], probabilities, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_keras_metrics_in_a_mirrored_custom_loop_equal_numpy(mirrored, n):
    y, o, _ = numpy_scores(n)
    expected = numpy_metrics(y, o)
    entry = mirrored[str(n)]
    drop, increase, gain = entry["keras_metrics"]
    assert drop == pytest.approx(expected["average_drop"], abs=1e-3)
    assert increase == pytest.approx(expected["average_increase"], abs=1e-3)
    assert gain == pytest.approx(expected["average_gain"], abs=1e-3)
    assert entry["keras_counts"] == [n, n, n]
    drop_terms = reference_terms(y, o)["average_drop"]
    assert entry["keras_standard_error"] == pytest.approx(
        100.0 * drop_terms.std(ddof=1) / np.sqrt(n), rel=1e-4
    )


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_mirrored_equals_single_device(mirrored, n):
    single = summary_of(averages_cam(n, make_model())[1])
    entry = mirrored[str(n)]["given"]
    for name in ("average_drop", "average_increase", "average_gain", "n", "skipped"):
        assert entry[name] == pytest.approx(single[name], rel=1e-6, abs=1e-9), name
    for name, interval in single["ci"].items():
        assert entry["ci"][name] == pytest.approx(interval, rel=1e-6, abs=1e-9), name
    np.testing.assert_allclose(entry["o_c"], single["o_c"], rtol=1e-6)


# --------------------------------------------------------------------------- one device, here
def test_single_device_loop_and_averages_cam_equal_numpy():
    n = SIZES[0]
    y, o, _ = numpy_scores(n)
    y_c, o_c = ReplicaLoop(None, score_step(make_model())).per_sample(dataset(n))
    np.testing.assert_allclose(y_c.numpy(), y, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(o_c.numpy(), o, rtol=1e-5, atol=1e-7)
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    metrics, result = averages_cam(n, make_model(), strategy=one_device)
    assert {type(p).__name__ for p in metrics.engine.adapter._passes.values()} == {"DistributedPasses"}
    assert_matches_numpy(summary_of(result), n)


@pytest.mark.slow
def test_one_device_strategy_loop_is_reusable_without_retracing():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    loop = ReplicaLoop(strategy, score_step(make_model()))
    for n in SIZES:  # the same compiled loop, two datasets of other sizes
        y, o, _ = numpy_scores(n)
        y_c, o_c = loop.per_sample(dataset(n))
        np.testing.assert_allclose(y_c.numpy(), y, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(o_c.numpy(), o, rtol=1e-5, atol=1e-7)
    assert loop.trace_count == 1


def test_batches_of_varying_sizes_are_numbered_and_ordered():
    values = np.arange(10, dtype=np.float64)
    ragged = tf.data.Dataset.from_tensor_slices(values).batch(3).concatenate(
        tf.data.Dataset.from_tensor_slices(values + 10).batch(4)
    )
    numbered = [indices.numpy().tolist() for indices, _ in with_sample_indices(ragged)]
    assert numbered == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9], [10, 11, 12, 13], [14, 15, 16, 17], [18, 19]]
    gathered = gather_per_sample(None, lambda batch: batch * 2.0, ragged)
    np.testing.assert_array_equal(gathered.numpy(), 2.0 * np.concatenate([values, values + 10]))


def test_nested_per_sample_outputs_keep_their_structure():
    data = tf.data.Dataset.from_tensor_slices(np.arange(6, dtype=np.float32).reshape(3, 2)).batch(2)
    out = gather_per_sample(None, lambda batch: {"row": batch, "total": tf.reduce_sum(batch, axis=1)}, data)
    np.testing.assert_array_equal(out["row"].numpy(), [[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(out["total"].numpy(), [1, 5, 9])


@pytest.mark.slow
def test_nonfinite_scores_are_skipped_and_counted_then_checked():
    """A score function that gives NaN for sample 1 and infinity for sample 2 (on the inputs and
    on the masked inputs), under a strategy: the host's checks see the gathered scores."""
    n = 5
    inputs, cams, targets = make_data(n)
    y, o, _ = numpy_scores(n)
    spoil = tf.constant([0.0, np.nan, np.inf, 0.0, 0.0], tf.float32)

    def score(outputs):
        return tf.gather(outputs, targets, axis=1, batch_dims=1) + spoil

    from camavg_tf import AveragesCam

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    omitted = AveragesCam(make_model(), inputs, nan_policy="omit", strategy=strategy).evaluate(cams, score)
    kept = np.array([0, 3, 4])
    assert (omitted.n, omitted.skipped) == (3, 2)
    expected = reference_metrics(y[kept], o[kept])
    for name in ("average_drop", "average_increase", "average_gain"):
        assert getattr(omitted, name) == pytest.approx(expected[name], abs=1e-4), name
    with pytest.raises(ValueError, match=r"non-finite score \(nan\) for sample 1\..*nan_policy='omit'"):
        AveragesCam(make_model(), inputs, strategy=strategy).evaluate(cams, score)


def test_logits_are_rejected_under_a_strategy():
    logits = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(CLASSES)])
    logits.layers[-1].set_weights([w * 20.0 for w in model_weights()])
    with pytest.raises(ValueError, match="linear activation"):
        averages_cam(7, logits, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))


def test_current_strategy_picks_given_then_scope_then_none():
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0"])
    other = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert current_strategy() is None
    assert current_strategy(other) is other
    with mirrored.scope():
        assert current_strategy() is mirrored
        assert current_strategy(other) is other
        inside = mirrored.run(lambda: tf.constant(current_strategy() is None))
        assert bool(mirrored.experimental_local_results(inside)[0])  # replica context: None
    assert current_strategy() is None


def test_bad_arguments_get_clear_errors():
    with pytest.raises(TypeError, match="tf.distribute.Strategy"):
        current_strategy("mirrored")
    with pytest.raises(TypeError, match="step_fn must be callable"):
        ReplicaLoop(None, "not a function")
    with pytest.raises(TypeError, match="from_tensor_slices"):
        gather_per_sample(None, lambda batch: batch, [(np.ones(2), np.ones(2))])
    with pytest.raises(ValueError, match="dataset is empty"):
        gather_per_sample(None, lambda batch: batch, tf.data.Dataset.from_tensor_slices(np.ones(2)).take(0).batch(2))
    scaled = ReplicaLoop(None, lambda batch, scale: batch * scale, [tf.TensorSpec((), tf.float32)])
    with pytest.raises(TypeError, match=r"takes 1 tensor\(s\) beside the dataset.*got 0"):
        scaled.per_sample(tf.data.Dataset.from_tensor_slices(np.ones(2, np.float32)).batch(2))


def test_repeated_samples_are_refused_when_ordering():
    loop = ReplicaLoop(None, lambda batch: batch)
    twice = [  # (indices, values) of two steps: sample 1 comes twice
        (tf.constant([0, 1], tf.int64), tf.constant([1.0, 2.0])),
        (tf.constant([1], tf.int64), tf.constant([3.0])),
    ]
    with pytest.raises(ValueError, match="exactly once"):
        loop._in_order(twice)


if __name__ == "__main__" and "--child" in sys.argv:
    child_main()
