"""MuFidelity and the per-sample extension of perturbations, against oracles: the NumPy reference
of tests/reference.py (written from the definition, one sample at a time), scipy's correlations,
``tf.image.resize``'s nearest-neighbour rule, and the analytic case of issue 22 (a model returning
the mean of a single-channel image in [0, 1], the image as its own map: every correlation is 1).
The same numbers on TensorFlow, JAX and PyTorch, at batch sizes 1, 7 and 32, and for samples
evaluated with an offset (a stream's later batch)."""

from __future__ import annotations

import numpy as np
import pytest

from camavg_core.mufidelity import MuFidelity, mufidelity_terms, nearest_cells, subset_cam_sums, undefined_terms
from camavg_core.scoring import CategoricalScore, as_score_list
from reference import reference_correlation, reference_mufidelity

N, HEIGHT, WIDTH, CHANNELS, CLASSES = 7, 10, 8, 2, 3


# --------------------------------------------------------------------------- running it
def run_mufidelity(metrics, cams, score, perturbation, correlation="spearman"):
    """(terms (N,), curve (K, N), CAM sums (K, N)) through the engine, as a description would."""
    engine = metrics.engine
    plain = engine.plain_outputs()
    functions = as_score_list(score, len(plain.outputs))
    y = engine.score(functions, plain.outputs, "score_function on the model's outputs")
    cam_set = engine.own_cams(cams, False)
    curve = engine.step_scores(functions, engine.perturbed_outputs(cam_set, perturbation))
    sums = subset_cam_sums(engine, cam_set, perturbation)
    return mufidelity_terms(y, curve, sums, correlation), curve, sums


@pytest.fixture(scope="module")
def problem(linear_softmax_problem):
    return linear_softmax_problem(22, (N, HEIGHT, WIDTH, CHANNELS), CLASSES)


def reference_score(weights, bias, labels_of):
    def score(x, labels):
        logits = x.reshape(len(x), -1) @ weights.astype(np.float64) + bias
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True))[np.arange(len(x)), labels]
    return score


def tf_metrics(images, weights, bias, batch_size=3):
    keras = pytest.importorskip("keras")
    from camavg_tf import AveragesCam

    model = keras.Sequential([keras.Input((HEIGHT, WIDTH, CHANNELS)), keras.layers.Flatten(),
                              keras.layers.Dense(CLASSES, activation="softmax")])
    model.layers[-1].set_weights([weights, bias])
    return AveragesCam(model, images, batch_size=batch_size)


def jax_metrics(images, weights, bias, batch_size=3):
    jax = pytest.importorskip("jax")
    from camavg_jax import AveragesCam

    return AveragesCam(lambda x: jax.nn.softmax(x.reshape(x.shape[0], -1) @ weights + bias), images, batch_size=batch_size)


def torch_metrics(images, weights, bias, batch_size=3):
    torch = pytest.importorskip("torch")
    from camavg_torch import AveragesCam

    w, b = torch.from_numpy(weights), torch.from_numpy(bias)

    def model(x):  # channels first, read in the reference's (H, W, C) order
        return torch.softmax(x.permute(0, 2, 3, 1).reshape(len(x), -1) @ w + b, dim=-1)

    return AveragesCam(model, np.ascontiguousarray(images.transpose(0, 3, 1, 2)), batch_size=batch_size)


FRAMEWORKS = {"tensorflow": tf_metrics, "jax": jax_metrics, "torch": torch_metrics}


