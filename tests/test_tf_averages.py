"""camavg_tf.AveragesCam against the original behaviour, written out here as an oracle.

The oracle is the seed's algorithm in plain Keras and NumPy: ``model.predict`` on the inputs and
on ``inputs * cams[..., None]``, the score function applied to the outputs of all N samples, and
the tests' shared NumPy reference of the equations (reference.py). The CAMs come from
tf-keras-vis on a small CNN trained for a few seconds on seeded synthetic images.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("tf_keras_vis")

from tf_keras_vis.gradcam import Gradcam  # noqa: E402
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus  # noqa: E402
from tf_keras_vis.scorecam import Scorecam  # noqa: E402
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear  # noqa: E402
from tf_keras_vis.utils.scores import BinaryScore, CategoricalScore  # noqa: E402

from camavg_cli.synthetic import make_images  # noqa: E402
from camavg_tf import AveragesCam  # noqa: E402
from camavg_tf import avg_drop, avg_gain, avg_increase  # noqa: E402
from reference import EPS, reference_metrics  # noqa: E402

N = 45  # not a multiple of the batch size, so the last batch is ragged
BATCH = 16


def oracle(model, inputs, cams, score_function):
    """The original behaviour: predict twice, score all N outputs, the NumPy reference equations."""
    y_c = np.asarray(score_function(model.predict(inputs, verbose=0)), dtype=np.float64)
    masked = inputs * cams[..., None]
    o_c = np.asarray(score_function(model.predict(masked, verbose=0)), dtype=np.float64)
    metrics = reference_metrics(y_c, o_c)
    return y_c, o_c, metrics["average_drop"], metrics["average_increase"], metrics["average_gain"]


@pytest.fixture(scope="module")
def trained(demo_model):
    data = make_images(N, size=32, seed=4)
    return demo_model[0], data


@pytest.fixture(scope="module")
def tfkv_cams(trained):
    model, data = trained
    score = CategoricalScore(list(data.labels))
    modifier = ReplaceToLinear()
    cams = {
        "gradcam": Gradcam(model, model_modifier=modifier, clone=True)(score, data.images, penultimate_layer="conv_last"),
        "gradcam++": GradcamPlusPlus(model, model_modifier=modifier, clone=True)(score, data.images, penultimate_layer="conv_last"),
        "scorecam": Scorecam(model, model_modifier=modifier, clone=True)(score, data.images, penultimate_layer="conv_last", max_N=4),
    }
    return {name: np.asarray(cam, dtype=np.float32) for name, cam in cams.items()}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_agrees_with_the_original_behaviour(trained, tfkv_cams, method):
    model, data = trained
    cams = tfkv_cams[method]
    score = CategoricalScore(list(data.labels))
    y_c, o_c, drop, increase, gain = oracle(model, data.images, cams, score)

    metrics = AveragesCam(model, data.images, batch_size=BATCH)
    value, y_vec, o_vec = metrics.average_drop(cams, score, return_vector=True)
    np.testing.assert_allclose(y_vec, y_c, atol=1e-5)
    np.testing.assert_allclose(o_vec, o_c, atol=1e-5)
    assert value == pytest.approx(drop, abs=1e-4)
    assert metrics.average_increase(cams, score) == pytest.approx(increase, abs=1e-4)
    assert metrics.average_gain(cams, score) == pytest.approx(gain, abs=1e-4)
    result = metrics.evaluate(cams, score)
    assert (result.average_drop, result.average_increase, result.average_gain) == (
        pytest.approx(drop, abs=1e-4),
        pytest.approx(increase, abs=1e-4),
        pytest.approx(gain, abs=1e-4),
    )
    assert result.n == N and result.skipped == 0
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)
    # the module functions on the vectors give the same numbers
    assert avg_drop(y_c, o_c) == pytest.approx(drop, abs=1e-9)
    assert avg_increase(y_c, o_c) == pytest.approx(increase, abs=1e-9)
    assert avg_gain(y_c, o_c) == pytest.approx(gain, abs=1e-9)


@pytest.mark.slow
def test_tensor_inputs_and_cams_match_numpy_ones(trained, tfkv_cams):
    model, data = trained
    score = CategoricalScore(list(data.labels))
    cams = tfkv_cams["gradcam"]
    from_numpy = AveragesCam(model, data.images, batch_size=BATCH).evaluate(cams, score)
    from_tensors = AveragesCam(model, tf.constant(data.images), batch_size=BATCH).evaluate(tf.constant(cams), score)
    np.testing.assert_allclose(from_tensors.o_c, from_numpy.o_c, atol=1e-6)


def test_smaller_cams_are_resized_bilinearly(trained):
    model, data = trained
    score = CategoricalScore(list(data.labels))
    small = np.random.default_rng(0).random((N, 8, 8)).astype(np.float32)
    full = tf.image.resize(small[..., None], (32, 32), method="bilinear").numpy()[..., 0]
    y_c, o_c, drop, increase, gain = oracle(model, data.images, full, score)
    result = AveragesCam(model, data.images, batch_size=BATCH).evaluate(small, score)
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)
    assert result.average_drop == pytest.approx(drop, abs=1e-4)


class CountingModel(keras.Model):
    """Wraps a model and counts the batches it really runs (a variable, not a Python int,
    because a compiled function runs Python code only while it is traced)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.batches = tf.Variable(0, dtype=tf.int64, trainable=False)

    def call(self, x, training=False):
        self.batches.assign_add(1)
        return self.inner(x, training=training)


