"""Perturbation schedules in the compiled passes: a metric written only here (the drop when the
most salient pixels are removed) runs through the engine on TensorFlow, JAX and PyTorch and
gives the numbers of a NumPy reference; K steps, another K or other parameter values do not
re-trace; the stable argsort of every backend against NumPy's."""

from __future__ import annotations

import numpy as np
import pytest

from camavg_core.backends import resolve_backend
from camavg_core.perturbations import CAM_MASK, salience_ranks, step_parameters
from camavg_core.scoring import CategoricalScore, as_score_list

N, SIZE, CHANNELS, CLASSES = 7, 6, 2, 3


# --------------------------------------------------------------------------- the test-only metric
class RemoveMostSalient:
    """Step k zeroes the ``fractions[k]`` most salient pixels of each sample (stable ranking of
    the CAM values, ties by row-major index), all channels."""

    key = ("remove_most_salient",)

    def __init__(self, fractions):
        self.fractions = tuple(fractions)
        self.steps = len(self.fractions)

    def parameters(self, n_pixels):
        return np.array([[round(f * n_pixels)] for f in self.fractions], np.float32)

    def prepare(self, backend, x, cams):
        return salience_ranks(backend, cams)

    def apply(self, backend, x, ranks, parameter):
        return x * backend.astype(ranks >= parameter[0], backend.dtype_name(x))


def removal_drop(metrics, cams, score, perturbation):
    """(K,) drops in percent, 100 mean(max(0, Y - O_k) / Y), and the (K, N) scores O."""
    engine = metrics.engine
    plain = engine.plain_outputs()
    functions = as_score_list(score, len(plain.outputs))
    y_c = engine.score(functions, plain.outputs, "score_function on the model's outputs")
    o_c = engine.step_scores(functions, engine.perturbed_outputs(engine.own_cams(cams, False), perturbation))
    return 100 * np.mean(np.maximum(0.0, y_c - o_c) / y_c, axis=1), o_c


# --------------------------------------------------------------------------- the NumPy reference
def reference_ranks(cams):
    flat = cams.reshape(len(cams), -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(flat.shape[1]), flat.shape), axis=1)
    return ranks.reshape(cams.shape)


def reference(images, cams, weights, bias, labels, fractions):
    """(K,) drops and (K, N) scores in float64, written from the definition."""
    def probabilities(x):
        logits = x.reshape(len(x), -1).astype(np.float64) @ weights + bias
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True))[np.arange(len(x)), labels]

    y_c = probabilities(images)
    ranks = reference_ranks(cams)
    o_c = np.stack([probabilities(images * (ranks >= round(f * SIZE * SIZE))[..., None]) for f in fractions])
    return 100 * np.mean(np.maximum(0.0, y_c - o_c) / y_c, axis=1), o_c


@pytest.fixture(scope="module")
def problem(linear_softmax_problem):
    return linear_softmax_problem(21, (N, SIZE, SIZE, CHANNELS), CLASSES, cam_decimals=1)  # many ties


def tf_metrics(images, weights, bias, **options):
    keras = pytest.importorskip("keras")
    from camavg_tf import AveragesCam

    model = keras.Sequential([keras.Input((SIZE, SIZE, CHANNELS)), keras.layers.Flatten(),
                              keras.layers.Dense(CLASSES, activation="softmax")])
    model.layers[-1].set_weights([weights, bias])
    return AveragesCam(model, images, batch_size=3, **options)


def jax_metrics(images, weights, bias, **options):
    jax = pytest.importorskip("jax")
    from camavg_jax import AveragesCam

    return AveragesCam(lambda x: jax.nn.softmax(x.reshape(x.shape[0], -1) @ weights + bias), images, batch_size=3,
                       **options)


def torch_metrics(images, weights, bias, **options):
    torch = pytest.importorskip("torch")
    from camavg_torch import AveragesCam

    w, b = torch.from_numpy(weights), torch.from_numpy(bias)

    def model(x):  # channels first, read in the reference's (H, W, C) order
        return torch.softmax(x.permute(0, 2, 3, 1).reshape(len(x), -1) @ w + b, dim=-1)

    return AveragesCam(model, np.ascontiguousarray(images.transpose(0, 3, 1, 2)), batch_size=3, **options)