def expected(problem, perturbation, correlation="spearman", first_index=0):
    images, cams, weights, bias, labels = problem
    probabilities = reference_score(weights, bias, labels)
    out = {"terms": [], "curve": [], "cam_sums": []}
    for i in range(len(images)):  # each sample with its own label
        one = reference_mufidelity(
            images[i : i + 1], cams[i : i + 1], lambda x, label=labels[i]: probabilities(x, np.full(len(x), label)),
            grid_size=perturbation.grid_size, subset_fraction=perturbation.subset_fraction,
            n_samples=perturbation.n_samples, baseline=perturbation.baseline, seed=perturbation.seed,
            correlation=correlation, first_index=first_index + i,
        )
        for key in out:
            out[key].append(one[key])
    return {"terms": np.concatenate(out["terms"]), "curve": np.concatenate(out["curve"], axis=1),
            "cam_sums": np.concatenate(out["cam_sums"], axis=1)}


# --------------------------------------------------------------------------- every framework = NumPy
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_mufidelity_matches_the_numpy_reference_at_every_batch_size(framework, batch_size, problem):
    images, cams, weights, bias, labels = problem
    perturbation = MuFidelity(grid_size=3, n_samples=24, subset_fraction=0.3, baseline=0.25, seed=5)
    metrics = FRAMEWORKS[framework](images, weights, bias, batch_size=batch_size)
    terms, curve, sums = run_mufidelity(metrics, cams, CategoricalScore(labels), perturbation)
    reference = expected(problem, perturbation)
    assert curve.shape == (24, N)
    np.testing.assert_allclose(curve, reference["curve"], atol=1e-5)
    np.testing.assert_allclose(sums, reference["cam_sums"], rtol=1e-5)
    np.testing.assert_allclose(terms, reference["terms"], atol=1e-4)
    assert np.isfinite(terms).all()


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_pearson_matches_the_reference(framework, problem):
    images, cams, weights, bias, labels = problem
    perturbation = MuFidelity(grid_size=4, n_samples=30, seed=1)
    metrics = FRAMEWORKS[framework](images, weights, bias)
    terms, _, _ = run_mufidelity(metrics, cams, CategoricalScore(labels), perturbation, "pearson")
    np.testing.assert_allclose(terms, expected(problem, perturbation, "pearson")["terms"], atol=1e-4)


def test_the_default_grid_on_a_size_that_is_no_multiple_of_nine(problem):
    images, cams, weights, bias, labels = problem
    perturbation = MuFidelity(n_samples=12)  # 9 x 9 cells over 10 x 8 pixels: some cells cover none
    terms, curve, _ = run_mufidelity(jax_metrics(images, weights, bias), cams, CategoricalScore(labels), perturbation)
    reference = expected(problem, perturbation)
    np.testing.assert_allclose(curve, reference["curve"], atol=1e-5)
    np.testing.assert_allclose(terms, reference["terms"], atol=1e-4)


# --------------------------------------------------------------------------- the analytic case
def mean_model_problem():
    """Single-channel images in [0, 1] with minimum 0 and maximum 1; the map is the image."""
    rng = np.random.default_rng(3)
    images = rng.random((5, 16, 16, 1)).astype(np.float32)
    images[:, 0, 0, 0], images[:, 15, 15, 0] = 0.0, 1.0
    return images, images[..., 0].copy()


def mean_metrics(framework, images):
    if framework == "tensorflow":
        tf = pytest.importorskip("tensorflow")
        from camavg_tf import AveragesCam

        return AveragesCam(lambda x: tf.reduce_mean(x, axis=(1, 2, 3))[:, None], images, batch_size=2)
    if framework == "jax":
        jnp = pytest.importorskip("jax.numpy")
        from camavg_jax import AveragesCam

        return AveragesCam(lambda x: jnp.mean(x, axis=(1, 2, 3))[:, None], images, batch_size=2)
    pytest.importorskip("torch")
    from camavg_torch import AveragesCam

    return AveragesCam(lambda x: x.mean(dim=(1, 2, 3))[:, None], images.transpose(0, 3, 1, 2).copy(), batch_size=2)


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("correlation", ["spearman", "pearson"])
def test_a_mean_model_and_the_image_as_its_map_give_one(framework, correlation):
    # the drop Y - f(x_S) = (sum of the removed pixels) / P and the CAM sum is that sum: linear
    images, maps = mean_model_problem()
    terms, _, _ = run_mufidelity(mean_metrics(framework, images), maps, lambda out: out[:, 0], MuFidelity(), correlation)
    np.testing.assert_allclose(terms, 1.0, atol=1e-6)
    assert abs(float(np.mean(terms)) - 1.0) < 1e-6


