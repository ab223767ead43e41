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


# --------------------------------------------------------------------------- weights
def other_weights(model, seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()]


def predict_scores(model, images, cams):
    """(Y_c, O_c) from model.predict, scored in NumPy."""
    rows = np.arange(N)
    y = np.asarray(model.predict(images, verbose=0), np.float64)[rows, LABELS]
    o = np.asarray(model.predict(images * cams[..., None], verbose=0), np.float64)[rows, LABELS]
    return y, o


def test_set_weights_between_two_calls_gives_the_new_numbers(data):
    images, cams = data
    model = conv_softmax_model(seed=2)
    score = CategoricalScore(list(LABELS))
    metrics = AveragesCam(model, images, batch_size=5)
    first = metrics.evaluate(cams, score)
    assert_scores((first.y_c, first.o_c), predict_scores(model, images, cams))

    model.set_weights(other_weights(model, 7))
    expected = predict_scores(model, images, cams)
    assert not np.allclose(expected[0], first.y_c, atol=1e-3)  # the change is visible
    second = metrics.evaluate(cams, score)  # the same CAMs: the cache must not answer
    assert_scores((second.y_c, second.o_c), expected)
    reference = reference_metrics(*expected)
    assert second.average_drop == pytest.approx(reference["average_drop"], abs=1e-3)
    assert second.average_gain == pytest.approx(reference["average_gain"], abs=1e-3)


@pytest.mark.parametrize("when", ["before the first call", "between two calls"])
def test_a_layer_setting_changed_in_place_gives_the_new_numbers(data, when):
    """A ``Rescaling``'s scale is a plain attribute that the traced passes fix and no weight
    holds. Changed after construction, it once gave Y_c of the old scale (the plain pass traced
    at construction) beside O_c of the new (the masked pass traced at its first call): Average
    Drop 0.17 where the model as it is gives 30.1."""
    images, cams = data
    keras.utils.set_random_seed(4)
    inputs = keras.Input((SIZE, SIZE, 3))
    scaled = keras.layers.Rescaling(1.0, name="scale")(inputs)
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(scaled)
    outputs = keras.layers.Dense(CLASSES, activation="softmax")(keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, outputs)
    metrics = AveragesCam(model, images, batch_size=5)
    if when == "between two calls":
        assert_scores(scores_of(metrics, cams), oracle_scores(model, images, cams))
    before = oracle_scores(model, images, cams)
    model.get_layer("scale").scale = 6.0
    expected = oracle_scores(model, images, cams)
    assert np.abs(expected[0] - before[0]).max() > 1e-2  # the change is visible
    assert_scores(scores_of(metrics, cams), expected)
    assert_scores(scores_of(metrics, cams[::-1].copy()), oracle_scores(model, images, cams[::-1].copy()))
    assert_scores(scores_of(AveragesCam(model, images, batch_size=5), cams), expected)  # a new one agrees


def test_the_training_loop_leaves_the_structure_as_it_was(data):
    """compile, predict and evaluate set attributes of the model (its Trainer's state), not
    settings of the function it computes: the structure stays, so no call runs the plain pass
    again or re-traces for them."""
    from camavg_tf.fingerprint import ModelWatch

    images, _ = data
    model = conv_softmax_model()
    watch = ModelWatch(model)
    first = watch.structure()
    model.predict(images, verbose=0)
    model.compile("sgd", "categorical_crossentropy", steps_per_execution=2)
    model.evaluate(images, keras.utils.to_categorical(LABELS, CLASSES), verbose=0)
    assert watch.structure() == first