def test_one_masked_pass_per_cam_set(trained, tfkv_cams):
    model, data = trained
    counting = CountingModel(model)
    score = CategoricalScore(list(data.labels))
    cams = tfkv_cams["gradcam"]
    metrics = AveragesCam(counting, data.images, batch_size=BATCH)
    after_construction = int(counting.batches.numpy())
    batches_per_pass = math.ceil(N / BATCH)
    assert after_construction >= batches_per_pass  # the plain outputs, computed once

    metrics.evaluate(cams, score)
    assert int(counting.batches.numpy()) - after_construction == batches_per_pass

    other = np.clip(cams * 0.5, 0, 1)
    before = int(counting.batches.numpy())
    metrics.average_drop(other, score)
    metrics.average_increase(other, score)
    metrics.average_gain(other, score)
    metrics._get_scores(other, score)
    assert int(counting.batches.numpy()) - before == batches_per_pass

    # changing the CAMs in place must not reuse a stale pass
    before = int(counting.batches.numpy())
    other[:] = 1.0
    assert metrics.average_drop(other, score) == pytest.approx(0.0, abs=1e-6)
    assert int(counting.batches.numpy()) - before == batches_per_pass


def test_traced_once_across_calls_and_a_ragged_last_batch(trained, tfkv_cams):
    model, data = trained
    score = CategoricalScore(list(data.labels))
    metrics = AveragesCam(model, data.images, batch_size=BATCH)
    assert N % BATCH != 0
    metrics.evaluate(np.array(tfkv_cams["gradcam"]), score)
    passes = metrics.engine.adapter.passes(metrics.engine.options, metrics.engine.inputs)
    traces = passes.trace_count
    assert traces == 2  # the plain pass and the masked pass, once each
    for name in ("gradcam++", "scorecam", "gradcam"):
        metrics.evaluate(np.array(tfkv_cams[name]), score)
    assert passes.trace_count == traces


def test_each_averagescam_traces_its_own_passes(trained, tfkv_cams):
    """Compiled passes belong to the AveragesCam that traced them, never to the model."""
    model, data = trained
    score = CategoricalScore(list(data.labels))
    first = AveragesCam(model, data.images, batch_size=BATCH)
    first.evaluate(tfkv_cams["gradcam"], score)
    second = AveragesCam(model, data.images[:-7], batch_size=BATCH + 3)
    second.evaluate(tfkv_cams["gradcam"][:-7], CategoricalScore(list(data.labels[:-7])))
    passes = [m.engine.adapter.passes(m.engine.options, m.engine.inputs) for m in (first, second)]
    assert passes[0] is not passes[1]
    assert passes[0].trace_count == passes[1].trace_count == 2


