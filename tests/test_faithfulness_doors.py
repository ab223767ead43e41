"""Deletion, Insertion, MuFidelity and ROAD through every door: ``evaluate(metrics=[...])`` on
TensorFlow, JAX and PyTorch against the NumPy references of tests/reference.py (each perturbed
image built one sample at a time, the model called directly); ``compare`` against differences
of results; a stream (JAX and TF) against the in-memory call; the methods' ``return_vector``
forms; MuFidelity's undefined samples left out and counted, never read as 0."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from camavg_core.metrics import METRICS, deletion_metric, mufidelity_metric, road_metric
from camavg_core.scoring import CategoricalScore
from reference import (
    reference_auc,
    reference_curves,
    reference_mufidelity,
    reference_road_curves,
)
from test_perturbations import CHANNELS, CLASSES, N, SIZE, jax_metrics, tf_metrics, torch_metrics

FRAMEWORKS = {"tensorflow": tf_metrics, "jax": jax_metrics, "torch": torch_metrics}
# small schedules keep the references fast; the defaults are the same code with other parameters
DELETION = deletion_metric(steps=6)
INSERTION = deletion_metric(steps=6, kind="insertion")
MUFIDELITY = mufidelity_metric(grid_size=3, n_samples=16, seed=5)
ROAD = road_metric(fractions=(0.25, 0.5), noise=0.0)
ALL = [DELETION, INSERTION, MUFIDELITY, ROAD]


@pytest.fixture(scope="module")
def problem(linear_softmax_problem):
    return linear_softmax_problem(2223, (N, SIZE, SIZE, CHANNELS), CLASSES)  # no ties: every order is the same


def probabilities(weights, bias, labels):
    """score(x (M, H, W, C), rows) -> (M,) the target's softmax probability, float64."""
    def score(x, rows):
        logits = np.asarray(x, np.float64).reshape(len(x), -1) @ weights.astype(np.float64) + bias
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True))[np.arange(len(x)), labels[rows]]
    return score


def references(images, cams, weights, bias, labels, first_index=0):
    """{metric: (N,) terms} from the definitions, one sample at a time."""
    score = probabilities(weights, bias, labels)
    one = lambda i, image: float(score(image[None], np.array([i]))[0])  # noqa: E731
    out = {kind: reference_auc(reference_curves(one, images, cams, kind, steps=6))
           for kind in ("deletion", "insertion")}
    out["mufidelity"] = np.array([
        reference_mufidelity(images[i:i + 1], cams[i:i + 1], lambda x, i=i: score(x, np.full(len(x), i)),
                             grid_size=3, n_samples=16, seed=5, first_index=first_index + i)["terms"][0]
        for i in range(len(images))
    ])
    morf, lerf = reference_road_curves(images, cams, one, (0.25, 0.5))
    out["road"] = (lerf.mean(axis=1) - morf.mean(axis=1)) / 2
    return out


@pytest.fixture(scope="module")
def expected(problem):
    return references(*problem)


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_evaluate_gives_each_metric_of_the_references(framework, problem, expected):
    images, cams, weights, bias, labels = problem
    metrics = FRAMEWORKS[framework](images, weights, bias)
    result = metrics.evaluate(cams, CategoricalScore(labels), metrics=["average_drop", *ALL])
    plain = metrics.evaluate(cams, CategoricalScore(labels), metrics=["average_drop"])
    assert result.average_drop == plain.average_drop  # the averages' numbers are unchanged
    np.testing.assert_array_equal(result.o_c, plain.o_c)
    for metric in ALL:
        tolerance = 1e-4 if metric.name == "road" else 1e-5  # the solver's 1e-5 residual
        np.testing.assert_allclose(result.terms[metric.name], expected[metric.name], atol=tolerance, rtol=0)
        assert result.values[metric.name] == pytest.approx(np.mean(expected[metric.name]), abs=tolerance)
        low, high = result.ci[metric.name]
        assert low <= result.values[metric.name] <= high
    assert result.n == N and result.skipped == 0 and result.undefined == {"mufidelity": 0}