# --------------------------------------------------------------------------- undefined terms
@pytest.mark.slow
def test_undefined_correlations_are_nan_and_counted_never_zero():
    images, maps = mean_model_problem()
    maps[2] = 0.0  # no CAM anywhere: every subset's CAM sum is 0
    metrics = mean_metrics("jax", images)
    perturbation = MuFidelity(n_samples=40)
    terms, curve, sums = run_mufidelity(metrics, maps, lambda out: out[:, 0], perturbation)
    y = np.asarray(metrics.engine.score(as_score_list(lambda out: out[:, 0], 1), metrics.engine.outputs, "y"))
    assert np.isnan(terms[2]) and np.isfinite(np.delete(terms, 2)).all()
    assert undefined_terms(y, curve, sums).tolist() == [False, False, True, False, False]
    assert np.nanmean(terms) == pytest.approx(1.0, abs=1e-6)  # left out: the mean of the other four
    assert np.mean(np.nan_to_num(terms)) == pytest.approx(0.8, abs=1e-6)  # xplique's reading (NaN as 0)
    # a model the subsets do not move: every drop is 0, every term undefined
    from camavg_jax import AveragesCam
    import jax.numpy as jnp

    still = AveragesCam(lambda x: jnp.ones((x.shape[0], 1)), images, batch_size=2)
    terms, curve, sums = run_mufidelity(still, maps, lambda out: out[:, 0], perturbation)
    assert np.isnan(terms).all() and undefined_terms(np.ones(5), curve, sums).all()


def test_the_terms_agree_with_scipy_and_with_the_reference_on_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(8)
    curve = np.round(rng.random((30, 6)), 1)  # many ties
    sums = np.round(rng.random((30, 6)) * 5)
    y = np.ones(6)
    for correlation, scipy_function in (("spearman", stats.spearmanr), ("pearson", stats.pearsonr)):
        terms = mufidelity_terms(y, curve, sums, correlation)
        for i in range(6):
            assert terms[i] == pytest.approx(scipy_function(sums[:, i], y[i] - curve[:, i])[0], abs=1e-12)
            assert terms[i] == pytest.approx(reference_correlation(sums[:, i], y[i] - curve[:, i], correlation), abs=1e-12)


def test_the_terms_check_their_arguments():
    with pytest.raises(ValueError, match="correlation must be 'spearman' or 'pearson', got 'kendall'"):
        mufidelity_terms(np.ones(2), np.zeros((3, 2)), np.zeros((3, 2)), "kendall")
    with pytest.raises(ValueError, match=r"y \(N,\), curve \(K, N\) and cam_sums \(K, N\)"):
        mufidelity_terms(np.ones(2), np.zeros((3, 2)), np.zeros((3, 3)))
    for arguments, name in (({"grid_size": 0}, "grid_size"), ({"subset_fraction": 1.0}, "subset_fraction"),
                            ({"n_samples": 1}, "n_samples"), ({"seed": -1}, "seed"), ({"baseline": np.nan}, "baseline")):
        with pytest.raises(ValueError, match=f"MuFidelity: {name} must be"):
            MuFidelity(**arguments)