def test_categorical_score_with_one_index_for_all(trained, tfkv_cams):
    model, data = trained
    cams = tfkv_cams["gradcam"]
    score = CategoricalScore(1)
    y_c, o_c, drop, increase, gain = oracle(model, data.images, cams, lambda out: out[:, 1])
    result = AveragesCam(model, data.images).evaluate(cams, score)
    np.testing.assert_allclose(result.y_c, y_c, atol=1e-5)
    assert result.average_drop == pytest.approx(drop, abs=1e-4)


def test_plain_callable_and_the_evaluate_many_results(trained, tfkv_cams):
    model, data = trained
    labels = data.labels

    def score(outputs):
        return tf.gather(outputs, labels, axis=1, batch_dims=1)

    results = AveragesCam(model, data.images).evaluate_many([tfkv_cams["gradcam"], tfkv_cams["scorecam"]], score)
    for result, name in zip(results, ["gradcam", "scorecam"]):
        _, _, drop, increase, gain = oracle(model, data.images, tfkv_cams[name], CategoricalScore(list(labels)))
        assert result.average_drop == pytest.approx(drop, abs=1e-4)
        assert result.average_increase == pytest.approx(increase, abs=1e-4)


def _mean_sigmoid_model(size=2):
    """p = sigmoid(mean of the image): weights chosen so every score can be worked by hand."""
    inputs = keras.Input((size, size, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones", bias_initializer="zeros")
    return keras.Model(inputs, dense(pooled))


def test_binary_score_reads_the_confidence_in_each_target():
    model = _mean_sigmoid_model()
    images = np.ones((2, 2, 2, 1), dtype=np.float32)
    cams = np.full((2, 2, 2), 0.5, dtype=np.float32)
    # plain: p = sigmoid(1); masked: p = sigmoid(0.5)
    p_plain, p_masked = 1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(-0.5))
    # sample 0, target True: Y = p, O = p'; sample 1, target False: Y = 1 - p, O = 1 - p'
    y = [p_plain, 1 - p_plain]
    o = [p_masked, 1 - p_masked]
    drop = 100 * ((y[0] - o[0]) / (y[0] + EPS) + 0) / 2  # sample 1 rises: no drop
    increase = 100 * (0 + 1) / 2
    gain = 100 * (0 + (o[1] - y[1]) / (1 - y[1] + EPS)) / 2

    result = AveragesCam(_mean_sigmoid_model(), images).evaluate(cams, BinaryScore([True, False]))
    np.testing.assert_allclose(result.y_c, y, atol=1e-6)
    np.testing.assert_allclose(result.o_c, o, atol=1e-6)
    assert result.average_drop == pytest.approx(drop, abs=1e-4)
    assert result.average_increase == pytest.approx(increase)
    assert result.average_gain == pytest.approx(gain, abs=1e-4)
    del model


def test_sigmoid_activation_for_a_logit_model():
    inputs = keras.Input((2, 2, 1))
    logit = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros")(keras.layers.GlobalAveragePooling2D()(inputs))
    logit_model = keras.Model(inputs, logit)
    images = np.full((3, 2, 2, 1), 2.0, dtype=np.float32)
    cams = np.full((3, 2, 2), 0.25, dtype=np.float32)
    # logit 2 -> p = sigmoid(2); masked logit 0.5 -> p = sigmoid(0.5)
    y, o = 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(-0.5))
    result = AveragesCam(logit_model, images, activation="sigmoid").evaluate(cams, BinaryScore(True))
    assert result.average_drop == pytest.approx(100 * (y - o) / (y + EPS), abs=1e-4)


def test_softmax_activation_equals_a_softmax_model(trained, tfkv_cams):
    model, data = trained
    logits_model = keras.Model(model.inputs, model.get_layer("predictions").output)
    # rebuild the last layer without its softmax, same weights
    dense = model.get_layer("predictions")
    head = keras.layers.Dense(dense.units, name="logits")
    features = model.get_layer("flatten").output
    logits_model = keras.Model(model.inputs, head(features))
    head.set_weights(dense.get_weights())
    score = CategoricalScore(list(data.labels))
    cams = tfkv_cams["gradcam"]
    expected = AveragesCam(model, data.images).evaluate(cams, score)
    got = AveragesCam(logits_model, data.images, activation="softmax").evaluate(cams, score)
    np.testing.assert_allclose(got.y_c, expected.y_c, atol=1e-5)
    np.testing.assert_allclose(got.o_c, expected.o_c, atol=1e-5)
    with pytest.raises(ValueError, match="logits"):
        AveragesCam(logits_model, data.images).evaluate(cams, score)


