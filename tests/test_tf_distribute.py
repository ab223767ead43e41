"""camavg_tf.distribute and the Keras metrics under MirroredStrategy over 2 logical CPU devices.

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

from camavg_tf.distribute import (  # noqa: E402
    DistributedRun,
    ReplicaLoop,
    check_distributed_run,
    current_strategy,
    gather_per_sample,
    reduce_metric_state,
    with_sample_indices,
)
from reference import EPS, reference_metrics, reference_terms  # noqa: E402

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
    """The shared reference's three averages, and the sums of squares the state also holds."""
    terms = reference_terms(y, o)
    return {
        **reference_metrics(y, o),
        "drop_sq_sum": float((terms["average_drop"] ** 2).sum()),
        "gain_sq_sum": float((terms["average_gain"] ** 2).sum()),
    }


def assert_matches_numpy(report: dict, n: int) -> None:
    y, o, _ = numpy_scores(n)
    expected = numpy_metrics(y, o)
    for name in ("average_drop", "average_increase", "average_gain"):
        assert report[name] == pytest.approx(expected[name], abs=1e-4), name
    assert report["drop_sq_sum"] == pytest.approx(expected["drop_sq_sum"], rel=1e-5)
    assert report["gain_sq_sum"] == pytest.approx(expected["gain_sq_sum"], rel=1e-5)
    assert report["n"] == n and report["skipped"] == 0


def summary_of(run: DistributedRun) -> dict:
    result = run.state.result()
    return {
        "average_drop": result.average_drop,
        "average_increase": result.average_increase,
        "average_gain": result.average_gain,
        "drop_sq_sum": run.state.drop_sq_sum,
        "gain_sq_sum": run.state.gain_sq_sum,
        "n": run.state.n,
        "skipped": run.state.skipped,
    }


# --------------------------------------------------------------------------- the child process
def child_main() -> None:
    """Two logical CPU devices, MirroredStrategy over both, every path; JSON on stdout."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
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
        kept = loop.metric_state(dataset(n), keep_vectors=True)
        entry["kept"] = summary_of(kept)
        entry["y_c"], entry["o_c"] = kept.y_c.tolist(), kept.o_c.tolist()
        entry["streamed"] = summary_of(loop_in_scope.metric_state(dataset(n)))
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
@pytest.mark.parametrize("path", ["kept", "streamed"])
def test_mirrored_metric_state_equals_numpy(mirrored, n, path):
    assert_matches_numpy(mirrored[str(n)][path], n)


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_mirrored_vectors_come_back_in_dataset_order(mirrored, n):
    y, o, probabilities = numpy_scores(n)
    entry = mirrored[str(n)]
    np.testing.assert_allclose(entry["y_c"], y, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(entry["o_c"], o, rtol=1e-5, atol=1e-7)
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
    single = ReplicaLoop(None, score_step(make_model())).metric_state(dataset(n), keep_vectors=True)
    entry = mirrored[str(n)]
    for name, value in summary_of(single).items():
        assert entry["kept"][name] == pytest.approx(value, rel=1e-6, abs=1e-9), name
    np.testing.assert_allclose(entry["o_c"], single.o_c, rtol=1e-6)


# --------------------------------------------------------------------------- one device, here
def test_single_device_loop_equals_numpy():
    n = SIZES[0]
    run = reduce_metric_state(None, score_step(make_model()), dataset(n), keep_vectors=True)
    assert_matches_numpy(summary_of(run), n)
    y, o, _ = numpy_scores(n)
    np.testing.assert_allclose(run.y_c, y, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(run.o_c, o, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_one_device_strategy_equals_numpy_and_loop_is_reusable():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    loop = ReplicaLoop(strategy, score_step(make_model()))
    for n in SIZES:  # the same compiled loop, two datasets
        run = loop.metric_state(dataset(n))
        assert run.y_c is None and run.o_c is None
        assert_matches_numpy(summary_of(run), n)


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
    y = np.array([0.8, np.nan, 0.5, 0.4])
    o = np.array([0.2, 0.3, np.inf, 0.6])
    pairs = tf.data.Dataset.from_tensor_slices((y, o)).batch(3)
    streamed = reduce_metric_state(None, lambda batch: batch, pairs)
    # only samples 0 and 3 are finite: drop (0.6 / 0.8 + 0) / 2, increase 1 of 2
    assert streamed.state.n == 2 and streamed.state.skipped == 2
    assert streamed.state.result().average_drop == pytest.approx(100 * (0.6 / (0.8 + EPS)) / 2)
    assert streamed.state.result().average_increase == pytest.approx(50.0)
    check_distributed_run(streamed, "omit")
    with pytest.raises(ValueError, match="2 sample\\(s\\) have a non-finite score"):
        check_distributed_run(streamed, "raise")
    kept = reduce_metric_state(None, lambda batch: batch, pairs, keep_vectors=True)
    with pytest.raises(ValueError, match=r"Y_c\[1\] is nan"):
        check_distributed_run(kept, "raise")


def test_logits_are_counted_and_rejected():
    y, o = np.array([2.5, -1.0, 0.3]), np.array([0.1, 0.2, 0.3])
    pairs = tf.data.Dataset.from_tensor_slices((y, o)).batch(2)
    run = reduce_metric_state(None, lambda batch: batch, pairs)
    assert (run.below_zero, run.above_one) == (1, 1)
    with pytest.raises(ValueError, match="logits"):
        check_distributed_run(run, "raise")


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
        reduce_metric_state(None, lambda batch: batch, [(np.ones(2), np.ones(2))])
    triples = tf.data.Dataset.from_tensor_slices((np.ones(2), np.ones(2), np.ones(2))).batch(2)
    with pytest.raises(ValueError, match=r"step_fn must return the pair \(y_c, o_c\)"):
        reduce_metric_state(None, lambda batch: batch, triples)
    matrices = tf.data.Dataset.from_tensor_slices((np.ones((2, 3)), np.ones((2, 3)))).batch(2)
    with pytest.raises(ValueError, match=r"must be a vector of one score per sample"):
        reduce_metric_state(None, lambda batch: batch, matrices)


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