# --------------------------------------------------------------------------- seeds, offsets, cache
def test_masks_depend_on_the_seed_and_the_global_index_only():
    perturbation = MuFidelity(n_samples=10)
    whole = perturbation.per_sample(np.arange(8), (8, 16, 16, 3))
    np.testing.assert_array_equal(perturbation.per_sample(np.arange(5, 8), (3, 4, 4, 1)), whole[5:])
    assert not np.array_equal(MuFidelity(n_samples=10, seed=1).per_sample(np.arange(8), (8, 1)), whole)
    assert not np.array_equal(whole[0], whole[1])  # each sample its own masks (xplique: one set for all)
    # each cell removed with probability 0.2: 8 x 10 x 81 draws
    assert abs(whole.mean() - 0.2) < 4 * np.sqrt(0.2 * 0.8 / whole.size)


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["tensorflow", "jax", "torch"])
def test_an_offset_gives_the_later_samples_their_in_memory_numbers(framework, problem):
    images, cams, weights, bias, labels = problem
    perturbation = MuFidelity(grid_size=3, n_samples=16, seed=2)
    full_terms, full_curve, _ = run_mufidelity(FRAMEWORKS[framework](images, weights, bias), cams, CategoricalScore(labels), perturbation)
    later = FRAMEWORKS[framework](images[4:], weights, bias)
    later.engine.offset = 4  # what a stream sets for a batch after four samples
    terms, curve, _ = run_mufidelity(later, cams[4:], CategoricalScore(labels[4:]), perturbation)
    np.testing.assert_allclose(curve, full_curve[:, 4:], atol=1e-6)
    np.testing.assert_allclose(terms, full_terms[4:], atol=1e-6)


def test_another_seed_is_not_served_from_the_cache_and_does_not_retrace(problem):
    images, cams, weights, bias, labels = problem
    metrics = tf_metrics(images, weights, bias)
    score = CategoricalScore(labels)
    first = run_mufidelity(metrics, cams, score, MuFidelity(grid_size=3, n_samples=16, seed=0))[1]
    passes = metrics.engine.adapter.passes(metrics.engine.options, metrics.engine.inputs)
    traced = passes.trace_count
    other = run_mufidelity(metrics, cams, score, MuFidelity(grid_size=3, n_samples=16, seed=1))[1]
    more = run_mufidelity(metrics, cams, score, MuFidelity(grid_size=3, n_samples=40, seed=0))[1]
    again = run_mufidelity(metrics, cams, score, MuFidelity(grid_size=3, n_samples=16, seed=0))[1]
    assert not np.allclose(first, other)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_allclose(more[:16], first, atol=1e-6)  # the first 16 subsets: the same draws
    assert passes.trace_count == traced


# --------------------------------------------------------------------------- the upsampling rule
def test_the_cells_follow_tf_image_resize_nearest():
    tf = pytest.importorskip("tensorflow")
    for size in (7, 9, 10, 13, 16, 50, 224):
        for grid in (2, 3, 7, 9, 16):
            grid_ids = tf.reshape(tf.range(grid, dtype=tf.float32), (1, grid, 1, 1))
            resized = tf.image.resize(grid_ids, (size, 1), method="nearest").numpy().ravel().astype(int)
            np.testing.assert_array_equal(nearest_cells(size, grid), resized, err_msg=f"size {size}, grid {grid}")