def _two_input_two_output_model():
    left, right = keras.Input((4, 4, 1), name="left"), keras.Input((4, 4, 2), name="right")
    pooled = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(left), keras.layers.GlobalAveragePooling2D()(right)])
    first = keras.layers.Dense(3, activation="softmax", name="first")(pooled)
    second = keras.layers.Dense(1, activation="sigmoid", name="second")(pooled)
    return keras.Model([left, right], [first, second])


def test_multi_input_with_a_list_of_cams_and_multi_output_sum():
    keras.utils.set_random_seed(1)
    model = _two_input_two_output_model()
    rng = np.random.default_rng(2)
    left, right = rng.random((5, 4, 4, 1)).astype("float32"), rng.random((5, 4, 4, 2)).astype("float32")
    cam_left, cam_right = rng.random((5, 4, 4)).astype("float32"), rng.random((5, 2, 2)).astype("float32")
    scores = [CategoricalScore([0, 1, 2, 0, 1]), BinaryScore([True, False, True, True, False])]

    def summed(outputs):
        first, second = outputs
        targets = np.array([True, False, True, True, False])
        return first[np.arange(5), [0, 1, 2, 0, 1]] + np.where(targets, second[:, 0], 1 - second[:, 0])

    y_c = summed(model.predict([left, right], verbose=0))
    right_full = tf.image.resize(cam_right[..., None], (4, 4)).numpy()
    o_c = summed(model.predict([left * cam_left[..., None], right * right_full], verbose=0))

    metrics = AveragesCam(model, [left, right], batch_size=2)
    _, y_vec, o_vec = metrics.average_increase([cam_left, cam_right], scores, return_vector=True)
    np.testing.assert_allclose(y_vec, y_c, atol=1e-5)
    np.testing.assert_allclose(o_vec, o_c, atol=1e-5)
    with pytest.raises(ValueError, match="one score function per output"):
        metrics.average_increase([cam_left, cam_right], scores[0])
    with pytest.raises(ValueError, match="list with one CAM array per input"):
        metrics.average_increase(cam_left, scores)


def test_list_of_cams_for_a_single_input_model(trained, tfkv_cams):
    model, data = trained
    metrics = AveragesCam(model, data.images)
    with pytest.raises(ValueError, match="single input"):
        metrics.evaluate([tfkv_cams["gradcam"]], CategoricalScore(0))


@pytest.mark.parametrize(
    "cams, message",
    [
        (np.ones((N - 1, 32, 32), np.float32), "maps but inputs holds"),
        (np.full((N, 32, 32), 2.0, np.float32), r"\[0, 1\].*[Nn]ormalise"),
        (np.ones((N, 32), np.float32), "shape"),
        (np.ones((N, 32, 32, 3), np.float32), "channels"),
    ],
)
def test_bad_cams_get_a_clear_error(trained, cams, message):
    model, data = trained
    with pytest.raises(ValueError, match=message):
        AveragesCam(model, data.images).evaluate(cams, CategoricalScore(0))


def test_nan_cams_raise_by_default_and_are_skipped_when_asked(trained, tfkv_cams):
    model, data = trained
    cams = tfkv_cams["gradcam"].copy()
    cams[3, 0, 0] = np.nan
    score = CategoricalScore(list(data.labels))
    with pytest.raises(ValueError, match=r"cams\[3\]"):
        AveragesCam(model, data.images).evaluate(cams, score)
    result = AveragesCam(model, data.images, nan_policy="omit").evaluate(cams, score)
    keep = np.arange(N) != 3
    _, _, drop, _, _ = oracle(model, data.images[keep], tfkv_cams["gradcam"][keep], CategoricalScore(list(data.labels[keep])))
    assert result.skipped == 1 and result.n == N - 1
    assert result.average_drop == pytest.approx(drop, abs=1e-4)