def test_averagescams_of_one_model_share_its_weight_sums_and_each_sees_new_weights(data):
    """The weight sums are shared per model (one trace): a change made after two
    AveragesCams were built reaches both, each against the model itself."""
    from camavg_tf import fingerprint

    images, cams = data
    model = conv_softmax_model(seed=3)
    score = CategoricalScore(list(LABELS))
    first, second = AveragesCam(model, images, batch_size=5), AveragesCam(model, images, batch_size=4)
    assert first.engine.adapter.watch._sums[1] is second.engine.adapter.watch._sums[1]
    for metrics in (first, second):
        metrics.evaluate(cams, score)
    model.set_weights(other_weights(model, 11))
    expected = predict_scores(model, images, cams)
    for metrics in (second, first):
        result = metrics.evaluate(cams, score)
        assert_scores((result.y_c, result.o_c), expected)
    # the shared sums do not keep the model alive: they go with it
    import gc
    import weakref

    gone = weakref.ref(model)
    assert model in fingerprint._SHARED_SUMS
    del first, second, model, metrics
    gc.collect()
    assert gone() is None


def test_a_permuted_kernel_is_a_change(data):
    """set_weights with the same values in another order keeps sums and squares: the
    projection sees it."""
    images, cams = data
    model = conv_softmax_model(seed=3)
    score = CategoricalScore(list(LABELS))
    metrics = AveragesCam(model, images)
    metrics.evaluate(cams, score)
    weights = model.get_weights()
    kernel = model.get_layer("predictions").get_weights()
    kernel[0] = kernel[0][:, ::-1].copy()  # the classes' columns swapped
    model.get_layer("predictions").set_weights(kernel)
    assert not np.array_equal(weights[-2], model.get_weights()[-2])
    result = metrics.evaluate(cams, score)
    assert_scores((result.y_c, result.o_c), predict_scores(model, images, cams))


def test_threads_sharing_an_averagescam_see_the_new_weights(data):
    images, cams = data
    model = conv_softmax_model(seed=4)
    score = CategoricalScore(list(LABELS))
    metrics = AveragesCam(model, images, batch_size=4)
    metrics.evaluate(cams, score)
    model.set_weights(other_weights(model, 11))
    expected = predict_scores(model, images, cams)
    flipped = cams[:, ::-1].copy()
    expected_flipped = predict_scores(model, images, flipped)
    errors, barrier = [], threading.Barrier(4)

    def worker(index):
        try:
            barrier.wait()
            for _ in range(3):
                these, want = (cams, expected) if index % 2 else (flipped, expected_flipped)
                result = metrics.evaluate(these, score)
                assert_scores((result.y_c, result.o_c), want)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_an_unchanged_model_reuses_its_outputs(data, monkeypatch):
    """The watch costs no pass: without a change, Y_c is not recomputed and the masked
    outputs of the same CAMs are reused."""
    images, cams = data
    model = conv_softmax_model(seed=5)
    score = CategoricalScore(list(LABELS))
    metrics = AveragesCam(model, images)
    metrics.evaluate(cams, score)
    runs = []
    run = metrics.engine.adapter.run
    monkeypatch.setattr(metrics.engine.adapter, "run", lambda *a: runs.append(a[1] is None) or run(*a))
    metrics.average_drop(cams, score)
    metrics.average_gain(cams, score)
    assert runs == []
    model.set_weights(other_weights(model, 12))
    metrics.average_drop(cams, score)
    assert runs == [True, False]  # one plain and one masked pass


# --------------------------------------------------------------------------- misreadings
def _head(layer_output, kind):
    """The same probabilities three ways: a Dense activation, an Activation layer, Softmax."""
    if kind == "dense":
        return keras.layers.Dense(CLASSES, activation="softmax", name="head")(layer_output)
    logits = keras.layers.Dense(CLASSES, name="logits")(layer_output)
    if kind == "activation":
        return keras.layers.Activation("softmax", name="head")(logits)
    return keras.layers.Softmax(name="head")(logits)


@pytest.mark.parametrize("kind", ["dense", "activation", "softmax layer"])
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_an_activation_on_probabilities_is_refused_naming_the_layer(data, kind, activation):
    images, _ = data
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(inputs, _head(keras.layers.GlobalAveragePooling2D()(inputs), kind))
    with pytest.raises(ValueError, match=r"activation=%r.*'head'.*softmax.*activation=None" % activation):
        AveragesCam(model, images, activation=activation)
    AveragesCam(model, images, activation="identity")  # saying they are probabilities is fine


