"""Every case of ``tests/bad_input_cases.py`` at every door it names, and the generated table.

A case is one kind of bad (or merely unusual) input. At each door it applies to, the door must
raise the case's exception type with a message holding the case's fragment (the CAM doors: the
very same message at every door), or, for an accepted input, give the numbers of the NumPy
reference (``tests/reference.py``) on the samples that count. Inside ``tf.function`` a check
on values raises TensorFlow's ``InvalidArgumentError`` with the same text.

The tests below the cases check the behaviour that the table's "Checked elsewhere" rows name.
"""

from __future__ import annotations

import math
import pathlib
import sys
import types

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bad_input_cases as cases  # noqa: E402
from reference import reference_metrics  # noqa: E402

from camavg_core import MetricState, avg_drop, avg_gain, avg_increase, summarize  # noqa: E402
from camavg_core.scoring import CategoricalScore  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
AVERAGES = {"drop": avg_drop, "increase": avg_increase, "gain": avg_gain}
NAMES = {"drop": "average_drop", "increase": "average_increase", "gain": "average_gain"}
THREE = tuple(NAMES.values())


def message_of(call) -> str:
    """The message of the ValueError or TypeError that ``call`` raises."""
    with pytest.raises((ValueError, TypeError)) as caught:
        call()
    return str(caught.value)


# =========================================================================== the doors
@pytest.fixture(scope="module")
def tfk():
    """TensorFlow, Keras and camavg_tf.AveragesCam, or skip when TensorFlow is missing."""
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    from camavg_tf import AveragesCam

    return tf, keras, AveragesCam


def _tensor_or_value(tf, value):
    """Numbers as a constant tensor (so value checks run in the graph); anything else as given."""
    if value is None or isinstance(value, str):
        return value
    array = np.asarray(value)
    return tf.constant(array) if array.dtype.kind in "biufc" else value


def run_score_door(door: str, arguments: dict) -> dict:
    """Call one score door; the averages it gives, by name (empty when it gives none)."""
    y, o, metric, options = arguments["y"], arguments["o"], arguments["metric"], arguments["options"]
    if door == "core":
        return {NAMES[metric]: AVERAGES[metric](y, o, **options)}
    if door == "summarize":
        result = summarize(y, o, **options)
        return {name: getattr(result, name) for name in THREE}
    if door == "state":
        state = MetricState.empty().update(y, o, **options)
        return {name: getattr(state.result(), name) for name in THREE} if state.n else {}
    tf = pytest.importorskip("tensorflow")
    from camavg_tf import metrics

    if door in ("keras", "keras_graph"):
        metric_class = {"drop": metrics.AverageDrop, "increase": metrics.AverageIncrease, "gain": metrics.AverageGain}
        keras_metric = metric_class[metric](**options)
        if door == "keras":
            keras_metric.update_state(y, o)
        else:
            tf.function(keras_metric.update_state)(_tensor_or_value(tf, y), _tensor_or_value(tf, o))
        if int(keras_metric.count) == 0:
            assert float(keras_metric.result()) == 0.0  # as keras.metrics.Mean
            return {}
        return {NAMES[metric]: float(keras_metric.result())}
    raise AssertionError(f"no score door {door!r}")


KERNEL = np.random.default_rng(0).normal(0.0, 0.3, (8 * 8 * 3, 3)).astype(np.float32)
#: the logit model's scale: its logits leave [0, 1] on every sample
LOGIT_SCALE = 20.0