def test_nan_inputs_are_named(trained):
    model, data = trained
    images = data.images.copy()
    images[7, 1, 1, 0] = np.inf
    with pytest.raises(ValueError, match=r"inputs\[7\]"):
        AveragesCam(model, images)


def test_a_score_function_that_does_not_give_n_scores(trained, tfkv_cams):
    model, data = trained
    with pytest.raises(ValueError, match="one score per sample"):
        AveragesCam(model, data.images).evaluate(tfkv_cams["gradcam"], lambda out: out[:3, 0])
    with pytest.raises(ValueError, match="for 45 samples"):
        AveragesCam(model, data.images).evaluate(tfkv_cams["gradcam"], CategoricalScore([0, 1]))


def test_empty_inputs_and_wrong_arity(trained):
    model, _ = trained
    with pytest.raises(ValueError, match="empty"):
        AveragesCam(model, np.zeros((0, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="1 input"):
        AveragesCam(model, [np.zeros((2, 32, 32, 3), np.float32)] * 2)


def test_nothing_is_modified(trained, tfkv_cams):
    model, data = trained
    images, cams = data.images.copy(), tfkv_cams["gradcam"].copy()
    weights = [w.copy() for w in model.get_weights()]
    AveragesCam(model, images, normalize=True).evaluate(cams, CategoricalScore(list(data.labels)))
    np.testing.assert_array_equal(images, data.images)
    np.testing.assert_array_equal(cams, tfkv_cams["gradcam"])
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_uint8_images_are_cast_to_the_model_dtype(trained, tfkv_cams):
    model, data = trained
    images_u8 = (data.images * 255).round().astype(np.uint8)
    as_float = images_u8.astype(np.float32)
    score = CategoricalScore(list(data.labels))
    _, o_c, drop, _, _ = oracle(model, as_float, tfkv_cams["gradcam"], score)
    result = AveragesCam(model, images_u8).evaluate(tfkv_cams["gradcam"], score)
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)


def test_inputs_changed_after_construction_do_not_reach_the_numbers(trained, tfkv_cams):
    """The inputs are copied at construction: Y_c and O_c stay those of the inputs given,
    whatever the caller does to its array afterwards."""
    model, data = trained
    images, cams = data.images.copy(), tfkv_cams["gradcam"]
    score = CategoricalScore(list(data.labels))
    y_c, o_c, drop, _, _ = oracle(model, data.images, cams, score)
    metrics = AveragesCam(model, images, batch_size=BATCH)
    images[:] = 0.0
    result = metrics.evaluate(cams, score)
    np.testing.assert_allclose(result.y_c, y_c, atol=1e-5)
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)


@pytest.mark.slow
def test_averagescams_alive_together_keep_their_own_inputs(trained, tfkv_cams):
    """Each AveragesCam keeps its own copy of its inputs: a later one, or the death of an
    earlier one, changes nothing."""
    import gc

    model, data = trained
    cams = tfkv_cams["gradcam"]
    score = CategoricalScore(list(data.labels))
    flipped = data.images[:, ::-1].copy()  # the same shape, other values
    expected = {name: oracle(model, images, cams, score)[:2] for name, images in (("plain", data.images), ("flipped", flipped))}
    first = AveragesCam(model, data.images, batch_size=BATCH)
    second = AveragesCam(model, flipped, batch_size=BATCH)
    for metrics, name in ((first, "plain"), (second, "flipped")):
        result = metrics.evaluate(cams, score)
        np.testing.assert_allclose(result.y_c, expected[name][0], atol=1e-5)
        np.testing.assert_allclose(result.o_c, expected[name][1], atol=1e-5)
    kept_inputs = first.engine.inputs[0]
    del first
    gc.collect()
    third = AveragesCam(model, flipped, batch_size=BATCH)
    np.testing.assert_array_equal(kept_inputs.numpy(), data.images)
    np.testing.assert_allclose(third.evaluate(cams, score).o_c, expected["flipped"][1], atol=1e-5)
    np.testing.assert_allclose(second.evaluate(cams[::-1].copy(), score).y_c, expected["flipped"][0], atol=1e-5)
