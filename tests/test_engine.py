"""The engine, through both adapters: no stale numbers, the same checks and messages on every
backend, streams equal to in-memory calls, and streams that resume exactly.

Every expected number comes from a NumPy reference of the model (the same weights, evaluated
with NumPy on the masked images) and the equations, never from camavg itself.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from reference import reference_auc, reference_curves, reference_metrics, reference_road_curves

N, SIZE, CLASSES = 24, 6, 3
RNG = np.random.default_rng(7)
IMAGES = RNG.uniform(0, 1, (N, SIZE, SIZE, 2)).astype(np.float32)
WEIGHTS = RNG.normal(0, 2, (2, CLASSES)).astype(np.float32)
LABELS = RNG.integers(0, CLASSES, N)


def numpy_model(x: np.ndarray, weights: np.ndarray = WEIGHTS) -> np.ndarray:
    """The model of every test here: mean over the pixels, a dense layer, a softmax."""
    logits = x.astype(np.float64).mean(axis=(1, 2)) @ weights.astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def reference_scores(cams: np.ndarray, labels=LABELS) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(N)
    y_c = numpy_model(IMAGES)[rows, labels]
    o_c = numpy_model(IMAGES * np.clip(cams, 0, 1)[..., None])[rows, labels]
    return y_c, o_c


def cam_set(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (N, SIZE, SIZE)).astype(np.float32)


class Backend:
    """One framework's doors: AveragesCam, its stream, and its native array type."""

    def __init__(self, name: str):
        self.name = name
        if name == "tensorflow":
            tf = pytest.importorskip("tensorflow")
            keras = pytest.importorskip("keras")
            import camavg_tf

            inputs = keras.Input((SIZE, SIZE, 2))
            pooled = keras.layers.GlobalAveragePooling2D()(inputs)
            dense = keras.layers.Dense(CLASSES, activation="softmax", use_bias=False)
            model = keras.Model(inputs, dense(pooled))
            dense.set_weights([WEIGHTS])
            self.model = model
            self.AveragesCam = camavg_tf.AveragesCam
            self.evaluate_dataset = camavg_tf.evaluate_dataset
            self.native = lambda array: tf.constant(array)
        else:
            jax = pytest.importorskip("jax")
            jnp = jax.numpy
            import camavg_jax

            weights = jnp.asarray(WEIGHTS)
            self.model = lambda x: jax.nn.softmax(x.mean(axis=(1, 2)) @ weights, axis=-1)
            self.AveragesCam = camavg_jax.AveragesCam
            self.evaluate_dataset = camavg_jax.evaluate_dataset
            self.native = lambda array: jnp.asarray(array)

    def metrics(self, **options):
        return self.AveragesCam(self.model, IMAGES, batch_size=5, **options)


@pytest.fixture(scope="module", params=["tensorflow", "jax"])
def fw(request):
    return Backend(request.param)


def score(labels=LABELS):
    from camavg_core.scoring import CategoricalScore

    return CategoricalScore(list(labels))


def assert_matches_reference(result, cams, labels=LABELS, tol=1e-5):
    y_c, o_c = reference_scores(cams, labels)
    np.testing.assert_allclose(result.y_c, y_c, atol=tol)
    np.testing.assert_allclose(result.o_c, o_c, atol=tol)
    expected = reference_metrics(y_c, o_c)
    for name, value in expected.items():
        assert getattr(result, name) == pytest.approx(value, abs=1e-3)


# ---------------------------------------------------------------------------- threads
@pytest.mark.slow
def test_threads_sharing_one_averagescam_get_their_own_numbers(fw, run_threads):
    metrics = fw.metrics()
    cam_sets = [cam_set(seed) for seed in range(8)]
    expected = [metrics.evaluate(cams, score()).o_c for cams in cam_sets]  # one thread first
    for cams, o_c in zip(cam_sets, expected):
        np.testing.assert_allclose(o_c, reference_scores(cams)[1], atol=1e-5)

    def worker(index: int) -> None:
        for _ in range(10):
            o_c = metrics.evaluate(cam_sets[index], score()).o_c
            np.testing.assert_allclose(o_c, expected[index], atol=1e-6, rtol=0, err_msg=f"worker {index}")

    run_threads(worker, 8)