@pytest.mark.slow
def test_each_pass_runs_once_and_equal_parameters_share_it(problem):
    images, cams, weights, bias, labels = problem
    metrics = jax_metrics(images, weights, bias)
    calls = []
    run = metrics.engine.adapter.run
    metrics.engine.adapter.run = lambda *a, **k: calls.append(a[4:5]) or run(*a, **k)
    score = CategoricalScore(labels)
    metrics.evaluate(cams, score, metrics=["average_drop", "average_gain", DELETION, INSERTION])
    assert len(calls) == 3  # the mask (two averages), deletion, insertion
    metrics.evaluate(cams, score, metrics=[deletion_metric(steps=6), "average_increase"])
    assert len(calls) == 3  # equal parameters, same CAMs: every pass from the cache


@pytest.mark.slow
def test_the_methods_return_the_documented_vectors(problem, expected):
    images, cams, weights, bias, labels = problem
    metrics = jax_metrics(images, weights, bias)
    score, scores = CategoricalScore(labels), probabilities(weights, bias, labels)
    value, aucs, curves = metrics.deletion(cams, score, steps=6, return_vector=True)
    one = lambda i, image: float(scores(image[None], np.array([i]))[0])  # noqa: E731
    np.testing.assert_allclose(curves, reference_curves(one, images, cams, "deletion", steps=6), atol=1e-6)
    np.testing.assert_allclose(aucs, expected["deletion"], atol=1e-6)
    assert value == pytest.approx(expected["deletion"].mean(), abs=1e-6)
    assert metrics.insertion(cams, score, steps=6) == pytest.approx(expected["insertion"].mean(), abs=1e-6)
    value, terms, morf, lerf = metrics.road(cams, score, fractions=(0.25, 0.5), noise=0.0, return_vector=True)
    assert morf.shape == lerf.shape == (N, 2)
    np.testing.assert_allclose(terms, (lerf.mean(axis=1) - morf.mean(axis=1)) / 2, atol=1e-12)
    assert metrics.mufidelity(cams, score, grid_size=3, n_samples=16, seed=5) == pytest.approx(
        expected["mufidelity"].mean(), abs=1e-6)
    value, y_c, o_c = metrics.average_drop(cams, score, return_vector=True)  # the seed's form stays
    assert y_c.shape == o_c.shape == (N,)


@pytest.mark.slow
def test_undefined_mufidelity_samples_are_left_out_and_counted(problem):
    images, cams, weights, bias, labels = problem
    cams = cams.copy()
    cams[2] = 0.0  # a constant CAM: every subset sums to 0, the correlation is undefined
    metrics = jax_metrics(images, weights, bias)
    result = metrics.evaluate(cams, CategoricalScore(labels), metrics=[MUFIDELITY, DELETION])
    terms = references(images, cams, weights, bias, labels)["mufidelity"]
    assert np.isnan(terms[2]) and np.isnan(result.terms["mufidelity"][2])
    assert result.undefined == {"mufidelity": 1}
    assert result.n_of("mufidelity") == N - 1 and result.n_of("deletion") == N and result.n == N
    assert result.values["mufidelity"] == pytest.approx(np.nanmean(terms), abs=1e-6)  # never read as 0
    assert any("mufidelity: 1 of 7 samples left out" in note for note in result.notes)


def assert_rows_are_result_differences(compared, tolerance):
    """Each comparison row's difference is its two results' values' difference."""
    results = compared.results
    for row in compared.comparisons.rows:
        assert row.difference == pytest.approx(results[row.a].values[row.metric] - results[row.b].values[row.metric],
                                               abs=tolerance)


@pytest.mark.slow
def test_compare_pairs_the_terms_in_each_metrics_direction(problem):
    images, cams, weights, bias, labels = problem
    metrics = jax_metrics(images, weights, bias)
    score = CategoricalScore(labels)
    sets = {"a": cams, "b": cams[::-1].copy(), "c": 1.0 - cams}
    names = ["average_drop", *ALL]
    compared = metrics.compare(sets, score, metrics=names)
    results = {name: metrics.evaluate(c, score, metrics=names) for name, c in sets.items()}
    rows = {(row.a, row.b, row.metric): row for row in compared.comparisons.rows}
    assert len(rows) == 3 * len(names)
    for (a, b, metric), row in rows.items():
        # the difference is the results' difference, in the metric's unit
        assert row.difference == pytest.approx(results[a].values[metric] - results[b].values[metric], abs=1e-9)
        assert row.margin == (0.5 if metric == "average_drop" else 0.005)
        assert row.low <= row.difference <= row.high or row.p_value == 1.0
        bounds = METRICS[metric].difference_bounds
        assert bounds[0] <= row.low <= row.high <= bounds[1]
    # the averages' rows are those of compare_methods on the scores, as before
    from camavg_core.compare import compare_methods

    alone = compare_methods(results["a"].y_c, {n: r.o_c for n, r in results.items()}, metrics=["average_drop"])
    for row in alone.rows:
        assert rows[(row.a, row.b, row.metric)].p_value == row.p_value
    # Holm per metric across the three pairs
    for metric in ["average_drop", *(m.name for m in ALL)]:
        raw = sorted(rows[(a, b, metric)].p_value for a, b in (("a", "b"), ("a", "c"), ("b", "c")))
        adjusted = sorted(rows[(a, b, metric)].p_adjusted for a, b in (("a", "b"), ("a", "c"), ("b", "c")))
        assert adjusted[0] == pytest.approx(min(1.0, 3 * raw[0]))


