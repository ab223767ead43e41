"""Fuzzing the TensorFlow side: ``AveragesCam`` and the core functions on ``tf.Tensor`` scores.

One tiny functional Keras model, built once for the module, takes images of any spatial size
(convolution then global pooling), so Hypothesis can draw batch sizes, N, image and CAM sizes,
dtypes, NaN positions and both nan policies against the same weights. The oracle is the seed's
algorithm written out here: the model called directly on ``inputs * cams[..., None]``, the CAMs
resized with ``tf.image.resize`` first when they are smaller, the scores picked by hand and the
equations in NumPy. Every call must give that, or ``ValueError``/``TypeError`` naming the
argument; inputs, CAMs and weights must come out unchanged.

TensorFlow calls are slow on a small CPU, so the example counts here are a few dozen at most.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from camavg_core import MetricState, avg_drop, avg_gain, avg_increase  # noqa: E402
from camavg_tf import AveragesCam  # noqa: E402
from reference import reference_misread_layout  # noqa: E402

EPS = 1e-7
ERRORS = (ValueError, TypeError)
N_CLASSES = 3
# a few compiled passes per example: keep Hypothesis from calling that too slow
TF_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def build_model() -> keras.Model:
    """(N, H, W, 3) images of any size -> softmax over 3 classes; tanh keeps NaN visible."""
    keras.utils.set_random_seed(0)
    images = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="tanh")(images)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    return keras.Model(images, keras.layers.Dense(N_CLASSES, activation="softmax")(pooled))


@functools.lru_cache(maxsize=None)
def the_model() -> keras.Model:
    """Built on first use, not at collection time; the same weights for the whole module."""
    return build_model()


@pytest.fixture(autouse=True)
def weights_are_never_modified():
    weights = [w.copy() for w in the_model().get_weights()]
    yield
    for before, after in zip(weights, the_model().get_weights()):
        np.testing.assert_array_equal(before, after)


# --------------------------------------------------------------------------- the oracle
def oracle_maps(cams: np.ndarray, size: tuple[int, int], normalize: bool) -> np.ndarray:
    """CAMs as float32 (N, H, W) in [0, 1]: min-max per sample if asked (a constant map
    becomes zeros), then bilinear resizing with TensorFlow's own op."""
    maps = np.asarray(cams).astype(np.float32)
    if normalize:
        low = maps.min(axis=(1, 2), keepdims=True)
        span = maps.max(axis=(1, 2), keepdims=True) - low
        maps = np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0).astype(np.float32)
    if maps.shape[1:] != tuple(size):
        maps = tf.image.resize(maps[..., None], size, method="bilinear").numpy()[..., 0]
    return maps


def oracle_scores(images: np.ndarray, cams: np.ndarray, labels: np.ndarray, normalize: bool):
    """Y_c and O_c the way the seed computed them: call the model twice, pick each label."""
    x = np.nan_to_num(images.astype(np.float32), nan=0.0, posinf=0.0)  # the model's input dtype
    maps = oracle_maps(np.nan_to_num(cams, nan=0.0, posinf=0.0, neginf=0.0), x.shape[1:3], normalize)
    plain = the_model()(x, training=False).numpy().astype(np.float64)
    masked = the_model()(x * maps[..., None], training=False).numpy().astype(np.float64)
    rows = np.arange(len(x))
    return plain[rows, labels], masked[rows, labels]


def numpy_metrics(y: np.ndarray, o: np.ndarray) -> tuple[float, float, float]:
    return (
        100 * float(np.mean(np.maximum(y - o, 0) / (y + EPS))),
        100 * float(np.mean(y < o)),
        100 * float(np.mean(np.maximum(o - y, 0) / (1 - y + EPS))),
    )


def label_score(labels: np.ndarray):
    """A plain score function: the probability of each sample's label."""
    indices = tf.constant(labels, dtype=tf.int32)
    return lambda outputs: tf.gather(outputs, indices, axis=1, batch_dims=1)