# --------------------------------------------------------------------------- a generic per-sample extra
class AddNoise:
    """Test-only: step k adds ``scales[k]`` times a per-sample normal noise image (H, W) drawn
    from ``default_rng([seed, index])``, broadcast over the channels."""

    key = ("add_noise",)

    def __init__(self, scales, height, width, seed=0):
        self.scales, self.steps, self.height, self.width, self.seed = tuple(scales), len(scales), height, width, seed

    def parameters(self, n_pixels):
        return np.array([[s] for s in self.scales], np.float32)

    def per_sample(self, indices, x_shape):
        return np.stack([np.random.default_rng([self.seed, int(i)]).normal(size=(self.height, self.width))
                         for i in indices]).astype(np.float32)

    def prepare(self, backend, x, cams, extra):
        return backend.reshape(extra, (-1, *backend.shape(cams)[1:]))  # the CAMs' layout

    def apply(self, backend, x, noise, parameter):
        return x + noise * parameter[0]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_a_per_sample_extra_gives_the_same_numbers_at_every_batch_size(framework, batch_size, problem):
    images, cams, weights, bias, labels = problem
    perturbation = AddNoise([0.5, 1.0, 2.0], HEIGHT, WIDTH, seed=9)
    metrics = FRAMEWORKS[framework](images, weights, bias, batch_size=batch_size)
    engine = metrics.engine
    functions = as_score_list(CategoricalScore(labels), 1)
    curve = engine.step_scores(functions, engine.perturbed_outputs(engine.own_cams(cams, False), perturbation))
    noise = np.stack([np.random.default_rng([9, i]).normal(size=(HEIGHT, WIDTH)) for i in range(N)]).astype(np.float32)
    score = reference_score(weights, bias, labels)
    reference = np.stack([score(images + s * noise[..., None].astype(np.float64), labels) for s in (0.5, 1.0, 2.0)])
    np.testing.assert_allclose(curve, reference, atol=1e-5)


def test_a_bad_per_sample_array_is_refused_by_name(problem):
    images, cams, weights, bias, labels = problem

    class Short(AddNoise):
        def per_sample(self, indices, x_shape):
            return super().per_sample(indices[:-1], x_shape)

    engine = jax_metrics(images, weights, bias).engine
    with pytest.raises(ValueError, match=r"per_sample\(indices, x_shape\) returned an array of shape \(6, 10, 8\).*one row per sample \(N = 7\)"):
        engine.perturbed_outputs(engine.own_cams(cams, False), Short([1.0], HEIGHT, WIDTH))


# --------------------------------------------------------------------------- streams pass their offset
@pytest.mark.slow
def test_a_stream_gives_each_batch_the_global_index_of_its_first_sample(monkeypatch):
    jnp = pytest.importorskip("jax.numpy")
    import camavg_core.stream as stream
    from camavg_jax.streaming import evaluate_dataset

    offsets = []

    class Recording(stream.Engine):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            offsets.append(self.offset)

    monkeypatch.setattr(stream, "Engine", Recording)
    sizes = (2, 3, 1, 2)

    def batches(fail_at=None):
        for index, size in enumerate(sizes):
            if index == fail_at:
                raise RuntimeError("the source stopped")
            images = np.ones((size, 4, 4, 1), np.float32)
            images[0, 0, 0, 0] = np.nan if index == 1 else 1.0  # a skipped sample still counts
            yield images, np.full((size, 4, 4), 0.5, np.float32), np.zeros(size, int)

    def apply_fn(x):
        return jnp.concatenate([x.mean((1, 2)) * 0.5, 1 - x.mean((1, 2)) * 0.5], axis=-1)

    evaluate_dataset(apply_fn, batches(), nan_policy="omit")
    assert offsets == [0, 2, 5, 6]
    offsets.clear()
    with pytest.raises(RuntimeError) as stopped:
        evaluate_dataset(apply_fn, batches(fail_at=2), nan_policy="omit")
    offsets.clear()
    evaluate_dataset(apply_fn, batches(), nan_policy="omit", resume=stopped.value.camavg_checkpoint)
    assert offsets == [5, 6]  # the two counted batches are skipped, not run