def test_a_sigmoid_output_is_not_given_a_second_sigmoid(data):
    images, _ = data
    inputs = keras.Input((SIZE, SIZE, 3))
    outputs = keras.layers.Dense(1, activation="sigmoid", name="binary")(keras.layers.Flatten()(inputs))
    with pytest.raises(ValueError, match="'binary' ends in a sigmoid"):
        AveragesCam(keras.Model(inputs, outputs), images, activation="sigmoid")


def channels_first_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3, 8, 16))
    pooled = keras.layers.GlobalAveragePooling2D(data_format="channels_first")(inputs)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(pooled))


def test_nchw_inputs_under_the_default_data_format_are_refused():
    rng = np.random.default_rng(5)
    images = rng.uniform(0, 1, (N, 3, 8, 16)).astype(np.float32)
    cams = rng.uniform(0, 1, (N, 8, 16)).astype(np.float32)
    model = channels_first_model()
    score = CategoricalScore(list(LABELS))
    with pytest.raises(ValueError, match='data_format="channels_first"'):
        AveragesCam(model, images).evaluate(cams, score)
    result = AveragesCam(model, images, data_format="channels_first").evaluate(cams, score)
    rows = np.arange(N)
    expected_o = np.asarray(model(images * cams[:, None]), np.float64)[rows, LABELS]
    np.testing.assert_allclose(result.o_c, expected_o, rtol=1e-5, atol=1e-6)


def test_a_transposed_map_is_refused_and_a_coarser_one_resized():
    rng = np.random.default_rng(6)
    images = rng.uniform(0, 1, (N, 8, 16, 3)).astype(np.float32)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 16, 3))
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(keras.layers.Flatten()(inputs)))
    metrics = AveragesCam(model, images)
    score = CategoricalScore(list(LABELS))
    with pytest.raises(ValueError, match=r"\(16, 8\) are the inputs' spatial shape \(8, 16\) transposed"):
        metrics.evaluate(rng.uniform(0, 1, (N, 16, 8)).astype(np.float32), score)
    coarse = np.repeat(np.repeat(rng.uniform(0, 1, (N, 1, 1)), 4, 1), 8, 2).astype(np.float32)  # constant maps
    result = metrics.evaluate(coarse, score)  # a (4, 8) map: resized, constant stays constant
    rows = np.arange(N)
    expected_o = np.asarray(model(images * coarse[:, :1, :1, None]), np.float64)[rows, LABELS]
    np.testing.assert_allclose(result.o_c, expected_o, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- model forms
class DictModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(CLASSES, activation="softmax")

    def call(self, x, training=False):
        probabilities = self.dense(keras.ops.mean(x, axis=(1, 2)))
        return {"probs": probabilities, "aux": probabilities * 2}


def test_a_model_returning_a_dict_gets_a_type_error_naming_its_keys(data):
    images, _ = data
    with pytest.raises(TypeError, match=r"dict \(keys \['probs', 'aux'\]\).*model\(x\)\['probs'\]"):
        AveragesCam(DictModel(), images)


def test_a_plain_function_model_without_training(data):
    images, cams = data
    weights = np.random.default_rng(8).normal(size=(3, CLASSES)).astype(np.float32)

    def model(x):  # no training argument
        return tf.nn.softmax(tf.reduce_mean(x, axis=[1, 2]) @ weights)

    score = CategoricalScore(list(LABELS))
    result = AveragesCam(model, images).evaluate(cams, score)
    rows = np.arange(N)
    expected = [softmax(x.mean(axis=(1, 2)).astype(np.float64) @ weights)[rows, LABELS]
                for x in (images, images * cams[..., None])]
    assert_scores((result.y_c, result.o_c), expected)
    seen = []

    def with_training(x, training=True):
        seen.append(training)
        return model(x)

    lambda_result = AveragesCam(lambda x: model(x), images).evaluate(cams, score)
    assert_scores((lambda_result.y_c, lambda_result.o_c), expected)
    AveragesCam(with_training, images).evaluate(cams, score)
    assert seen and set(seen) == {False}  # told it runs for inference