# ---------------------------------------------------------------------------- in place
class ArrayLike:
    """An object NumPy reads through ``__array__`` (as torch tensors and many others are)."""

    def __init__(self, array):
        self.array = array

    def __array__(self, dtype=None, copy=None):
        return self.array if dtype is None else self.array.astype(dtype)


def _host_forms():
    """(name, make(base) -> (cams argument, change_in_place(new_values)))."""

    def plain(base):
        def change(values):
            base[...] = values
        return base, change

    def view(base):
        wide = np.zeros((N, SIZE, SIZE * 2), np.float32)
        wide[:, :, ::2] = base
        def change(values):
            wide[:, :, ::2] = values
        return wide[:, :, ::2], change  # non-contiguous

    def memory(base):
        def change(values):
            base[...] = values
        return memoryview(base), change

    def array_like(base):
        holder = ArrayLike(base)
        def change(values):
            holder.array[...] = values
        return holder, change

    return [("ndarray", plain), ("strided-view", view), ("memoryview", memory), ("__array__", array_like)]


@pytest.mark.parametrize("form", _host_forms(), ids=lambda form: form[0])
def test_cams_changed_in_place_give_the_new_numbers(fw, form):
    _, make = form
    metrics = fw.metrics()
    first, second = cam_set(1), cam_set(2)
    cams, change = make(first.copy())
    assert_matches_reference(metrics.evaluate(cams, score()), first)
    change(second)
    assert_matches_reference(metrics.evaluate(cams, score()), second)
    change(first)  # and back: the cache holds values, never an object
    assert metrics.average_drop(cams, score()) == pytest.approx(reference_metrics(*reference_scores(first))["average_drop"], abs=1e-3)


def test_native_arrays_and_variables(fw):
    metrics = fw.metrics()
    first, second = cam_set(3), cam_set(4)
    assert_matches_reference(metrics.evaluate(fw.native(first), score()), first)
    assert_matches_reference(metrics.evaluate(fw.native(second), score()), second)
    if fw.name == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(first)
        assert_matches_reference(metrics.evaluate(variable, score()), first)
        variable.assign(second)
        assert_matches_reference(metrics.evaluate(variable, score()), second)


def test_inputs_changed_after_construction_do_not_count(fw):
    images = IMAGES.copy()
    metrics = fw.AveragesCam(fw.model, images, batch_size=5)
    images[...] = 0.0
    assert_matches_reference(metrics.evaluate(cam_set(5), score()), cam_set(5))


# ---------------------------------------------------------------------------- score functions
def test_a_score_function_is_applied_afresh_on_every_call(fw):
    class TargetsFromAttribute:
        """User code often keeps targets on an object and changes them between calls."""

        def __init__(self, labels):
            self.labels = labels

        def __call__(self, outputs):
            return np.asarray(outputs)[np.arange(N), self.labels]

    metrics = fw.metrics()
    cams = cam_set(6)
    function = TargetsFromAttribute(LABELS)
    assert_matches_reference(metrics.evaluate(cams, function), cams, LABELS)
    function.labels = (LABELS + 1) % CLASSES
    assert_matches_reference(metrics.evaluate(cams, function), cams, (LABELS + 1) % CLASSES)


def count_perturbed_runs(metrics) -> list:
    """The list to which each perturbed pass of ``metrics``' adapter appends its perturbation
    (None for the CAM mask): the adapter's ``run`` wrapped, on this instance only."""
    adapter = metrics.engine.adapter
    runs, original = [], adapter.run

    def counting(inputs, cams, options, batch_size, *rest):
        if cams is not None:
            runs.append(rest[0] if rest else None)
        return original(inputs, cams, options, batch_size, *rest)

    adapter.run = counting
    return runs