def assert_names(error: BaseException, *names: str) -> None:
    assert any(name in str(error) for name in names), f"{names} not in: {error}"


# --------------------------------------------------------------------------- strategies
INPUT_DTYPES = ["float32", "float64", "float16", "uint8", "int32", "bool"]
CAM_DTYPES = ["float32", "float64", "float16", "bool", "uint8"]


@st.composite
def cases(draw):
    """Images, CAMs, labels and options; CAMs equal in size or smaller, NaN in some."""
    n = draw(st.integers(1, 12))
    height, width = draw(st.integers(3, 9)), draw(st.integers(3, 9))
    input_dtype = draw(st.sampled_from(INPUT_DTYPES))
    if input_dtype in ("uint8", "int32"):
        images = draw(hnp.arrays(np.dtype(input_dtype), (n, height, width, 3), elements=st.integers(0, 3)))
    elif input_dtype == "bool":
        images = draw(hnp.arrays(np.bool_, (n, height, width, 3)))
    else:
        images = draw(
            hnp.arrays(np.dtype(input_dtype), (n, height, width, 3), elements=st.floats(0, 1, width=16))
        )
    same_size = draw(st.booleans())
    cam_h = height if same_size else draw(st.integers(1, height))
    cam_w = width if same_size else draw(st.integers(1, width))
    normalize = draw(st.booleans())
    cam_dtype = draw(st.sampled_from(CAM_DTYPES))
    if cam_dtype in ("bool", "uint8"):
        cams = draw(hnp.arrays(np.dtype(cam_dtype), (n, cam_h, cam_w), elements=st.integers(0, 1)))
    else:
        # normalize=True takes maps of any range (up to huge ones); without it, [0, 1]
        values = st.floats(0, 1, width=16)
        if normalize:
            values = st.floats(-3, 5, width=16)
            if cam_dtype != "float16":
                values = st.one_of(values, st.sampled_from([-1e30, 1e30]))
        cams = draw(hnp.arrays(np.dtype(cam_dtype), (n, cam_h, cam_w), elements=values))
        nan_rows = draw(st.lists(st.integers(0, n - 1), max_size=3, unique=True))
        for row in nan_rows:
            value = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
            cams[row, draw(st.integers(0, cam_h - 1)), draw(st.integers(0, cam_w - 1))] = value
    if images.dtype.kind == "f" and draw(st.integers(0, 3)) == 0:
        row = draw(st.integers(0, n - 1))
        images[row, draw(st.integers(0, height - 1)), 0, 0] = draw(st.sampled_from([np.nan, np.inf]))
    labels = np.array(draw(st.lists(st.integers(0, N_CLASSES - 1), min_size=n, max_size=n)))
    batch_size = draw(st.one_of(st.none(), st.integers(1, n + 2)))
    nan_policy = draw(st.sampled_from(["raise", "omit"]))
    as_tensor = draw(st.booleans())
    return images, cams, labels, dict(batch_size=batch_size, nan_policy=nan_policy, normalize=normalize), as_tensor