FRAMEWORKS = {"tensorflow": tf_metrics, "jax": jax_metrics, "torch": torch_metrics}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_top_half_drop_matches_numpy(framework, problem):
    images, cams, weights, bias, labels = problem
    metrics = FRAMEWORKS[framework](images, weights, bias)
    drop, o_c = removal_drop(metrics, cams, CategoricalScore(labels), RemoveMostSalient([0.5]))
    expected_drop, expected_o = reference(images, cams, weights, bias, labels, [0.5])
    assert o_c.shape == (1, N)
    np.testing.assert_allclose(o_c, expected_o, atol=1e-5)
    np.testing.assert_allclose(drop / 100, expected_drop / 100, atol=1e-5)  # fractions to 1e-5


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_four_steps_give_four_rows_of_scores(framework, problem):
    images, cams, weights, bias, labels = problem
    metrics = FRAMEWORKS[framework](images, weights, bias)
    fractions = [0.25, 0.5, 0.75, 1.0]
    drop, o_c = removal_drop(metrics, cams, CategoricalScore(labels), RemoveMostSalient(fractions))
    expected_drop, expected_o = reference(images, cams, weights, bias, labels, fractions)
    assert o_c.shape == (4, N) and o_c.dtype == np.float64
    np.testing.assert_allclose(o_c, expected_o, atol=1e-5)
    np.testing.assert_allclose(drop / 100, expected_drop / 100, atol=1e-5)  # fractions to 1e-5
    # all pixels removed: every image is zero, so every score is softmax(bias)[label]
    softmax_bias = np.exp(bias - bias.max()) / np.exp(bias - bias.max()).sum()
    np.testing.assert_allclose(o_c[3], softmax_bias[labels], atol=1e-6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_cam_mask_is_the_averages_masked_scores(framework, problem):
    images, cams, weights, bias, labels = problem
    metrics = FRAMEWORKS[framework](images, weights, bias)
    _, o_c = removal_drop(metrics, cams, CategoricalScore(labels), CAM_MASK)
    probabilities = (images * cams[..., None]).reshape(N, -1).astype(np.float64) @ weights + bias
    probabilities = np.exp(probabilities - probabilities.max(axis=1, keepdims=True))
    expected = (probabilities / probabilities.sum(axis=1, keepdims=True))[np.arange(N), labels]
    np.testing.assert_allclose(o_c, expected[None], atol=1e-5)
    np.testing.assert_array_equal(o_c[0], metrics.evaluate(cams, CategoricalScore(labels)).o_c)


# --------------------------------------------------------------------------- no re-trace
def _traces(framework, metrics):
    if framework == "tensorflow":
        engine = metrics.engine
        return engine.adapter.passes(engine.options, engine.inputs).trace_count
    return metrics.trace_count


@pytest.mark.parametrize("framework", ["tensorflow", "jax"])
def test_other_step_counts_and_values_do_not_retrace(framework, problem):
    images, cams, weights, bias, labels = problem
    metrics = FRAMEWORKS[framework](images, weights, bias)
    score = CategoricalScore(labels)
    before = _traces(framework, metrics)
    removal_drop(metrics, cams, score, RemoveMostSalient([0.1, 0.3, 0.5, 0.7, 0.9]))  # K = 5
    traced = _traces(framework, metrics)
    # TF: one trace of the pass; JAX: the first step (with prepare) and the later steps
    assert traced - before == (1 if framework == "tensorflow" else 2)
    for fractions in ([0.5], [0.2], np.linspace(0.05, 1.0, 10), [0.0, 0.2, 0.4, 0.6, 0.8]):
        drop, _ = removal_drop(metrics, cams, score, RemoveMostSalient(fractions))
        np.testing.assert_allclose(drop / 100, reference(images, cams, weights, bias, labels, fractions)[0] / 100, atol=1e-5)
    assert _traces(framework, metrics) == traced


# --------------------------------------------------------------------------- the engine's cache
@pytest.mark.slow
def test_the_cache_is_keyed_by_the_perturbation_and_its_parameters(problem):
    images, cams, weights, bias, labels = problem
    metrics = jax_metrics(images, weights, bias)
    runs = []
    run = metrics.adapter.run
    metrics.adapter.run = lambda inputs, cams, *rest: runs.append(rest[2:]) or run(inputs, cams, *rest)
    score = CategoricalScore(labels)
    half = RemoveMostSalient([0.5])
    removal_drop(metrics, cams, score, half)
    removal_drop(metrics, cams.copy(), score, RemoveMostSalient([0.5]))  # equal values and key: a hit
    assert len(runs) == 1
    removal_drop(metrics, cams, score, RemoveMostSalient([0.25]))  # other parameters
    metrics.evaluate(cams, score)  # another perturbation (the mask)
    removal_drop(metrics, cams, score, half)
    assert [rest[0].fractions if rest else "the mask" for rest in runs] == [(0.5,), (0.25,), "the mask", (0.5,)]


def test_step_parameters_are_checked():
    class Bad(RemoveMostSalient):
        def parameters(self, n_pixels):
            return np.zeros(self.steps, np.float32)  # (K,), not (K, P)

    with pytest.raises(ValueError, match=r"returned shape \(2,\).*\(K, P\) array"):
        step_parameters(Bad([0.1, 0.2]), 36)
    with pytest.raises(ValueError, match="steps=0.*integer K >= 1"):
        step_parameters(RemoveMostSalient([]), 36)
    assert step_parameters(CAM_MASK, 36).shape == (1, 1)


# --------------------------------------------------------------------------- backends
BACKENDS = ["numpy", "tensorflow", "jax", "torch"]


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKENDS)
def test_stable_argsort_inverse_permutation_and_ranks_match_numpy(name):
    if name != "numpy":
        pytest.importorskip(name)
    backend = resolve_backend(name)
    values = np.round(np.random.default_rng(5).random((4, 30)), 1).astype(np.float32)  # ties
    array = backend.asarray(values)
    for descending in (False, True):
        expected = np.argsort(-values if descending else values, axis=1, kind="stable")
        np.testing.assert_array_equal(backend.to_numpy(backend.argsort(array, descending=descending)), expected)
    order = np.stack([np.random.default_rng(row).permutation(30) for row in range(4)])
    inverse = backend.to_numpy(backend.invert_permutation(backend.asarray(order)))
    np.testing.assert_array_equal(np.take_along_axis(inverse, order, axis=1), np.broadcast_to(np.arange(30), (4, 30)))
    maps = values.reshape(4, 5, 6, 1)
    np.testing.assert_array_equal(backend.to_numpy(salience_ranks(backend, backend.asarray(maps))), reference_ranks(maps))