def test_several_metrics_of_one_cam_set_cost_one_masked_pass(fw):
    metrics = fw.metrics()
    masked_runs = count_perturbed_runs(metrics)
    cams = cam_set(7)
    metrics.average_drop(cams, score())
    metrics.average_increase(cams.copy(), score())  # equal values in another array: a hit
    metrics.average_gain(cams, score((LABELS + 1) % CLASSES))  # another score: the same outputs
    assert len(masked_runs) == 1
    metrics.evaluate_many({"a": cams, "b": cam_set(8)}, score())
    assert len(masked_runs) == 2


@pytest.mark.slow
def test_equal_perturbations_built_apart_share_one_pass_and_different_ones_do_not(fw):
    """Passes are grouped by the perturbation's value (key, parameters, per-sample data), not by
    an object: two Deletion(steps=4) built apart share one pass even with a Deletion(steps=5),
    whose key is the same, measured between them."""
    from camavg_core.metrics import deletion_metric

    metrics = fw.metrics()
    runs = count_perturbed_runs(metrics)
    four_a = dataclasses.replace(deletion_metric(steps=4), name="deletion_four_a")
    five = dataclasses.replace(deletion_metric(steps=5), name="deletion_five")
    four_b = dataclasses.replace(deletion_metric(steps=4), name="deletion_four_b")
    assert four_a.perturbation is not four_b.perturbation
    cams = cam_set(9)
    result = metrics.evaluate(cams, score(), metrics=[four_a, five, four_b])
    assert [run.steps for run in runs] == [4, 5]

    for metric, steps in [(four_a, 4), (five, 5), (four_b, 4)]:
        expected = reference_auc(reference_curves(target_score, IMAGES, cams, "deletion", steps=steps))
        assert result.values[metric.name] == pytest.approx(expected.mean(), abs=1e-5)


# ---------------------------------------------------------------------------- the curve metrics' cache
def target_score(sample, image):
    """The reference's score of sample ``sample`` on one (H, W, C) image."""
    return numpy_model(image[None])[0, LABELS[sample]]


# ROAD with two fractions and no noise: its solver's own state (none of camavg's; JAX's and
# TensorFlow's compiled programs) must never give one call's numbers to another
ROAD_FRACTIONS = (0.25, 0.5)


def road(metrics, cams, score_function):
    return metrics.road(cams, score_function, fractions=ROAD_FRACTIONS, noise=0.0)


def reference_curve_values(cams, weights=WEIGHTS, labels=LABELS) -> dict:
    """Deletion and Insertion (10 steps, baseline 0) and ROAD (:data:`ROAD_FRACTIONS`, no
    noise) of ``cams`` from tests/reference.py (the model of ``weights``, targets ``labels``)."""
    def target(sample, image):
        return numpy_model(image[None], weights)[0, labels[sample]]

    values = {kind: float(reference_auc(reference_curves(target, IMAGES, cams, kind)).mean())
              for kind in ("deletion", "insertion")}
    morf, lerf = reference_road_curves(IMAGES, cams, target, ROAD_FRACTIONS)
    values["road"] = float(((lerf.mean(axis=1) - morf.mean(axis=1)) / 2).mean())
    return values


@pytest.mark.slow
def test_threads_sharing_one_averagescam_get_their_own_curves(fw, run_threads):
    metrics = fw.metrics()
    cam_sets = [cam_set(20 + seed) for seed in range(6)]
    expected = [reference_curve_values(cams) for cams in cam_sets]

    def worker(index: int) -> None:
        for _ in range(5):
            values = metrics.evaluate(cam_sets[index], score(), metrics=["deletion", "insertion"]).values
            values["road"] = road(metrics, cam_sets[index], score())
            for kind, value in expected[index].items():
                assert abs(values[kind] - value) < 1e-5, (index, kind, values[kind], value)

    run_threads(worker, 6)