@pytest.mark.slow
@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_a_sample_one_method_skips_is_left_out_of_every_methods_result(framework, problem, expected):
    """Under nan_policy='omit' a degenerate map (NaN) of one method skips that sample for
    every method in compare, as the paired comparison skips it: each row's difference is the
    difference of the results beside it. Until 2026-12-06 the other method kept the sample
    (its value on N samples, the pairs on N - 1)."""
    images, cams, weights, bias, labels = problem
    metrics = FRAMEWORKS[framework](images, weights, bias, nan_policy="omit")
    degenerate = cams.copy()
    degenerate[2, 0, 0] = np.nan
    other = cams[::-1].copy()
    names = ["average_drop", DELETION, MUFIDELITY, ROAD]
    compared = metrics.compare({"a": degenerate, "b": other}, CategoricalScore(labels), metrics=names)
    keep = np.arange(N) != 2
    reference_b = references(images, other, weights, bias, labels)
    for name, result in compared.results.items():
        assert (result.n, result.skipped) == (N - 1, 1), name
    for metric in (DELETION, MUFIDELITY, ROAD):
        for name, reference in (("a", expected), ("b", reference_b)):
            got = compared.results[name].values[metric.name]
            assert got == pytest.approx(reference[metric.name][keep].mean(), abs=1e-5), (name, metric.name)
    assert_rows_are_result_differences(compared, 1e-9)


@pytest.mark.slow
def test_a_method_against_itself_is_no_difference(problem):
    images, cams, weights, bias, labels = problem
    metrics = jax_metrics(images, weights, bias)
    compared = metrics.compare({"a": cams, "b": cams.copy()}, CategoricalScore(labels), metrics=ALL)
    for metric in ALL:
        comparison = compared.comparisons.comparisons[("a", "b")]
        assert comparison.no_difference[metric.name] and comparison.p_value[metric.name] == 1.0


def batches(images, cams, labels, size, several=False):
    for start in range(0, len(images), size):
        part = slice(start, start + size)
        c = {"a": cams[part], "b": cams[::-1][part].copy()} if several else cams[part]
        yield images[part], c, labels[part]


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["jax", "tensorflow"])
def test_a_stream_gives_the_in_memory_numbers(framework, problem):
    images, cams, weights, bias, labels = problem
    score = CategoricalScore(labels)
    if framework == "jax":
        jax = pytest.importorskip("jax")
        from camavg_jax import evaluate_dataset

        def model(x):
            return jax.nn.softmax(x.reshape(x.shape[0], -1) @ weights + bias)
        memory = jax_metrics(images, weights, bias)
    else:
        keras = pytest.importorskip("keras")
        from camavg_tf import evaluate_dataset

        model = keras.Sequential([keras.Input((SIZE, SIZE, CHANNELS)), keras.layers.Flatten(),
                                  keras.layers.Dense(CLASSES, activation="softmax")])
        model.layers[-1].set_weights([weights, bias])
        memory = tf_metrics(images, weights, bias)
    names = ["average_gain", *ALL]
    whole = memory.evaluate(cams, score, metrics=names)
    streamed = evaluate_dataset(model, batches(images, cams, labels, 3), metrics=names)
    for name in ["average_gain", *(m.name for m in ALL)]:
        # float32 scores of the same samples through other compiled shapes: within 1e-6
        assert streamed.values[name] == pytest.approx(whole.values[name], abs=1e-6)
        np.testing.assert_allclose(streamed.ci[name], whole.ci[name], atol=1e-6)
    assert (streamed.n, streamed.skipped) == (whole.n, whole.skipped)
    # several methods: the in-memory comparison of the streamed terms
    compared = memory.compare({"a": cams, "b": cams[::-1].copy()}, score, metrics=ALL)
    streamed = evaluate_dataset(model, batches(images, cams, labels, 2, several=True), metrics=ALL)
    for got, want in zip(streamed.comparisons.rows, compared.comparisons.rows):
        assert (got.a, got.b, got.metric) == (want.a, want.b, want.metric)
        assert got.difference == pytest.approx(want.difference, abs=1e-6)
        assert got.p_value == pytest.approx(want.p_value, abs=1e-6)