# --------------------------------------------------------------------------- the description's part
@pytest.mark.slow
def test_the_removal_metric_works_in_evaluate_compare_and_a_stream(problem):
    from camavg_core.metrics import Metric

    images, cams, weights, bias, labels = problem
    metric = Metric(
        name="top_half_drop", title="Top-half Drop", unit="percent", scale=100.0, higher_is_better=False,
        scores="probabilities", perturbation=RemoveMostSalient([0.5]),
        terms=lambda y, curve, backend: backend.maximum(y - curve[0], 0.0) / y,
        interval="hall_t", bounds=(0.0, 100.0), return_vector="curves",
    )
    expected = reference(images, cams, weights, bias, labels, [0.5])[0][0]
    other = cams[::-1].copy()
    expected_other = reference(images, other, weights, bias, labels, [0.5])[0][0]
    for make, stream in ((tf_metrics, tf_stream), (jax_metrics, jax_stream)):
        metrics = make(images, weights, bias)
        result = metrics.evaluate(cams, CategoricalScore(labels), metrics=[metric])
        assert result.values["top_half_drop"] == pytest.approx(expected, abs=1e-5)
        compared = metrics.compare({"a": cams, "b": other}, CategoricalScore(labels), metrics=[metric])
        assert compared.results["a"].values["top_half_drop"] == pytest.approx(expected, abs=1e-5)
        (row,) = compared.comparisons.rows
        assert row.difference == pytest.approx(expected - expected_other, abs=1e-4)
        batches = [(images[i:i + 3], cams[i:i + 3], labels[i:i + 3]) for i in range(0, N, 3)]
        streamed = stream(batches, weights, bias, [metric])
        assert streamed.values["top_half_drop"] == pytest.approx(expected, abs=1e-5)


def tf_stream(batches, weights, bias, metrics):
    keras = pytest.importorskip("keras")
    from camavg_tf import evaluate_dataset

    model = keras.Sequential([keras.Input((SIZE, SIZE, CHANNELS)), keras.layers.Flatten(),
                              keras.layers.Dense(CLASSES, activation="softmax")])
    model.layers[-1].set_weights([weights, bias])
    return evaluate_dataset(model, batches, metrics=metrics)


def jax_stream(batches, weights, bias, metrics):
    jax = pytest.importorskip("jax")
    from camavg_jax import evaluate_dataset

    return evaluate_dataset(lambda x: jax.nn.softmax(x.reshape(x.shape[0], -1) @ weights + bias), batches,
                            metrics=metrics)


def test_a_strategy_runs_the_mask_and_other_perturbations(problem):
    tf = pytest.importorskip("tensorflow")
    images, cams, weights, bias, labels = problem
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        metrics = tf_metrics(images, weights, bias)
    _, o_c = removal_drop(metrics, cams, CategoricalScore(labels), CAM_MASK)
    np.testing.assert_array_equal(o_c[0], metrics.evaluate(cams, CategoricalScore(labels)).o_c)
    drops, scores = removal_drop(metrics, cams, CategoricalScore(labels), RemoveMostSalient([0.25, 0.5]))
    expected_drops, expected_scores = reference(images, cams, weights, bias, labels, [0.25, 0.5])
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    np.testing.assert_allclose(drops, expected_drops, atol=1e-3)
