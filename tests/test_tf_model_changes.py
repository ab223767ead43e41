"""Nothing answers for an old model: a Keras model changed in place (an activation swapped,
tf-keras-vis' ``ReplaceToLinear`` with ``clone=False``, ``set_weights``) before or after an
``AveragesCam`` is built gives the numbers of the model as it is now.

The oracle is the model itself, called eagerly (``model(x)``) on the inputs and on
``inputs * cams[..., None]``, with the score and the softmax taken in NumPy.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("tf_keras_vis")

from tf_keras_vis.gradcam import Gradcam  # noqa: E402
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear  # noqa: E402
from tf_keras_vis.utils.scores import CategoricalScore  # noqa: E402

from camavg_tf import AveragesCam  # noqa: E402
from reference import reference_metrics  # noqa: E402

N, SIZE, CLASSES = 12, 8, 3
LABELS = np.arange(N) % CLASSES


def conv_softmax_model(seed: int = 0):
    """A functional conv net with a softmax Dense head named ``predictions``."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="predictions")(pooled)
    return keras.Model(inputs, outputs)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 1, (N, SIZE, SIZE, 3)).astype(np.float32)
    cams = rng.uniform(0, 1, (N, SIZE, SIZE)).astype(np.float32)
    return images, cams


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def oracle_scores(model, images, cams, activation=None):
    """(Y_c, O_c) from the model as it is now, scored in NumPy."""
    rows = np.arange(N)
    outputs = [np.asarray(model(x, training=False), np.float64) for x in (images, images * cams[..., None])]
    if activation == "softmax":
        outputs = [softmax(out) for out in outputs]
    return outputs[0][rows, LABELS], outputs[1][rows, LABELS]


def scores_of(metrics, cams):
    """(Y_c, O_c) through Average Increase, which any score allows (logits included)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning that increase is read on logits
        _, y_c, o_c = metrics.average_increase(cams, CategoricalScore(list(LABELS)), return_vector=True)
    return y_c, o_c


def assert_scores(got, expected):
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- structure
def test_a_new_averagescam_runs_the_model_with_its_activation_swapped_in_place(data):
    images, cams = data
    model = conv_softmax_model()
    score = CategoricalScore(list(LABELS))
    before = AveragesCam(model, images).evaluate(cams, score)  # traces the softmax model
    assert_scores((before.y_c, before.o_c), oracle_scores(model, images, cams))

    model.get_layer("predictions").activation = keras.activations.linear
    logits = oracle_scores(model, images, cams)
    assert (logits[0] < 0).any() or (logits[0] > 1).any()  # really logits now
    metrics = AveragesCam(model, images)
    with pytest.raises(ValueError, match="activation"):  # drop refuses logits, with the fix
        metrics.evaluate(cams, score)
    assert_scores(scores_of(metrics, cams), logits)
    with_softmax = AveragesCam(model, images, activation="softmax").evaluate(cams, score)
    assert_scores((with_softmax.y_c, with_softmax.o_c), oracle_scores(model, images, cams, "softmax"))


@pytest.mark.parametrize("when", ["before construction", "after construction"])
def test_replace_to_linear_without_a_clone(data, when):
    """tf-keras-vis' ReplaceToLinear with clone=False edits the model in place, as many of
    its examples do: the CAMs are made, then the metrics run on the model as it is now."""
    images, cams = data
    model = conv_softmax_model(seed=1)
    score = CategoricalScore(list(LABELS))
    AveragesCam(model, images).evaluate(cams, score)  # a softmax trace exists somewhere
    if when == "after construction":
        metrics = AveragesCam(model, images)
        metrics.evaluate(cams, score)
    gradcam = Gradcam(model, model_modifier=ReplaceToLinear(), clone=False)
    tfkv_cams = np.asarray(gradcam(score, images, penultimate_layer="conv"))
    assert model.get_layer("predictions").activation is not keras.activations.softmax
    if when == "before construction":
        metrics = AveragesCam(model, images)
    with pytest.raises(ValueError, match="activation"):
        metrics.evaluate(tfkv_cams, score)
    assert_scores(scores_of(metrics, tfkv_cams), oracle_scores(model, images, tfkv_cams))