@pytest.mark.slow
def test_curves_follow_a_changed_score_function_and_a_model_edited_in_place():
    """TensorFlow's Deletion and Insertion steps select through one XLA-compiled ``where``
    kept for the process (camavg_tf/backend.py), ROAD's through its solver's compiled
    kernels: none may keep a number of an earlier call. The same AveragesCam after its score
    function's targets changed and after ``set_weights``, and a new AveragesCam on the edited
    model, each against the reference of the model and targets as they are."""
    fw = Backend("tensorflow")  # a model of its own: the edit stays in this test
    metrics, cams = fw.metrics(), cam_set(40)
    other_labels, other_weights = (LABELS + 1) % CLASSES, WEIGHTS[:, ::-1] * 1.5

    class Targets:
        def __init__(self, labels):
            self.labels = labels

        def __call__(self, outputs):
            return np.asarray(outputs)[np.arange(N), self.labels]

    def measured(metrics, function):
        values = metrics.evaluate(cams, function, metrics=["deletion", "insertion"]).values
        return {**values, "road": road(metrics, cams, function)}

    function, seen = Targets(LABELS), []
    for weights, labels, who in ((WEIGHTS, LABELS, "first"), (WEIGHTS, other_labels, "targets changed"),
                                 (other_weights, other_labels, "weights set")):
        if weights is other_weights:
            fw.model.layers[-1].set_weights([other_weights])
        function.labels = labels
        expected = reference_curve_values(cams, weights, labels)
        seen.append(expected)
        for name, value in measured(metrics, function).items():
            assert value == pytest.approx(expected[name], abs=1e-5), (who, name)
    for name in seen[0]:  # each change moves every curve: else the test could not tell the calls apart
        assert min(abs(a[name] - b[name]) for a, b in zip(seen, seen[1:])) > 1e-3, name
    fresh = fw.AveragesCam(fw.model, IMAGES, batch_size=5)
    expected = reference_curve_values(cams, other_weights, other_labels)
    for name, value in measured(fresh, function).items():
        assert value == pytest.approx(expected[name], abs=1e-5), ("new AveragesCam", name)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["deletion", "insertion", "road"])
def test_cams_changed_in_place_give_the_new_curves(fw, kind):
    metrics = fw.metrics()
    measure = (lambda cams, s: road(metrics, cams, s)) if kind == "road" else getattr(metrics, kind)
    first, second = cam_set(30), cam_set(31)
    expected_first, expected_second = reference_curve_values(first)[kind], reference_curve_values(second)[kind]
    assert abs(expected_first - expected_second) > 1e-3  # else the test could not tell them apart
    for name, make in _host_forms():
        cams, change = make(first.copy())
        assert measure(cams, score()) == pytest.approx(expected_first, abs=1e-5), name
        change(second)
        assert measure(cams, score()) == pytest.approx(expected_second, abs=1e-5), name


# ---------------------------------------------------------------------------- same checks, same messages
BAD_CALLS = [
    ("float index", lambda: (cam_set(1), score([2.7] * N)), ValueError, "is not an integer"),
    ("negative index", lambda: (cam_set(1), score([-1] * N)), ValueError, "index -1 (sample 0) is out of range"),
    ("index too large", lambda: (cam_set(1), score([CLASSES] * N)), ValueError, "out of range for outputs with 3 classes"),
    ("labels as score", lambda: (cam_set(1), list(LABELS)), TypeError, "wrap them in tf_keras_vis.utils.scores.CategoricalScore"),
    ("rank-1 cams", lambda: (np.ones(N, np.float32), score()), ValueError, "expected (N, H, W), got rank 1"),
    ("one map", lambda: (cam_set(1)[0], score()), ValueError, "is a single map"),
    ("channels first", lambda: (cam_set(1)[:, None], score()), ValueError, "squeeze it"),
    ("wrong count", lambda: (cam_set(1)[:5], score()), ValueError, "cams holds 5 maps but inputs holds 24 samples"),
    ("out of range", lambda: (cam_set(1) * 3, score()), ValueError, "pass normalize=True"),
    ("nan cam", lambda: (np.where(np.arange(N)[:, None, None] == 3, np.nan, cam_set(1)), score()), ValueError, "cams[3] holds NaN"),
    ("object cams", lambda: (np.array([object()] * N), score()), TypeError, "cams must hold numbers"),
    ("string cams", lambda: ("cams.npy", score()), TypeError, "cams must be an array, got str"),
    ("list of cams", lambda: ([cam_set(1)], score()), ValueError, "cams is a list but the model has a single input"),
]