def numpy_probabilities(x: np.ndarray, logits: bool) -> np.ndarray:
    """The doors' models in NumPy: a dense layer (scaled for the logit model), then softmax."""
    z = x.reshape(len(x), -1).astype(np.float64) @ (KERNEL.astype(np.float64) * (LOGIT_SCALE if logits else 1.0))
    z -= z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def cam_doors():
    """The two frameworks' models (a softmax model and a linear one, weights known) and the data."""
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    jax = pytest.importorskip("jax")
    import camavg_jax
    import camavg_tf

    def keras_model(activation, scale):
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                                  keras.layers.Dense(3, activation=activation)])
        model.layers[-1].set_weights([KERNEL * scale, np.zeros(3, np.float32)])
        return model

    def jax_model(scale, softmax):
        def apply_fn(x):
            z = x.reshape(x.shape[0], -1) @ (KERNEL * scale)
            return jax.nn.softmax(z) if softmax else z
        return apply_fn

    rng = np.random.default_rng(7)
    data = types.SimpleNamespace(
        images=rng.random((5, 8, 8, 3)).astype(np.float32),
        cams=rng.random((5, 8, 8)).astype(np.float32),
        targets=np.array([0, 1, 2, 0, 1]),
    )
    softmax = keras_model("softmax", 1.0)
    models = {
        "tf": {False: softmax, True: keras_model(None, LOGIT_SCALE),
               "two": keras.Model(softmax.inputs, [softmax.outputs[0], softmax.outputs[0]])},
        "jax": {False: jax_model(1.0, True), True: jax_model(LOGIT_SCALE, False),
                "two": lambda x: [jax_model(1.0, True)(x)] * 2},
    }
    modules = {"tf": camavg_tf, "jax": camavg_jax}
    torch = pytest.importorskip("torch")
    import camavg_torch

    def torch_model(scale, softmax, outputs=1):
        class ChannelsLast(torch.nn.Module):  # NCHW in, flattened in the NHWC order of KERNEL
            def forward(self, x):
                return x.permute(0, 2, 3, 1)

        linear = torch.nn.Linear(8 * 8 * 3, 3, bias=False)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(KERNEL.T * scale))
        layers = [ChannelsLast(), torch.nn.Flatten(), linear] + ([torch.nn.Softmax(-1)] if softmax else [])
        model = torch.nn.Sequential(*layers)
        return model if outputs == 1 else (lambda x: (model(x), model(x)))

    models["torch"] = {False: torch_model(1.0, True), True: torch_model(LOGIT_SCALE, False),
                       "two": torch_model(1.0, True, outputs=2)}
    modules["torch"] = camavg_torch
    del tf
    return data, models, modules


def channels_first(images):
    """PyTorch's door takes images as PyTorch users hold them, (N, C, H, W)."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return np.moveaxis(images, -1, 1)
    if isinstance(images, list) and np.asarray(images).ndim == 4:
        return np.moveaxis(np.asarray(images), -1, 1).tolist()
    return images


_ONE_REPLICA: list = []


def one_replica():
    """A MirroredStrategy over this process's first CPU, made once."""
    tf = pytest.importorskip("tensorflow")
    if not _ONE_REPLICA:
        _ONE_REPLICA.append(tf.distribute.MirroredStrategy(["/cpu:0"]))
    return _ONE_REPLICA[0]


def run_cam_door(door: str, arguments: dict, cam_doors) -> object:
    _, models, modules = cam_doors
    framework, kind = door.split("_")
    model = models[framework]["two" if arguments["two_outputs"] else arguments["logits"]]
    options = dict(arguments["options"])
    if kind == "strategy":  # the distributed passes, on one replica here (the device list is fixed)
        framework, kind = "tf", "cam"
        options["strategy"] = one_replica()
    if kind == "cam":
        score = arguments["score"] if arguments["score"] is not None else CategoricalScore(arguments["targets"])
        if arguments["two_outputs"]:  # one score function per output, as tf-keras-vis takes them
            score = [score, score]
        inputs = channels_first(arguments["inputs"]) if framework == "torch" else arguments["inputs"]
        return modules[framework].AveragesCam(model, inputs, **options).evaluate(arguments["cams"], score)
    batch = (arguments["inputs"], arguments["cams"], arguments["targets"])
    return modules[framework].evaluate_dataset(model, [batch], **options)