def test_the_two_vector_doors_refuse_a_metric_of_another_perturbation():
    from camavg_core import compare, summarize

    with pytest.raises(ValueError, match="deletion cannot be computed from the two score vectors"):
        summarize([0.5, 0.4], [0.4, 0.1], metrics=["deletion"])
    with pytest.raises(ValueError, match="road cannot be computed"):
        compare([0.5, 0.4], [0.4, 0.1], [0.3, 0.2], metrics=["road"])


def test_an_extreme_skewness_correction_is_flagged_naming_its_metric():
    from scipy import stats

    from camavg_core import MetricState

    rng = np.random.default_rng(0)
    # drop terms near 0.95 with two zeros: skewness about -5, as the Average Drop example
    o = np.where(rng.random(100) < 0.02, 0.8, 0.8 * (0.1 * rng.random(100)))
    y = np.full(100, 0.8)
    result = MetricState.empty(["average_drop"]).update(y, o).result()
    terms = np.maximum(y - o, 0) / (y + 1e-7)
    assert stats.skew(terms) < -5
    low, high = result.ci["average_drop"]
    half = 100 * stats.t.ppf(0.975, 99) * terms.std(ddof=1) / 10  # the plain t half-width, by hand
    assert max(result.average_drop - low, high - result.average_drop) > 2 * half
    assert any(note.startswith("average_drop: approximate interval, extreme skewness") for note in result.notes)
    mild = MetricState.empty(["average_drop"]).update(y, 0.8 * rng.random(100)).result()
    assert not any("extreme skewness" in note for note in mild.notes)