@pytest.mark.parametrize("case", BAD_CALLS, ids=lambda case: case[0])
def test_bad_input_gets_the_same_error_on_every_backend(fw, case):
    _, make, error, message = case
    cams, score_function = make()
    with pytest.raises(error) as caught:
        fw.metrics().evaluate(cams, score_function)
    assert message in str(caught.value)


def test_the_normalize_advice_works_where_it_is_given(fw):
    cams = cam_set(9) * 3
    result = fw.metrics().evaluate(cams, score(), normalize=True)
    low = cams.min(axis=(1, 2), keepdims=True)
    span = cams.max(axis=(1, 2), keepdims=True) - low
    assert_matches_reference(result, (cams - low) / span)


def test_preprocess_runs_after_masking(fw):
    """Masking raw pixels, then preprocessing (x * 2 - 1), as the Grad-CAM++ paper does."""
    cams = cam_set(10)
    result = fw.AveragesCam(fw.model, IMAGES, preprocess=lambda x: x * 2 - 1).evaluate(cams, score())
    rows = np.arange(N)
    y_c = numpy_model(IMAGES * 2 - 1)[rows, LABELS]
    o_c = numpy_model(IMAGES * cams[..., None] * 2 - 1)[rows, LABELS]
    np.testing.assert_allclose(result.y_c, y_c, atol=1e-5)
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)


# ---------------------------------------------------------------------------- streams
def batches_of(cams, size=7, labels=LABELS):
    return [(IMAGES[i:i + size], cams[i:i + size], labels[i:i + size]) for i in range(0, N, size)]


@pytest.mark.slow
def test_a_stream_gives_the_numbers_of_the_in_memory_call(fw):
    cams = cam_set(11)
    whole = fw.metrics().evaluate(cams, score())
    streamed = fw.evaluate_dataset(fw.model, batches_of(cams), keep_vectors=True)
    np.testing.assert_allclose(streamed.o_c, whole.o_c, atol=1e-6)
    for name in ("average_drop", "average_increase", "average_gain"):
        assert getattr(streamed, name) == pytest.approx(getattr(whole, name), abs=1e-6)
    assert streamed.n == whole.n == N


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["exception", "keyboard"])
def test_a_stopped_stream_resumes_to_the_numbers_of_an_uninterrupted_run(fw, stop):
    cams = cam_set(12)
    batches = batches_of(cams, size=5)

    class Boom(RuntimeError):
        pass

    def failing():
        for index, batch in enumerate(batches):
            if index == 3:
                raise Boom("the disk went away") if stop == "exception" else KeyboardInterrupt()
            yield batch

    expected_error = Boom if stop == "exception" else KeyboardInterrupt
    with pytest.raises(expected_error) as caught:
        fw.evaluate_dataset(fw.model, failing())
    checkpoint = caught.value.camavg_checkpoint
    assert checkpoint.batches == 3 and checkpoint.state.n == 15
    assert any("stopped in batch 3" in note for note in caught.value.__notes__)
    if stop == "exception":
        assert str(caught.value) == "the disk went away"  # the user's own exception, as itself
    resumed = fw.evaluate_dataset(fw.model, batches, resume=checkpoint)
    expected = reference_metrics(*reference_scores(cams))
    for name, value in expected.items():
        assert getattr(resumed, name) == pytest.approx(value, abs=1e-3)
    assert resumed.n == N