# --------------------------------------------------------------------------- fuzz: evaluate
@pytest.mark.slow
@TF_SETTINGS
@given(case=cases())
def test_evaluate_gives_the_seed_numbers_or_a_clear_error(case):
    images, cams, labels, options, as_tensor = case
    images_before, cams_before = images.copy(), cams.copy()
    bad_images = ~np.isfinite(images.reshape(len(images), -1).astype(np.float64)).all(axis=1)
    bad_cams = ~np.isfinite(cams.reshape(len(cams), -1).astype(np.float64)).all(axis=1)
    bad = bad_images | bad_cams
    given_images = tf.constant(images) if as_tensor else images
    if options["nan_policy"] == "raise" and bad_images.any():
        event("non-finite image refused")
        with pytest.raises(ValueError) as caught:
            AveragesCam(the_model(), given_images, **options)
        assert_names(caught.value, f"inputs[{int(np.flatnonzero(bad_images)[0])}]")
        return
    metrics = AveragesCam(the_model(), given_images, **options)
    given_cams = tf.constant(cams) if as_tensor else cams

    if reference_misread_layout(images.shape, cams.shape[1:]):
        event("misread layout refused")
        with pytest.raises(ValueError) as caught:
            metrics.evaluate(given_cams, label_score(labels))
        assert_names(caught.value, "channels_first", "transposed")
    elif options["nan_policy"] == "raise" and bad.any():
        event("non-finite CAM refused")
        with pytest.raises(ValueError) as caught:
            metrics.evaluate(given_cams, label_score(labels))
        assert_names(caught.value, f"cams[{int(np.flatnonzero(bad_cams)[0])}]")
    elif bad.all():
        event("every sample skipped")
        with pytest.raises(ValueError) as caught:
            metrics.evaluate(given_cams, label_score(labels))
        assert_names(caught.value, "skipped", "nothing to average")
    else:
        event("omitted some" if bad.any() else "valid")
        result = metrics.evaluate(given_cams, label_score(labels))
        y_c, o_c = oracle_scores(images, cams, labels, options["normalize"])
        np.testing.assert_allclose(result.y_c[~bad_images], y_c[~bad_images], atol=1e-5)
        np.testing.assert_allclose(result.o_c[~bad], o_c[~bad], atol=1e-5)
        assert np.isnan(result.o_c[bad]).all()
        expected = numpy_metrics(y_c[~bad], o_c[~bad])  # skipped samples: out of the averages
        actual = (result.average_drop, result.average_increase, result.average_gain)
        for value, reference in zip(actual, expected):
            assert math.isfinite(value)
            assert value == pytest.approx(reference, abs=1e-3)
        assert (result.n, result.skipped) == (int((~bad).sum()), int(bad.sum()))
        if bad.any():
            assert f"{int(bad.sum())} skipped" in str(result)
    np.testing.assert_array_equal(images, images_before)
    np.testing.assert_array_equal(cams, cams_before)


# --------------------------------------------------------------------------- fuzz: bad shapes
@st.composite
def mismatched_cams(draw):
    """CAMs that do not fit the inputs: a wrong N, a list, a wrong rank, several channels."""
    n = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["count", "list", "rank", "channels", "zero size"]))
    images = np.full((n, 5, 5, 3), 0.5, dtype=np.float32)
    if kind == "count":
        other = draw(st.integers(0, 8).filter(lambda m: m != n))
        return images, np.full((other, 5, 5), 0.5, np.float32), ("cams", str(other), str(n))
    if kind == "list":
        return images, [np.full((n, 5, 5), 0.5, np.float32)], ("cams", "list")
    if kind == "rank":
        shape = draw(st.sampled_from([(n,), (n, 5), (n, 5, 5, 1, 1), ()]))
        return images, np.full(shape, 0.5, np.float32), ("cams",)
    if kind == "channels":
        return images, np.full((n, 5, 5, draw(st.integers(2, 4))), 0.5, np.float32), ("cams", "channel")
    return images, np.full((n, 0, 5), 0.5, np.float32), ("cams",)


@settings(TF_SETTINGS, max_examples=10)
@given(case=mismatched_cams())
def test_cams_that_do_not_fit_the_inputs_are_refused_by_name(case):
    images, cams, names = case
    metrics = AveragesCam(the_model(), images)
    with pytest.raises(ValueError) as caught:
        metrics.evaluate(cams, label_score(np.zeros(len(images), dtype=int)))
    assert_names(caught.value, *names)
    assert "cams" in str(caught.value)


