"""The same CAMs through two routes are no difference: float noise of the same maps is a tie.

Oracle: the maps are identical by construction, so the true difference is 0. Batch sizes are
ties (p = 1, no difference). XLA (``jit_compile=True``) changes the kernels: its scores differed by
up to 36.5 float32 ulps here, beyond the tie rule's 32, so they may count as a (tiny) difference,
but never a significant one beyond the margin (``better`` is None).
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from camavg_core import compare  # noqa: E402
from camavg_tf import AveragesCam  # noqa: E402

METRICS = ("average_drop", "average_increase", "average_gain")


def small_model(classes, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 3))
    features = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    dense = keras.layers.Dense(classes, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(features)))
    weights, bias = dense.get_weights()
    dense.set_weights([20 * weights, bias])  # confident outputs: scores near 0 and near 1
    return model


@pytest.mark.slow
@pytest.mark.parametrize("classes", [3, 100])
def test_same_cams_through_two_routes_are_no_difference(classes):
    rng = np.random.default_rng(classes)
    model = small_model(classes, classes)
    images = rng.uniform(0, 1, (40, 12, 12, 3)).astype("float32")
    cams = rng.uniform(0, 1, (40, 12, 12)).astype("float32")
    labels = rng.integers(0, classes, 40)

    def score(outputs):
        return tf.reduce_sum(outputs * tf.one_hot(labels, classes), axis=1)

    y_7, o_7 = AveragesCam(model, images, batch_size=7)._get_scores(cams, score)
    _, o_32 = AveragesCam(model, images, batch_size=32)._get_scores(cams, score)
    masked = images * cams[..., None]
    o_xla = tf.function(lambda x: score(model(x)), jit_compile=True)(tf.constant(masked)).numpy()
    result = compare(y_7, o_7, o_32)
    for metric in METRICS:
        assert abs(result.difference[metric]) < 1e-4
    assert result.p_value == dict.fromkeys(METRICS, 1.0)
    assert all(result.no_difference.values()) and result.better == dict.fromkeys(METRICS)
    noisy = compare(y_7, o_7, o_xla)
    for metric in METRICS:
        assert abs(noisy.difference[metric]) < 1e-4
    assert noisy.better == dict.fromkeys(METRICS)


def test_averagescam_compare_takes_the_margin():
    rng = np.random.default_rng(7)
    model = small_model(3, 7)
    images = rng.uniform(0, 1, (40, 12, 12, 3)).astype("float32")
    labels = rng.integers(0, 3, 40)
    cams = {"ones": np.ones((40, 12, 12), "float32"), "dark": np.full((40, 12, 12), 0.05, "float32")}

    def score(outputs):
        return tf.reduce_sum(outputs * tf.one_hot(labels, 3), axis=1)

    metrics = AveragesCam(model, images)
    results, table = metrics.compare(cams, score)
    by_hand = compare(results["ones"].y_c, results["ones"].o_c, results["dark"].o_c, names=("ones", "dark"))
    for row in table.rows:  # one pair: Holm leaves the p-value as it is, so better is compare's
        assert row.better == by_hand.better[row.metric]
        assert row.difference == pytest.approx(
            getattr(results["ones"], row.metric) - getattr(results["dark"], row.metric), abs=1e-4)
    _, wide = metrics.compare(cams, score, margin=100)
    assert all(row.better is None and row.margin == 100 for row in wide.rows)