def test_a_bad_batch_is_named_and_the_batches_before_it_are_kept(fw):
    cams = cam_set(13)
    batches = batches_of(cams, size=6)
    batches[2] = (batches[2][0], batches[2][1], np.full(6, 2.5))  # float targets
    with pytest.raises(ValueError, match="is not an integer") as caught:
        fw.evaluate_dataset(fw.model, batches)
    assert caught.value.camavg_checkpoint.state.n == 12
    assert any("batch 2" in note for note in caught.value.__notes__)


@pytest.mark.slow
def test_a_stream_of_several_cam_methods_compares_them_as_in_memory(fw):
    cams = {"a": cam_set(14), "b": cam_set(15), "c": cam_set(14) * 0.5}
    whole = fw.metrics().compare(cams, score())
    batches = [(IMAGES[i:i + 5], {name: c[i:i + 5] for name, c in cams.items()}, LABELS[i:i + 5]) for i in range(0, N, 5)]
    streamed = fw.evaluate_dataset(fw.model, batches)
    for name in cams:
        expected = reference_metrics(*reference_scores(cams[name]))
        for metric, value in expected.items():
            assert getattr(streamed.results[name], metric) == pytest.approx(value, abs=1e-3)
            assert getattr(whole.results[name], metric) == pytest.approx(value, abs=1e-3)
    for mine, theirs in zip(streamed.comparisons.rows, whole.comparisons.rows):
        assert (mine.a, mine.b, mine.metric) == (theirs.a, theirs.b, theirs.metric)
        assert mine.difference == pytest.approx(theirs.difference, abs=1e-6)
        assert (mine.low, mine.high) == pytest.approx((theirs.low, theirs.high), abs=1e-6)
        assert mine.p_adjusted == pytest.approx(theirs.p_adjusted, rel=1e-6, abs=1e-12)
    # the difference is the difference of the two methods' averages (same samples)
    row = streamed.comparisons.rows[0]
    assert row.difference == pytest.approx(
        streamed.results[row.a].average_drop - streamed.results[row.b].average_drop, abs=1e-9
    )


def test_a_multi_output_sum_above_one_is_named_as_such(fw):
    """Two softmax outputs, each a probability: their summed score may exceed 1, and the
    message must say that (not "logits")."""
    peaked = WEIGHTS * 20  # confident outputs: each near 1 at the top class
    labels = np.argmax(IMAGES.astype(np.float64).mean(axis=(1, 2)) @ peaked, axis=1)
    if fw.name == "tensorflow":
        import keras

        inputs = keras.Input((SIZE, SIZE, 2))
        pooled = keras.layers.GlobalAveragePooling2D()(inputs)
        heads = [keras.layers.Dense(CLASSES, activation="softmax", use_bias=False) for _ in range(2)]
        model = keras.Model(inputs, [head(pooled) for head in heads])
        for head in heads:
            head.set_weights([peaked])
    else:
        import jax

        def model(x):
            probabilities = jax.nn.softmax(x.mean(axis=(1, 2)) @ peaked, axis=-1)
            return [probabilities, probabilities]
    metrics = fw.AveragesCam(model, IMAGES)
    functions = [score(labels), score(labels)]
    y_c, _ = metrics._get_scores(cam_set(16), functions)
    assert y_c.max() > 1  # the case: each output below 1, their sum above
    with pytest.raises(ValueError, match="2 score functions, one per model output, whose scores camavg sums"):
        metrics.evaluate(cam_set(16), functions)
    assert 0 <= metrics.average_increase(cam_set(16), functions) <= 100


