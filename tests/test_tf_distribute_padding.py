"""No replica gets an empty batch (issue 20, item 6): a conv model under MirroredStrategy on 2
logical CPUs with oneDNN on, N = 1 and N = 33 in batches of 16 (a last batch of one sample),
equals NumPy; the padding that keeps every replica busy never enters the numbers.

On eb5fb28 every path here crashed with a raw InvalidArgumentError (oneDNN's convolution on the
empty batch of the second replica). TensorFlow fixes its devices at first use, so the run is in
a child process (this file as a script) that prints its numbers as JSON.

Oracle: the model's forward pass written in NumPy from its known weights (a 3x3 valid
convolution, ReLU, global average pooling, a softmax layer), and tests/reference.py.
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

SIZES, BATCH, CLASSES, SHAPE, FILTERS = (1, 33), 16, 3, (6, 6, 2), 4
CHILD_TIMEOUT_S = 240
METRICS = ("average_drop", "average_increase", "average_gain")


def make_data(n: int):
    rng = np.random.default_rng(100 + n)
    inputs = rng.uniform(0, 1, (n, *SHAPE)).astype(np.float32)
    cams = rng.uniform(0, 1, (n, *SHAPE[:2])).astype(np.float32)
    targets = rng.integers(0, CLASSES, n)
    return inputs, cams, targets


def weights():
    rng = np.random.default_rng(7)
    kernel = rng.normal(0, 0.5, (3, 3, SHAPE[2], FILTERS)).astype(np.float32)
    conv_bias = rng.normal(0, 0.1, FILTERS).astype(np.float32)
    dense = rng.normal(0, 1.0, (FILTERS, CLASSES)).astype(np.float32)
    dense_bias = rng.normal(0, 0.1, CLASSES).astype(np.float32)
    return kernel, conv_bias, dense, dense_bias


def numpy_probabilities(x: np.ndarray) -> np.ndarray:
    kernel, conv_bias, dense, dense_bias = (w.astype(np.float64) for w in weights())
    patches = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), (3, 3), axis=(1, 2))
    # patches: (n, H-2, W-2, C, 3, 3) -> features (n, H-2, W-2, FILTERS)
    features = np.maximum(np.einsum("nhwcij,ijcf->nhwf", patches, kernel) + conv_bias, 0.0)
    logits = features.mean(axis=(1, 2)) @ dense + dense_bias
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_scores(n: int):
    inputs, cams, targets = make_data(n)
    rows = np.arange(n)
    return numpy_probabilities(inputs)[rows, targets], numpy_probabilities(inputs * cams[..., None])[rows, targets]


def child_main() -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tf_keras_vis.utils.scores import CategoricalScore

    from camavg_tf import AveragesCam, evaluate_dataset
    from camavg_tf.distribute import ReplicaLoop

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    kernel, conv_bias, dense, dense_bias = weights()
    with strategy.scope():
        x = keras.Input(SHAPE)
        conv = keras.layers.Conv2D(FILTERS, 3, activation="relu")
        head = keras.layers.Dense(CLASSES, activation="softmax")
        model = keras.Model(x, head(keras.layers.GlobalAveragePooling2D()(conv(x))))
        conv.set_weights([kernel, conv_bias])
        head.set_weights([dense, dense_bias])

    def user_step(batch):
        inputs, cams, targets = batch
        y_c = tf.gather(model(inputs), targets, batch_dims=1)
        o_c = tf.gather(model(inputs * cams[..., None]), targets, batch_dims=1)
        return y_c, o_c

    loop = ReplicaLoop(strategy, user_step)
    report = {"replicas": strategy.num_replicas_in_sync, "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}
    for n in SIZES:
        inputs, cams, targets = make_data(n)
        batches = tf.data.Dataset.from_tensor_slices((inputs, cams, targets)).batch(BATCH)
        entry = {}
        for name, run in (
            ("averages_cam", lambda: AveragesCam(model, inputs, batch_size=BATCH, strategy=strategy).evaluate(
                cams, CategoricalScore(targets.tolist()))),
            ("stream", lambda: evaluate_dataset(model, batches, strategy=strategy, keep_vectors=True)),
        ):
            try:
                result = run()
                entry[name] = {**{m: getattr(result, m) for m in METRICS}, "n": result.n,
                               "y_c": result.y_c.tolist(), "o_c": result.o_c.tolist()}
            except Exception as error:  # reported, and the test names it
                entry[name] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
        for name, run in (
            ("stream_sums", lambda: evaluate_dataset(model, batches, strategy=strategy)),
            ("loop", lambda: loop.per_sample(batches)),
        ):
            try:
                result = run()
                if name == "loop":  # the user's step, gathered: the vectors alone, in order
                    entry[name] = {"y_c": result[0].numpy().tolist(), "o_c": result[1].numpy().tolist()}
                else:
                    entry[name] = {**{m: getattr(result, m) for m in METRICS}, "n": result.n, "skipped": result.skipped}
            except Exception as error:
                entry[name] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
        report[str(n)] = entry
    print("CHILD-REPORT " + json.dumps(report), flush=True)


pytestmark = pytest.mark.slow  # a child process with two logical devices


@pytest.fixture(scope="module")
def child() -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", TF_ENABLE_ONEDNN_OPTS="1")
    try:
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child"], capture_output=True, text=True,
            timeout=CHILD_TIMEOUT_S, env=env, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills the child before raising
        pytest.fail(f"the MirroredStrategy child ran past {CHILD_TIMEOUT_S} s:\n{(exc.stderr or '')[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("CHILD-REPORT ")]
    assert done.returncode == 0 and lines, f"child failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(lines[-1][len("CHILD-REPORT "):])


def test_two_replicas_with_onednn_on(child):
    assert child["replicas"] == 2 and child["onednn"] == "1"


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("path", ["averages_cam", "stream", "stream_sums", "loop"])
def test_a_last_batch_smaller_than_the_replicas_gives_the_numpy_numbers(child, n, path):
    got = child[str(n)][path]
    assert "error" not in got, got.get("error")
    y_c, o_c = numpy_scores(n)
    expected = reference_metrics(y_c, o_c)
    if path != "loop":
        assert got["n"] == n  # no padded row counted
        for name in METRICS:
            assert got[name] == pytest.approx(expected[name], abs=1e-4), name
    else:  # no padded row gathered: exactly n scores, in order
        assert len(got["y_c"]) == len(got["o_c"]) == n
    if got.get("o_c") is not None:
        np.testing.assert_allclose(got["o_c"], o_c, atol=1e-6)
    if "y_c" in got:
        np.testing.assert_allclose(got["y_c"], y_c, atol=1e-6)
    if "skipped" in got:
        assert got["skipped"] == 0


if __name__ == "__main__" and "--child" in sys.argv:
    sys.path.insert(0, os.getcwd())
    child_main()