# --------------------------------------------------------------------------- xplique, where the rules agree
@pytest.mark.slow
def test_xplique_gives_our_terms_when_handed_our_masks(problem, monkeypatch, xplique_metrics):
    """xplique draws one unseeded set of masks for a whole batch; fed sample i's uniforms (one
    image per evaluation), its Spearman term equals ours to float32 rounding."""
    tf = pytest.importorskip("tensorflow")
    images, cams, weights, bias, labels = problem
    perturbation = MuFidelity(grid_size=3, n_samples=50, seed=4)
    ours, _, _ = run_mufidelity(tf_metrics(images, weights, bias), cams, CategoricalScore(labels), perturbation)
    model = tf_metrics(images, weights, bias).model
    theirs = []
    for i in range(N):
        uniforms = np.random.default_rng([4, i]).random((50, 9)).astype(np.float32)  # kept where > 0.2 there
        monkeypatch.setattr(tf.random, "uniform", lambda *args, u=uniforms, **kwargs: tf.constant(u))
        metric = xplique_metrics.MuFidelity(model, images[i : i + 1], np.eye(CLASSES, dtype=np.float32)[labels[i : i + 1]],
                                    batch_size=50, grid_size=3, subset_percent=0.2, nb_samples=50)
        theirs.append(metric.evaluate(cams[i : i + 1]))
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_xplique_reads_an_undefined_correlation_as_zero(xplique_metrics):
    tf = pytest.importorskip("tensorflow")
    images, maps = mean_model_problem()
    still = xplique_metrics.MuFidelity(lambda x: tf.ones((tf.shape(x)[0], 1)), images, np.ones((5, 1), np.float32), batch_size=200)
    assert still.evaluate(maps) == 0.0  # ours: five undefined terms, no value (test above)
    mean = xplique_metrics.MuFidelity(lambda x: tf.reduce_mean(x, axis=(1, 2, 3))[:, None], images, np.ones((5, 1), np.float32), batch_size=200)
    assert mean.evaluate(maps) == pytest.approx(1.0, abs=1e-6)  # the analytic case: both give 1


# --------------------------------------------------------------------------- inputs of two sizes
def test_a_model_of_two_inputs_of_other_sizes_takes_each_subset_at_its_own_size():
    """One subset of the g x g grid removes its cells from both inputs, each upsampled to its
    own H x W (8 x 5 and 6 x 5 here); the CAM sum is over both inputs' removed pixels: against
    the definition written out here, the model run on both perturbed inputs."""
    keras = pytest.importorskip("keras")
    from camavg_core.metrics import mufidelity_metric
    from camavg_tf import AveragesCam

    first, second = keras.Input((8, 5, 3)), keras.Input((6, 5, 3))
    flat = [keras.layers.Flatten()(x) for x in (first, second)]
    model = keras.Model([first, second], keras.layers.Dense(3, activation="softmax")(keras.layers.Concatenate()(flat)))
    rng = np.random.default_rng(11)
    inputs = [rng.random((4, 8, 5, 3), np.float32), rng.random((4, 6, 5, 3), np.float32)]
    cams = [rng.random((4, 8, 5)).astype(np.float32), rng.random((4, 6, 5)).astype(np.float32)]
    labels, grid, k, fraction = np.array([0, 1, 2, 0]), 3, 16, 0.3
    metric = mufidelity_metric(grid_size=grid, n_samples=k, subset_fraction=fraction, seed=2)
    result = AveragesCam(model, inputs, batch_size=3).evaluate(cams, CategoricalScore(labels), metrics=[metric])

    def cells_of(size):
        return np.floor((np.arange(size) + 0.5) * grid / size).astype(int)

    expected = []
    for i, label in enumerate(labels):
        subsets = np.random.default_rng([2, i]).random((k, grid, grid)) < fraction
        removed = [subsets[:, cells_of(x.shape[1])][:, :, cells_of(x.shape[2])] for x in inputs]  # (K, H, W) each
        perturbed = [np.where(r[..., None], 0.0, x[i][None]).astype(np.float32) for r, x in zip(removed, inputs)]
        scores = model.predict(perturbed, verbose=0)[:, label].astype(np.float64)
        drops = float(model.predict([x[i][None] for x in inputs], verbose=0)[0, label]) - scores
        sums = sum((c[i][None].astype(np.float64) * r).sum(axis=(1, 2)) for c, r in zip(cams, removed))
        expected.append(reference_correlation(sums, drops, "spearman"))
    np.testing.assert_allclose(result.terms[metric.name], expected, atol=1e-6)