def test_logits_are_found_from_the_model_even_when_they_look_like_probabilities():
    """A linear head whose outputs all lie in [0, 1] passes any value-based check; the layer
    itself says they are logits."""
    keras = pytest.importorskip("keras")
    import warnings

    import camavg_tf

    inputs = keras.Input((SIZE, SIZE, 2))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    head = keras.layers.Dense(CLASSES, use_bias=False)  # linear: logits
    model = keras.Model(inputs, head(pooled))
    head.set_weights([np.abs(WEIGHTS) / 8])  # logits in [0, 0.5] for images in [0, 1]
    metrics = camavg_tf.AveragesCam(model, IMAGES)
    y_c, _ = metrics._get_scores(cam_set(17), score())
    assert 0 <= y_c.min() and y_c.max() <= 1  # they look like probabilities
    for method in (metrics.evaluate, metrics.average_drop, metrics.average_gain):
        with pytest.raises(ValueError, match="output layer has a linear activation"):
            method(cam_set(17), score())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics.average_increase(cam_set(17), score())
        metrics.average_increase(cam_set(18), score())
    assert len([w for w in caught if "linear activation" in str(w.message)]) == 1  # once
    with_softmax = camavg_tf.AveragesCam(model, IMAGES, activation="softmax").evaluate(cam_set(17), score())
    logits = IMAGES.astype(np.float64).mean(axis=(1, 2)) @ (np.abs(WEIGHTS) / 8)
    masked = (IMAGES * cam_set(17)[..., None]).astype(np.float64).mean(axis=(1, 2)) @ (np.abs(WEIGHTS) / 8)
    softmax = lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # noqa: E731
    rows = np.arange(N)
    expected = reference_metrics(softmax(logits)[rows, LABELS], softmax(masked)[rows, LABELS])
    assert with_softmax.average_drop == pytest.approx(expected["average_drop"], abs=1e-3)
    stated = camavg_tf.AveragesCam(model, IMAGES, activation="identity").evaluate(cam_set(17), score())
    assert stated.average_drop == pytest.approx(reference_metrics(logits[rows, LABELS], masked[rows, LABELS])["average_drop"], abs=1e-3)


def test_an_error_inside_a_tf_data_pipeline_names_the_batch_and_keeps_its_message():
    tf = pytest.importorskip("tensorflow")
    import camavg_tf

    fw = Backend("tensorflow")
    cams = cam_set(19)

    def check(images, maps, labels):
        tf.debugging.assert_less(tf.reduce_max(labels), tf.constant(CLASSES - 1, labels.dtype) + 1, message="label sanity failed")
        return images, maps, labels

    labels = LABELS.copy()
    labels[15] = 99  # batch 3 of 5-sample batches
    dataset = tf.data.Dataset.from_tensor_slices((IMAGES, cams, labels)).batch(5).map(check)
    with pytest.raises(tf.errors.InvalidArgumentError, match="label sanity failed") as caught:
        camavg_tf.evaluate_dataset(fw.model, dataset)
    assert "stopped in batch 3" in caught.value.__notes__[-1]
    assert caught.value.camavg_checkpoint.state.n == 15


def test_a_large_array_written_after_the_call_does_not_reach_camavgs_copy(fw):
    """The adapters' copies share no memory with the caller's arrays, at a size (16 MB) where
    frameworks may hand out zero-copy views of NumPy buffers."""
    metrics = fw.metrics()
    big = np.full((4096, 1024), 0.25, np.float32)
    owned = metrics.engine.adapter.own(big, "float32", "cams")
    big[...] = 0.75
    assert float(np.asarray(owned).max()) == 0.25


def test_faint_maps_get_a_warning_that_suggests_normalize(fw):
    """Maps inside [0, 1] but all tiny (an unnormalised Grad-CAM) are valid input, yet mask
    nearly everything: a warning says so; exact zeros (a reference map) do not warn."""
    import warnings

    metrics = fw.metrics()
    faint = cam_set(20) * 0.0014
    with pytest.warns(UserWarning, match="pass normalize=True"):
        result = metrics.evaluate(faint, score())
    assert_matches_reference(result, faint)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.evaluate(np.zeros_like(faint), score())
        metrics.evaluate(faint, score(), normalize=True)


def test_warnings_point_at_the_users_line(fw):
    metrics = fw.metrics()
    with pytest.warns(UserWarning) as caught:
        metrics.average_drop(cam_set(21) * 0.001, score())  # this line
    assert caught[0].filename == __file__