@settings(TF_SETTINGS, max_examples=10)
@given(
    shape=st.sampled_from([(0, 5, 5, 3), (4,), (), (4, 5, 5)]),
    junk=st.sampled_from([None, "images", b"images", np.array([object()] * 4)]),
    pick=st.booleans(),
)
def test_inputs_that_are_not_a_batch_of_images_are_refused_by_name(shape, junk, pick):
    inputs = np.zeros(shape, np.float32) if pick else junk
    with pytest.raises(ERRORS) as caught:
        AveragesCam(the_model(), inputs)
    assert_names(caught.value, "inputs", "input")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normalize_does_not_overflow_on_huge_cam_values(dtype):
    """Min-max normalisation is scale-free, so maps of +-3e38 are the same 0/1 masks as maps
    of +-1; subtracting first overflows float32 and turns every map into zeros."""
    rng = np.random.default_rng(4)
    images = rng.random((3, 6, 6, 3)).astype(np.float32)
    binary = (rng.random((3, 6, 6)) > 0.5).astype(np.float32)
    binary[:, 0, 0], binary[:, 0, 1] = 0.0, 1.0  # both values in every map
    huge = np.where(binary > 0, 3e38, -3e38).astype(dtype)
    labels = np.array([0, 1, 2])
    _, o_c = oracle_scores(images, binary, labels, normalize=False)
    result = AveragesCam(the_model(), images, normalize=True).evaluate(huge, label_score(labels))
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)


# --------------------------------------------------------------------------- core functions on tensors
TF_SCORE_DTYPES = [tf.float16, tf.float32, tf.float64, tf.int32, tf.uint8, tf.bool]


@settings(max_examples=25, deadline=None)
@given(
    y=hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(0, 1, width=16)),
    data=st.data(),
    dtype=st.sampled_from(TF_SCORE_DTYPES),
)
def test_averages_and_state_on_tensors_match_numpy(y, data, dtype):
    o = data.draw(hnp.arrays(np.float64, y.shape, elements=st.floats(0, 1, width=16)))
    if dtype.is_integer or dtype == tf.bool:
        y, o = np.round(y), np.round(o)
    y_t, o_t = tf.cast(tf.constant(y), dtype), tf.cast(tf.constant(o), dtype)
    # the NumPy reference on the values the tensors really hold
    y64, o64 = tf.cast(y_t, tf.float64).numpy(), tf.cast(o_t, tf.float64).numpy()
    drop, increase, gain = numpy_metrics(y64, o64)
    # float32 arithmetic: a few ulps per term, in points
    assert avg_drop(y_t, o_t) == pytest.approx(drop, abs=1e-4)
    assert avg_increase(y_t, o_t) == pytest.approx(increase, abs=1e-9)
    assert avg_gain(y_t, o_t) == pytest.approx(gain, abs=1e-4)
    state = MetricState.empty().update(y_t, o_t)
    for name in ("drop_sum", "drop_sq_sum", "gain_sum", "gain_sq_sum"):
        assert getattr(state, name).dtype in (tf.float32, tf.float64), name
    result = state.result()
    assert result.average_drop == pytest.approx(drop, abs=1e-4)
    assert result.average_gain == pytest.approx(gain, abs=1e-4)


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 6),
    bad_index=st.data(),
    value=st.sampled_from([np.nan, np.inf, -np.inf]),
    which=st.sampled_from(["Y_c", "O_c"]),
)
def test_nonfinite_tensor_scores_name_the_first_bad_sample(n, bad_index, value, which):
    scores = {"Y_c": np.full(n, 0.5, np.float32), "O_c": np.full(n, 0.25, np.float32)}
    index = bad_index.draw(st.integers(0, n - 1))
    scores[which][index:] = value  # every later one bad too: the first must be named
    y_t, o_t = tf.constant(scores["Y_c"]), tf.constant(scores["O_c"])
    for average in (avg_drop, avg_increase, avg_gain):
        with pytest.raises(ValueError) as caught:
            average(y_t, o_t)
        assert_names(caught.value, f"{which}[{index}]")
    omitted = avg_drop(y_t, o_t, nan_policy="omit") if index > 0 else None
    if omitted is not None:  # the finite samples: 0.5 -> 0.25 drops by half
        assert omitted == pytest.approx(100 * 0.25 / (0.5 + EPS), abs=1e-4)
