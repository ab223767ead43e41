"""Deletion and Insertion through the engine on TensorFlow, JAX and PyTorch against the NumPy
reference of tests/reference.py (each perturbed image built one sample and one step at a time,
the model called directly); the analytic case of issue 22; invariance to strictly increasing
transforms of the CAM; the blur baseline against SciPy; xplique 2.0.2 when it is installed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camavg_core.backends import resize_bilinear_numpy, resolve_backend
from camavg_core.perturbations import Deletion, Insertion, auc_terms, full_curve, gaussian_blur, pixel_counts, step_parameters
from camavg_core.scoring import CategoricalScore, as_score_list
from reference import reference_auc, reference_curves

N, SIZE, CHANNELS, CLASSES = 7, 6, 2, 3
P = SIZE * SIZE


def engine_curves(metrics, cams, score, perturbation):
    """(N, K + 1) curves through the engine: Y_c from the plain pass, the steps from the
    perturbed pass, put together by the perturbation (the reused point from Y_c)."""
    engine = metrics.engine
    plain = engine.plain_outputs()
    functions = as_score_list(score, len(plain.outputs))
    y_c = engine.score(functions, plain.outputs, "score_function on the model's outputs")
    steps = engine.step_scores(functions, engine.perturbed_outputs(engine.own_cams(cams, False), perturbation))
    assert steps.shape == (perturbation.steps, len(y_c))
    return perturbation.curve(y_c, steps)


# --------------------------------------------------------------------------- a softmax model
@pytest.fixture(scope="module")
def problem(linear_softmax_problem):
    return linear_softmax_problem(22, (N, SIZE, SIZE, CHANNELS), CLASSES, cam_decimals=1)  # many ties


def softmax_score(weights, bias, labels):
    def score(sample, image):
        logits = image.reshape(-1) @ weights.astype(np.float64) + bias
        e = np.exp(logits - logits.max())
        return e[labels[sample]] / e.sum()
    return score


def tf_metrics(model_fn, images):
    keras = pytest.importorskip("keras")
    from camavg_tf import AveragesCam

    inputs = keras.Input(images.shape[1:])
    return AveragesCam(keras.Model(inputs, keras.layers.Lambda(model_fn)(inputs)), images, batch_size=3)


def jax_metrics(model_fn, images):
    pytest.importorskip("jax")
    from camavg_jax import AveragesCam

    return AveragesCam(model_fn, images, batch_size=3)


def torch_metrics(model_fn, images):
    torch = pytest.importorskip("torch")
    from camavg_torch import AveragesCam

    def model(x):  # channels first, read in the reference's (H, W, C) order
        return model_fn(x.permute(0, 2, 3, 1))

    return AveragesCam(model, torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), batch_size=3)


def linear_softmax(framework, weights, bias):
    """The reference's model in the framework's own operations ((B, H, W, C) in)."""
    if framework == "tensorflow":
        tf = pytest.importorskip("tensorflow")

        return lambda x: tf.nn.softmax(tf.reshape(x, (-1, P * CHANNELS)) @ weights + bias)
    if framework == "jax":
        jax = pytest.importorskip("jax")

        return lambda x: jax.nn.softmax(x.reshape(x.shape[0], -1) @ weights + bias)
    torch = pytest.importorskip("torch")

    w, b = torch.from_numpy(weights), torch.from_numpy(bias)
    return lambda x: torch.softmax(x.reshape(len(x), -1) @ w + b, dim=-1)


FRAMEWORKS = {"tensorflow": tf_metrics, "jax": jax_metrics, "torch": torch_metrics}

CASES = [
    (Deletion, {}),
    (Insertion, {}),
    (Deletion, {"steps": 7, "baseline": 0.3, "max_fraction": 0.6}),
    (Insertion, {"steps": 7, "baseline": -0.5, "max_fraction": 0.6}),  # all K + 1 points run
    (Deletion, {"steps": 4, "baseline": "blur"}),
    (Insertion, {"steps": 4, "baseline": "blur"}),
    (Insertion, {"steps": 5, "baseline": lambda x: x * 0.5 + 0.25}),
]


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_curves_and_aucs_match_the_reference(framework, problem):
    images, cams, weights, bias, labels = problem
    metrics = FRAMEWORKS[framework](linear_softmax(framework, weights, bias), images)
    score = softmax_score(weights, bias, labels)
    for make, arguments in CASES:
        perturbation = make(**arguments)
        curves = engine_curves(metrics, cams, CategoricalScore(labels), perturbation)
        expected = reference_curves(score, images, cams, make.name, **arguments)
        assert curves.shape == (N, perturbation.curve_steps + 1)
        np.testing.assert_allclose(curves, expected, atol=1e-5, err_msg=repr(perturbation))
        np.testing.assert_allclose(auc_terms(curves), reference_auc(expected), atol=1e-5, err_msg=repr(perturbation))


@pytest.mark.slow
def test_maps_are_ranked_after_the_resize(problem):
    images, _, weights, bias, labels = problem
    small = np.random.default_rng(3).random((N, 3, 3)).astype(np.float32)  # no ties once resized
    resized = resize_bilinear_numpy(small[..., None].astype(np.float64), (SIZE, SIZE))[..., 0]
    metrics = jax_metrics(linear_softmax("jax", weights, bias), images)
    for make in (Deletion, Insertion):
        curves = engine_curves(metrics, small, CategoricalScore(labels), make(steps=12))
        expected = reference_curves(softmax_score(weights, bias, labels), images, resized, make.name, steps=12)
        np.testing.assert_allclose(curves, expected, atol=1e-5)


# --------------------------------------------------------------------------- the analytic case
def all_pixels_kept(framework):
    """(B, 2) outputs [s, 1 - s], s = 1 while no value of the image is 0, else 0."""
    if framework == "tensorflow":
        tf = pytest.importorskip("tensorflow")

        def model(x):
            s = tf.reduce_prod(tf.cast(tf.reshape(x, (tf.shape(x)[0], -1)) != 0, tf.float32), axis=1)
            return tf.stack([s, 1 - s], axis=1)
        return model
    if framework == "jax":
        jnp = pytest.importorskip("jax.numpy")

        def model(x):
            s = jnp.all(x.reshape(x.shape[0], -1) != 0, axis=1).astype(jnp.float32)
            return jnp.stack([s, 1 - s], axis=1)
        return model
    torch = pytest.importorskip("torch")

    def model(x):
        s = (x.reshape(len(x), -1) != 0).all(dim=1).float()
        return torch.stack([s, 1 - s], dim=1)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_one_pixel_per_step_gives_half_over_p(framework):
    rng = np.random.default_rng(1)
    images = rng.uniform(0.1, 1.0, (4, SIZE, SIZE, 3)).astype(np.float32)  # no pixel at the baseline 0
    cams = rng.random((4, SIZE, SIZE)).astype(np.float32)
    metrics = FRAMEWORKS[framework](all_pixels_kept(framework), images)
    score = CategoricalScore(np.zeros(4, int))
    deletion = auc_terms(engine_curves(metrics, cams, score, Deletion(steps=P)))
    insertion = auc_terms(engine_curves(metrics, cams, score, Insertion(steps=P)))
    # deletion: 1 at k = 0, then 0; insertion: 0 until k = P: (1 / 2) / P either way
    np.testing.assert_allclose(deletion, 0.5 / P, atol=1e-12)
    np.testing.assert_allclose(insertion, 0.5 / P, atol=1e-12)


# --------------------------------------------------------------------------- invariance
@pytest.fixture(scope="module")
def jax_problem(problem):
    images, _, weights, bias, labels = problem
    return jax_metrics(linear_softmax("jax", weights, bias), images), CategoricalScore(labels)


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(levels=st.lists(st.integers(0, 10), min_size=N * P, max_size=N * P),
       power=st.floats(0.3, 3.0), bend=st.floats(-4.0, 4.0).filter(lambda a: abs(a) > 0.1))
def test_a_strictly_increasing_transform_of_the_cams_changes_no_curve(jax_problem, levels, power, bend):
    metrics, score = jax_problem
    cams = (np.array(levels, np.float64) / 10).reshape(N, SIZE, SIZE)  # ties kept by any transform
    transforms = [cams**power, np.expm1(bend * cams) / np.expm1(bend)]  # [0, 1] onto [0, 1]
    for make in (Deletion, Insertion):
        expected = engine_curves(metrics, cams.astype(np.float32), score, make(steps=9))
        for transformed in transforms:
            np.testing.assert_array_equal(engine_curves(metrics, transformed.astype(np.float32), score, make(steps=9)), expected)


# --------------------------------------------------------------------------- pieces
BACKENDS = ["numpy", "tensorflow", "jax", "torch"]


@pytest.mark.parametrize("name", BACKENDS)
def test_the_blur_is_scipys_gaussian_filter_with_the_reflect_border(name):
    from scipy.ndimage import gaussian_filter

    if name != "numpy":
        pytest.importorskip(name)
    backend = resolve_backend(name)
    rng = np.random.default_rng(4)
    for shape, axes in [((2, 17, 9, 3), (1, 2)), ((2, 3, 4, 13), (2, 3)), ((1, 1, 1, 2), ())]:
        x = rng.random(shape).astype(np.float32)
        sigma = tuple(5.0 if a in axes else 0.0 for a in range(4))
        expected = gaussian_filter(x.astype(np.float64), sigma=sigma, radius=tuple(5 * (a in axes) for a in range(4)), mode="reflect")
        blurred = backend.to_numpy(gaussian_blur(backend, backend.asarray(x), axes))
        assert blurred.dtype == np.float32
        np.testing.assert_allclose(blurred, expected, atol=1e-6)


@pytest.mark.parametrize("name", BACKENDS)
def test_full_curve_puts_y_first_or_last(name):
    if name != "numpy":
        pytest.importorskip(name)
    backend = resolve_backend(name)
    y, steps = np.array([0.9, 0.8], np.float32), np.array([[0.5, 0.4], [0.1, 0.0]], np.float32)
    for where, expected in [("first", [[0.9, 0.5, 0.1], [0.8, 0.4, 0.0]]), ("last", [[0.5, 0.1, 0.9], [0.4, 0.0, 0.8]]),
                            (None, [[0.5, 0.1], [0.4, 0.0]])]:
        curve = full_curve(backend.asarray(y), backend.asarray(steps), where, backend=backend)
        np.testing.assert_allclose(backend.to_numpy(curve), expected, atol=1e-7)
        # the trapezoid by hand: (s0 / 2 + s1 + ... + sK / 2) / K
        by_hand = [(row[0] / 2 + sum(row[1:-1]) + row[-1] / 2) / (len(row) - 1) for row in expected]
        np.testing.assert_allclose(backend.to_numpy(auc_terms(curve, backend=backend)), by_hand, atol=1e-7)


def test_counts_follow_the_issues_rule_and_differ_from_xpliques_linspace_at_p_164():
    for pixels, steps, fraction in [(36, 10, 1.0), (164, 20, 1.0), (9216, 10, 0.5), (5, 10, 1.0), (100, 3, 0.29)]:
        expected = [math.floor(i * math.floor(pixels * fraction) / steps) for i in range(steps + 1)]
        assert pixel_counts(pixels, steps, fraction).tolist() == expected
    xplique = np.linspace(0, 164, 21, dtype=np.int32)  # xplique 2.0.2's counts
    assert (pixel_counts(164, 20)[15], xplique[15]) == (123, 122)
    assert np.array_equal(pixel_counts(9216, 10), np.linspace(0, 9216, 11, dtype=np.int32))


def test_the_plain_point_is_reused_and_parameters_share_one_key():
    assert (Deletion().reuses_plain, Deletion().steps, Deletion(max_fraction=0.5).reuses_plain) == ("first", 10, "first")
    assert (Insertion().reuses_plain, Insertion().steps) == ("last", 10)
    assert (Insertion(max_fraction=0.5).reuses_plain, Insertion(max_fraction=0.5).steps) == (None, 11)
    assert step_parameters(Deletion(steps=4, baseline=0.5), 8).tolist() == [[2, 0.5], [4, 0.5], [6, 0.5], [8, 0.5]]
    assert step_parameters(Insertion(steps=4), 8)[:, 0].tolist() == [0, 2, 4, 6]
    assert Deletion(steps=3, baseline=0.2, max_fraction=0.4).key == Deletion().key != Insertion().key
    assert Deletion(baseline="blur").key != Deletion().key


def test_one_trace_for_every_step_count_number_baseline_and_fraction(problem):
    images, cams, weights, bias, labels = problem
    metrics = tf_metrics(linear_softmax("tensorflow", weights, bias), images)
    engine = metrics.engine
    score = CategoricalScore(labels)
    engine_curves(metrics, cams, score, Deletion())
    traces = engine.adapter.passes(engine.options, engine.inputs).trace_count
    for arguments in ({"steps": 3}, {"baseline": 0.7}, {"steps": 12, "max_fraction": 0.3, "baseline": -1.0}):
        expected = reference_curves(softmax_score(weights, bias, labels), images, cams, "deletion", **arguments)
        np.testing.assert_allclose(engine_curves(metrics, cams, score, Deletion(**arguments)), expected, atol=1e-5)
    assert engine.adapter.passes(engine.options, engine.inputs).trace_count == traces


@pytest.mark.parametrize("arguments, error, message", [
    ({"steps": 0}, ValueError, r"deletion: steps must be an integer >= 1.*got 0"),
    ({"steps": 2.5}, ValueError, r"steps must be an integer >= 1.*got 2.5"),
    ({"max_fraction": 0.0}, ValueError, r"max_fraction must be a number in \(0, 1\].*got 0.0"),
    ({"max_fraction": 1.5}, ValueError, r"max_fraction must be a number in \(0, 1\].*got 1.5"),
    ({"baseline": "gray"}, ValueError, r"baseline must be a finite number.*\"blur\".*got 'gray'"),
    ({"baseline": float("nan")}, TypeError, r"baseline must be a finite number.*got nan"),
])
def test_bad_arguments_are_named(arguments, error, message):
    with pytest.raises(error, match=message):
        Deletion(**arguments)


# --------------------------------------------------------------------------- xplique 2.0.2
def test_deletion_and_insertion_equal_xpliques(problem, xplique_metrics):
    keras = pytest.importorskip("keras")
    from camavg_tf import AveragesCam

    images, _, weights, bias, labels = problem
    cams = np.random.default_rng(8).random((N, SIZE, SIZE)).astype(np.float32)  # no ties
    model = keras.Sequential([keras.Input((SIZE, SIZE, CHANNELS)), keras.layers.Flatten(),
                              keras.layers.Dense(CLASSES, activation="softmax")])
    model.layers[-1].set_weights([weights, bias])
    metrics = AveragesCam(model, images, batch_size=3)
    one_hot = np.eye(CLASSES, dtype=np.float32)[labels]
    for make, peer in ((Deletion, xplique_metrics.Deletion), (Insertion, xplique_metrics.Insertion)):
        ours = auc_terms(engine_curves(metrics, cams, CategoricalScore(labels), make(steps=10, baseline=0.0))).mean()
        theirs = peer(model, images, one_hot, batch_size=3, steps=10, baseline_mode=0.0).evaluate(cams)
        assert ours == pytest.approx(float(theirs), abs=1e-5)
