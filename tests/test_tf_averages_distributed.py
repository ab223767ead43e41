"""AveragesCam on a MirroredStrategy over 2 logical CPU devices equals one device and NumPy.

TensorFlow fixes its devices at first use, so the two-replica run happens in a child process
(this file run as a script) that prints its numbers as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from reference import reference_metrics

pytest.importorskip("tensorflow")

N, BATCH, CLASSES, SHAPE = 37, 8, 4, (6, 6, 3)  # 37 = 4 batches of 8 and one of 5 (3 + 2)
CHILD_TIMEOUT_S = 180


def make_data():
    rng = np.random.default_rng(5)
    inputs = rng.uniform(0, 1, (N, *SHAPE)).astype(np.float32)
    cams = rng.uniform(0, 1, (N, 3, 3)).astype(np.float32)  # smaller: resized in the pass
    targets = rng.integers(0, CLASSES, N)
    kernel = rng.normal(0, 0.3, (int(np.prod(SHAPE)), CLASSES)).astype(np.float32)
    bias = rng.normal(0, 0.1, CLASSES).astype(np.float32)
    return inputs, cams, targets, kernel, bias


def child_main() -> None:
    from two_replicas import dense_softmax, mirrored_over_two_cpus

    strategy = mirrored_over_two_cpus()  # before TensorFlow runs anything
    import tensorflow as tf
    from tf_keras_vis.utils.scores import CategoricalScore

    from camavg_tf import AveragesCam

    inputs, cams, targets, kernel, bias = make_data()

    def build():
        return dense_softmax(SHAPE, CLASSES, kernel, bias)

    with strategy.scope():
        model = build()
    score = CategoricalScore(targets.tolist())
    given = AveragesCam(model, inputs, batch_size=BATCH, strategy=strategy).evaluate(cams, score)
    with strategy.scope():
        in_scope = AveragesCam(model, inputs, batch_size=BATCH)
        found = in_scope.strategy is strategy
        scoped = in_scope.evaluate(cams, score)
    single = AveragesCam(build(), inputs, batch_size=BATCH).evaluate(cams, score)

    from camavg_tf import evaluate_dataset

    stream = tf.data.Dataset.from_tensor_slices((inputs, cams, targets)).batch(BATCH)
    streamed = evaluate_dataset(model, stream, strategy=strategy, keep_vectors=True)
    try:
        evaluate_dataset(model, stream.map(lambda x, c, t: (x, c * 3.0, t)), strategy=strategy)
        range_error = ""
    except ValueError as error:
        range_error = str(error)
    # what outlives a call on the distributed path (its compiled passes) must not reach a number
    distributed = AveragesCam(model, inputs, batch_size=BATCH, strategy=strategy)
    changing = cams.copy()
    distributed.evaluate(changing, score)
    changing[...] = cams[::-1]  # the same object, changed in place
    in_place = distributed.evaluate(changing, score)

    class TargetsFromAttribute:
        def __init__(self, labels):
            self.labels = labels

        def __call__(self, outputs):
            return tf.gather(outputs, self.labels, batch_dims=1)

    reading = TargetsFromAttribute(targets)
    distributed.evaluate(cams, reading)
    reading.labels = (targets + 1) % CLASSES
    new_targets = distributed.evaluate(cams, reading)

    import threading

    own_sets = [np.roll(cams, shift, axis=0) for shift in range(4)]
    threaded, thread_errors = [[] for _ in own_sets], []

    def worker(index):
        try:
            for _ in range(3):
                threaded[index].append(distributed.evaluate(own_sets[index], score).o_c.tolist())
        except Exception as error:  # a thread's exception would only be printed: the parent fails on it
            thread_errors.append(f"worker {index}: {error!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(own_sets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({
        "in_place_o_c": in_place.o_c.tolist(),
        "new_targets_o_c": new_targets.o_c.tolist(),
        "threaded_o_c": threaded,
        "thread_errors": thread_errors,
        "range_error": range_error,
        "replicas": strategy.num_replicas_in_sync,
        "found_scope": found,
        "results": {name: {**r.to_dict(), "o_c": r.o_c.tolist(), "y_c": r.y_c.tolist()}
                    for name, r in (("given", given), ("scoped", scoped), ("single", single), ("streamed", streamed))},
    }))


@pytest.fixture(scope="module")
def child():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def numpy_oracle(cams=None, targets=None):
    """The model is one softmax layer of known weights: NumPy computes its scores alone."""
    inputs, data_cams, data_targets, kernel, bias = make_data()
    cams = data_cams if cams is None else cams
    targets = data_targets if targets is None else targets
    import tensorflow as tf

    full = tf.image.resize(cams[..., None], SHAPE[:2], method="bilinear").numpy()

    def scores(x):
        logits = x.reshape(N, -1).astype(np.float64) @ kernel + bias
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return p[np.arange(N), targets]

    y, o = scores(inputs), scores(inputs * full)
    return y, o, reference_metrics(y, o)


@pytest.mark.slow
def test_two_replicas_and_the_scope_is_picked_up(child):
    assert child["replicas"] == 2
    assert child["found_scope"] is True


@pytest.mark.slow
def test_streamed_cams_outside_zero_one_are_refused_on_replicas_too(child):
    assert "[0, 1]" in child["range_error"] and "normalize=True" in child["range_error"]


@pytest.mark.slow
def test_distributed_numbers_follow_cams_changed_in_place_and_score_functions_that_changed(child):
    _, cams, targets, _, _ = make_data()
    np.testing.assert_allclose(child["in_place_o_c"], numpy_oracle(cams=cams[::-1])[1], atol=1e-5)
    np.testing.assert_allclose(child["new_targets_o_c"], numpy_oracle(targets=(targets + 1) % CLASSES)[1], atol=1e-5)


@pytest.mark.slow
def test_threads_sharing_a_distributed_averagescam_get_their_own_numbers(child):
    _, cams, _, _, _ = make_data()
    assert child["thread_errors"] == []
    assert [len(runs) for runs in child["threaded_o_c"]] == [3, 3, 3, 3]
    for shift, runs in enumerate(child["threaded_o_c"]):
        expected = numpy_oracle(cams=np.roll(cams, shift, axis=0))[1]
        for o_c in runs:
            np.testing.assert_allclose(o_c, expected, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["given", "scoped", "streamed"])
def test_mirrored_equals_single_device_and_numpy(child, name):
    y, o, metrics = numpy_oracle()
    got, single = child["results"][name], child["results"]["single"]
    assert got["n"] == N and got["skipped"] == 0
    np.testing.assert_allclose(got["y_c"], single["y_c"], atol=1e-6)
    np.testing.assert_allclose(got["o_c"], single["o_c"], atol=1e-6)
    np.testing.assert_allclose(got["y_c"], y, atol=1e-5)
    np.testing.assert_allclose(got["o_c"], o, atol=1e-5)
    for field, value in metrics.items():
        assert got[field] == pytest.approx(value, abs=1e-3)
        assert got[field] == pytest.approx(single[field], abs=1e-4)


if __name__ == "__main__":
    child_main()