@pytest.mark.slow
@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_a_non_finite_input_is_skipped_by_every_metric_under_omit(framework, problem, expected):
    """The sample is left out and counted, and the others keep their reference terms: ROAD's
    solver once stopped for the whole batch at an image holding NaN (its largest rz - limit was
    NaN), leaving the other images of the batch unconverged."""
    images, cams, weights, bias, labels = problem
    bad = images.copy()
    bad[4, 0, 0, 0] = np.nan  # with batch_size=3, beside samples 3 and 5
    metrics = FRAMEWORKS[framework](bad, weights, bias, nan_policy="omit")
    result = metrics.evaluate(cams, CategoricalScore(labels), metrics=["average_drop", DELETION, MUFIDELITY, ROAD])
    assert (result.n, result.skipped) == (N - 1, 1)
    keep = np.arange(N) != 4
    for metric in (DELETION, MUFIDELITY, ROAD):
        assert np.isnan(result.terms[metric.name][4])
        np.testing.assert_allclose(result.terms[metric.name][keep], expected[metric.name][keep], atol=1e-5)
        assert result.values[metric.name] == pytest.approx(expected[metric.name][keep].mean(), abs=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_road_noise_is_the_same_field_channels_first_and_last(framework, problem):
    """ROAD with noise against the reference, which adds sample i's (H, W, C) field
    ``default_rng([seed, i]).standard_normal``: PyTorch's images are channels first, and drew
    their noise in that order until 2026-12-06, so the same images got other ROAD numbers
    there than on TensorFlow and JAX."""
    images, cams, weights, bias, labels = problem
    noisy = road_metric(fractions=(0.25, 0.5), noise=0.05, seed=3)
    score = probabilities(weights, bias, labels)
    morf, lerf = reference_road_curves(images, cams, lambda i, image: float(score(image[None], np.array([i]))[0]),
                                       (0.25, 0.5), noise=0.05, seed=3)
    result = FRAMEWORKS[framework](images, weights, bias).evaluate(cams, CategoricalScore(labels), metrics=[noisy])
    np.testing.assert_allclose(result.terms[noisy.name], (lerf.mean(axis=1) - morf.mean(axis=1)) / 2, atol=1e-5)


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_default_road_noise_on_inputs_outside_0_1_warns_once_and_names_the_fix(framework, problem):
    """ROAD's default noise, 0.01, is the original's for [0, 1] pixels: on the same images
    times 255 (the weights divided by 255: the same model) it is 255x too small, which the
    user is told once per object, at their own line; [0, 1] inputs and a noise chosen for
    [0, 255] pixels are not warned of."""
    from camavg_core import RoadNoiseWarning

    images, cams, weights, bias, labels = problem
    score = CategoricalScore(labels)
    default, chosen = road_metric(fractions=(0.5,)), road_metric(fractions=(0.5,), noise=2.55)
    for scale, metric, warned in ((255.0, default, 1), (1.0, default, 0), (255.0, chosen, 0)):
        metrics = FRAMEWORKS[framework](images * np.float32(scale), weights / np.float32(scale), bias)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            metrics.evaluate(cams, score, metrics=[metric])
            metrics.road(cams, score, fractions=(0.5,), noise=metric.perturbation.noise)
        found = [w for w in caught if issubclass(w.category, RoadNoiseWarning)]
        assert len(found) == warned, (scale, metric.perturbation)
        if found:
            assert "noise=2.55" in str(found[0].message) and found[0].filename == __file__


def test_a_stream_of_such_inputs_warns_once_under_the_default_filter(problem):
    """Each batch of a stream has an engine of its own; the warning's one text makes Python's
    default filter show it once."""
    jax = pytest.importorskip("jax")
    from camavg_core import RoadNoiseWarning
    from camavg_jax.streaming import evaluate_dataset

    images, cams, weights, bias, labels = problem
    batches = [(images[i:i + 4] * np.float32(255), cams[i:i + 4], labels[i:i + 4]) for i in (0, 4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        evaluate_dataset(lambda x: jax.nn.softmax(x.reshape(x.shape[0], -1) @ (weights / 255) + bias), batches,
                         metrics=[road_metric(fractions=(0.5,))])
    assert [w.category for w in caught] == [RoadNoiseWarning]


@pytest.mark.slow
def test_the_averages_alone_are_compared_on_the_samples_every_method_kept(problem):
    """The same, with the averages alone (summed from the score vectors): against the
    averages of the kept samples' scores by hand."""
    images, cams, weights, bias, labels = problem
    metrics = jax_metrics(images, weights, bias, nan_policy="omit")
    degenerate = cams.copy()
    degenerate[5, 1, 1] = np.nan
    compared = metrics.compare({"a": degenerate, "b": cams[::-1].copy()}, CategoricalScore(labels))
    keep = np.arange(N) != 5
    plain_b = metrics.evaluate(cams[::-1].copy(), CategoricalScore(labels))  # every sample kept alone
    y, o = plain_b.y_c[keep], plain_b.o_c[keep]
    assert compared.results["b"].average_drop == pytest.approx(100 * np.mean(np.maximum(0, y - o) / y), abs=1e-6)
    assert compared.results["b"].average_increase == pytest.approx(100 * np.mean(y < o), abs=1e-9)
    assert_rows_are_result_differences(compared, 1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("names", [None, ["average_drop", ROAD]], ids=["averages", "road"])
def test_a_stream_compares_on_the_samples_every_method_kept(problem, names):
    """A stream of two methods, one map NaN, under omit: the in-memory comparison's results."""
    jax = pytest.importorskip("jax")
    from camavg_jax import evaluate_dataset

    images, cams, weights, bias, labels = problem
    degenerate = cams.copy()
    degenerate[4, 0, 1] = np.nan
    sets = {"a": degenerate, "b": cams[::-1].copy()}
    memory = jax_metrics(images, weights, bias, nan_policy="omit").compare(sets, CategoricalScore(labels), metrics=names)

    def stream():
        for start in range(0, N, 3):
            part = slice(start, start + 3)
            yield images[part], {name: c[part] for name, c in sets.items()}, labels[part]

    streamed = evaluate_dataset(lambda x: jax.nn.softmax(x.reshape(x.shape[0], -1) @ weights + bias), stream(),
                                metrics=names, nan_policy="omit")
    for name in sets:
        assert (streamed.results[name].n, streamed.results[name].skipped) == (N - 1, 1)
        for metric, value in memory.results[name].values.items():
            assert streamed.results[name].values[metric] == pytest.approx(value, abs=1e-6)
    assert_rows_are_result_differences(streamed, 1e-6)