def expected_cam_result(arguments: dict) -> tuple[dict, int, int]:
    """The three averages of an accepted CAM case in NumPy, and (n, skipped)."""
    images, maps = arguments["inputs"], np.asarray(arguments["cams"], np.float64).reshape(5, 8, 8)
    valid = np.isfinite(maps).all(axis=(1, 2))
    rows, targets = np.arange(5), arguments["targets"]
    y = numpy_probabilities(images, arguments["logits"])[rows, targets]
    o = numpy_probabilities(images * np.nan_to_num(maps)[..., None], arguments["logits"])[rows, targets]
    return reference_metrics(y[valid], o[valid]), int(valid.sum()), int((~valid).sum())


def _error_class(name: str):
    if name == cases.GRAPH_ERROR:
        return pytest.importorskip("tensorflow").errors.InvalidArgumentError
    return {"ValueError": ValueError, "TypeError": TypeError}[name]


def _check_accepted_scores(values: dict, arguments: dict) -> None:
    y = np.asarray(arguments["y"], np.float64).reshape(-1)
    o = np.asarray(arguments["o"], np.float64).reshape(-1)
    valid = np.isfinite(y) & np.isfinite(o)
    expected = reference_metrics(y[valid], o[valid]) if valid.any() else {}
    assert set(values) <= set(expected)
    for name, value in values.items():
        assert math.isfinite(value)
        assert value == pytest.approx(expected[name], abs=1e-4), name


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", cases.SCORE_CASES + cases.CAM_CASES, ids=lambda case: case.id)
def test_case_at_every_door(case, request):
    """The case's outcome at each of its doors: the same exception and text, or the right numbers."""
    is_cam = case in cases.CAM_CASES
    doors = request.getfixturevalue("cam_doors") if is_cam else None
    arguments = case.build(doors[0] if is_cam else None)
    messages = {}
    for door in case.doors:
        error, fragment = case.outcome(door)
        call = (lambda: run_cam_door(door, arguments, doors)) if is_cam else (lambda: run_score_door(door, arguments))
        if error == cases.ACCEPTED:
            outcome = call()
            if not is_cam:
                _check_accepted_scores(outcome, arguments)
                continue
            expected, n, skipped = expected_cam_result(arguments)
            assert (outcome.n, outcome.skipped) == (n, skipped), door
            for name in THREE:
                assert getattr(outcome, name) == pytest.approx(expected[name], abs=1e-3), (door, name)
            continue
        with pytest.raises(_error_class(error)) as caught:
            call()
        message = str(caught.value)
        if error == cases.GRAPH_ERROR:  # TensorFlow prints the assertion's text with quotes escaped
            message = caught.value.message.replace("\\'", "'")
        assert fragment in message, f"{door}: {message}"
        if fragment == case.message:
            messages[door] = message
    if is_cam and messages:  # one engine: the very same message at every door
        assert len(set(messages.values())) == 1, messages


def test_the_page_is_generated_from_the_cases():
    page = (ROOT / "docs" / "bad-input.md").read_text()
    assert page == cases.render(), "run: python tests/bad_input_cases.py --write docs/bad-input.md"


def test_rows_checked_elsewhere_name_existing_tests():
    for _, _, reference in cases.OTHER_ROWS:
        file_name, test_name = reference.split("::")
        source = (ROOT / "tests" / file_name).read_text()
        assert f"def {test_name}(" in source, reference


def test_every_case_has_an_outcome_at_each_of_its_doors():
    known = set(cases.SCORE_DOORS) | set(cases.CAM_DOORS) | {cases.ACCEPTED}
    for case in cases.SCORE_CASES + cases.CAM_CASES:
        assert len({c.id for c in cases.SCORE_CASES + cases.CAM_CASES if c.id == case.id}) == 1
        for door in case.doors:
            error, fragment = case.outcome(door)
            assert error in {"ValueError", "TypeError", cases.GRAPH_ERROR, cases.ACCEPTED}, case.id
            assert (error == cases.ACCEPTED) == (fragment == ""), (case.id, door)
        assert set(case.outcomes) <= set(case.doors) and set(case.doors) <= known


def test_logit_values_are_named_alike_by_the_jax_object_and_stream(cam_doors):
    arguments = cases.cams(logits=True)(cam_doors[0])
    cam = message_of(lambda: run_cam_door("jax_cam", arguments, cam_doors))
    stream = message_of(lambda: run_cam_door("jax_stream", arguments, cam_doors))
    assert cam == stream


@pytest.mark.slow
@pytest.mark.parametrize("door", ["tf_cam", "tf_strategy", "jax_cam", "jax_stream", "tf_stream", "torch_cam"])
def test_images_as_a_nested_list_of_numbers_are_one_array(cam_doors, door):
    """A nested list of numbers is one array (as NumPy reads it), at every door; only a list of
    arrays is a multi-input model's inputs."""
    as_lists = run_cam_door(door, cases.cams(inputs=lambda d: d.images.tolist())(cam_doors[0]), cam_doors)
    as_array = run_cam_door(door, cases.cams()(cam_doors[0]), cam_doors)
    for name in ("average_drop", "average_increase", "average_gain"):
        assert getattr(as_lists, name) == pytest.approx(getattr(as_array, name), abs=1e-9)


# =========================================================================== checked elsewhere
@pytest.fixture(scope="module")
def models(tfk):
    """A tiny CNN returning logits, and the same weights with a softmax on top."""
    _, keras, _ = tfk
    keras.utils.set_random_seed(1)
    images = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="tanh")(images)
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(features))
    logit_model = keras.Model(images, logits)
    classifier = keras.Model(images, keras.layers.Softmax()(logits))
    return logit_model, classifier


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    images = rng.random((5, 8, 8, 3)).astype(np.float32)
    cams = rng.random((5, 8, 8)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1])
    return images, cams, labels


def label_score(tf, labels):
    indices = tf.constant(labels, dtype=tf.int32)
    return lambda outputs: tf.gather(outputs, indices, axis=1, batch_dims=1)


def seed_scores(model, images, maps, labels):
    """The seed's way: the model on the inputs and on ``inputs * maps[..., None]``."""
    rows = np.arange(len(images))
    plain = np.asarray(model(images, training=False), dtype=np.float64)[rows, labels]
    masked = np.asarray(model(images * maps[..., None], training=False), dtype=np.float64)[rows, labels]
    return plain, masked


def test_array_of_cams_for_a_multi_input_model(tfk, data):
    tf, keras, AveragesCam = tfk
    images, cams, labels = data
    first, second = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    pooled = keras.layers.Concatenate()(
        [keras.layers.GlobalAveragePooling2D()(first), keras.layers.GlobalAveragePooling2D()(second)]
    )
    two_inputs = keras.Model([first, second], keras.layers.Dense(3, activation="softmax")(pooled))
    metrics = AveragesCam(two_inputs, [images, images])
    message = message_of(lambda: metrics.evaluate(cams, label_score(tf, labels)))
    assert "cams must be a list with one CAM array per input" in message
    message = message_of(lambda: AveragesCam(two_inputs, images))
    assert "The model takes 2 input(s) but inputs holds 1" in message


def test_smaller_cams_are_resized(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, _, labels = data
    small = np.random.default_rng(3).random((5, 4, 4)).astype(np.float32)
    full = tf.image.resize(small[..., None], (8, 8), method="bilinear").numpy()[..., 0]
    y_c, o_c = seed_scores(models[1], images, full, labels)
    result = AveragesCam(models[1], images).evaluate(small, label_score(tf, labels))
    np.testing.assert_allclose(result.y_c, y_c, atol=1e-6)
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)


def test_cams_outside_zero_one_with_normalize(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, cams, labels = data
    raw = cams * 255 - 7  # any range: normalize=True rescales each map by its own min and max
    low = raw.min(axis=(1, 2), keepdims=True)
    rescaled = (raw - low) / (raw.max(axis=(1, 2), keepdims=True) - low)
    _, o_c = seed_scores(models[1], images, rescaled, labels)
    result = AveragesCam(models[1], images, normalize=True).evaluate(raw, label_score(tf, labels))
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)


@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("normalize", [False, True])
def test_constant_cams_are_valid(tfk, models, data, fill, normalize):
    tf, _, AveragesCam = tfk
    images, _, labels = data
    constant = np.full((5, 8, 8), fill, np.float32)
    # a constant map has no minimum-to-maximum span: normalize=True makes it all zeros
    mask = np.zeros_like(constant) if normalize else constant
    y_c, o_c = seed_scores(models[1], images, mask, labels)
    result = AveragesCam(models[1], images, normalize=normalize).evaluate(constant, label_score(tf, labels))
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)
    for value in (result.average_drop, result.average_increase, result.average_gain):
        assert math.isfinite(value)
    assert result.skipped == 0


def test_nonfinite_input_is_skipped_even_when_the_model_hides_it(tfk, data):
    """Max pooling drops a NaN pixel, so the model's score looks fine; the sample must still
    be skipped, because its input was not a number."""
    tf, keras, AveragesCam = tfk
    images, cams, labels = data
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.Flatten()(keras.layers.MaxPooling2D(8)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(pooled))
    broken = images.copy()
    broken[2, 1, 1, 0] = np.nan
    result = AveragesCam(model, broken, nan_policy="omit").evaluate(cams, label_score(tf, labels))
    assert (result.n, result.skipped) == (4, 1)


def test_images_of_the_wrong_size_for_the_model(tfk, models):
    _, _, AveragesCam = tfk
    message = message_of(lambda: AveragesCam(models[1], np.zeros((2, 6, 6, 3), np.float32)))
    assert "expected shape=(None, 8, 8, 3), found shape=(None, 6, 6, 3)" in message


@pytest.mark.parametrize("pick", [lambda out: out, lambda out: out[0, 0], lambda out: out[:2, 0]])
def test_score_function_of_the_wrong_shape(tfk, models, data, pick):
    _, _, AveragesCam = tfk
    images, cams, _ = data
    message = message_of(lambda: AveragesCam(models[1], images).evaluate(cams, pick))
    assert "score_function must return one score per sample, shape (5,)" in message


def test_score_function_list_for_a_single_output(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, cams, labels = data
    score = label_score(tf, labels)
    message = message_of(lambda: AveragesCam(models[1], images).evaluate(cams, [score, score]))
    assert "list of 2 functions but the model has 1 outputs" in message


@pytest.mark.parametrize("as_tensor", [False, True])
def test_nothing_is_modified(tfk, models, data, as_tensor):
    tf, _, AveragesCam = tfk
    images, cams, labels = data
    weights = [w.copy() for w in models[1].get_weights()]
    images_in, cams_in = images.copy(), cams.copy()
    if as_tensor:
        images_in, cams_in = tf.constant(images_in), tf.constant(cams_in)
    metrics = AveragesCam(models[1], images_in, normalize=True, batch_size=2)
    score = label_score(tf, labels)
    metrics.evaluate(cams_in, score)
    metrics.average_drop(cams_in, score, return_vector=True)
    metrics.average_gain(cams_in, score)
    metrics.evaluate_many([cams_in, cams_in], score)
    np.testing.assert_array_equal(np.asarray(images_in), images)
    np.testing.assert_array_equal(np.asarray(cams_in), cams)
    assert metrics.inputs is images_in  # kept as given, not a converted copy
    for before, after in zip(weights, models[1].get_weights()):
        np.testing.assert_array_equal(before, after)


def test_scores_are_not_modified():
    y = np.array([0.8, np.nan, 0.5], dtype=np.float32)
    o = np.array([0.2, 0.1, 0.6], dtype=np.float32)
    y_before, o_before = y.copy(), o.copy()
    for function in (avg_drop, avg_increase, avg_gain, summarize):
        function(y, o, nan_policy="omit")
    MetricState.empty().update(y, o, nan_policy="omit")
    np.testing.assert_array_equal(y, y_before)
    np.testing.assert_array_equal(o, o_before)
    assert y.dtype == np.float32
