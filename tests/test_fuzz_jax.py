"""Fuzzing ``camavg_jax.AveragesCam``, and bfloat16 in JAX.

The model is a tiny function written twice, once in JAX (what camavg runs) and once in NumPy
(the oracle): a per-pixel linear layer, tanh, a global mean and a dense softmax, so it takes
images of any size. The oracle masks with CAMs resized by a bilinear upsampling written here,
calls the NumPy model and applies the equations in NumPy. Hypothesis draws N, batch sizes,
image and CAM sizes, dtypes (bfloat16 included), NaN positions and both nan policies; every
call gives the oracle's numbers or ``ValueError``/``TypeError`` naming the argument, and
leaves the images and CAMs as they were.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
ml_dtypes = pytest.importorskip("ml_dtypes")
pytest.importorskip("camavg_jax.averages")

from camavg_core import MetricState  # noqa: E402
from camavg_jax.averages import AveragesCam  # noqa: E402
from reference import reference_misread_layout  # noqa: E402

EPS = 1e-7
N_CLASSES = 3
JAX_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_rng = np.random.default_rng(0)
PIXEL_WEIGHTS = _rng.normal(scale=1.0, size=(3, 4)).astype(np.float32)
DENSE_WEIGHTS = _rng.normal(scale=2.0, size=(4, N_CLASSES)).astype(np.float32)


def apply_fn(x):
    """The JAX model; it computes in the images' own float dtype (bfloat16 stays bfloat16)."""
    dtype = x.dtype
    features = jnp.tanh(x @ jnp.asarray(PIXEL_WEIGHTS, dtype))
    return jax.nn.softmax(jnp.mean(features, axis=(1, 2)) @ jnp.asarray(DENSE_WEIGHTS, dtype), axis=-1)


def numpy_model(x: np.ndarray) -> np.ndarray:
    """The same model in NumPy float64, for the oracle."""
    features = np.tanh(x.astype(np.float64) @ PIXEL_WEIGHTS.astype(np.float64))
    logits = features.mean(axis=(1, 2)) @ DENSE_WEIGHTS.astype(np.float64)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (N, h, w) maps, half-pixel centres, edges clamped."""

    def axis_weights(n_in, n_out):
        centres = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        low = np.floor(centres).astype(int)
        return low, np.minimum(low + 1, n_in - 1), centres - low

    r0, r1, rw = axis_weights(maps.shape[1], size[0])
    c0, c1, cw = axis_weights(maps.shape[2], size[1])
    rows = maps[:, r0] * (1 - rw)[None, :, None] + maps[:, r1] * rw[None, :, None]
    return rows[:, :, c0] * (1 - cw)[None, None, :] + rows[:, :, c1] * cw[None, None, :]


def oracle_scores(images, cams, labels):
    x = np.nan_to_num(np.asarray(images).astype(np.float64), nan=0.0)
    maps = np.nan_to_num(np.asarray(cams).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if maps.shape[1:] != x.shape[1:3]:
        maps = upsample(maps, x.shape[1:3])
    rows = np.arange(len(x))
    return numpy_model(x)[rows, labels], numpy_model(x * maps[..., None])[rows, labels]


def numpy_metrics(y, o):
    return (
        100 * float(np.mean(np.maximum(y - o, 0) / (y + EPS))),
        100 * float(np.mean(y < o)),
        100 * float(np.mean(np.maximum(o - y, 0) / (1 - y + EPS))),
    )


def label_score(labels):
    indices = jnp.asarray(labels)
    return lambda outputs: jnp.take_along_axis(outputs, indices[:, None], axis=1)[:, 0]


def assert_names(error: BaseException, *names: str) -> None:
    assert any(name in str(error) for name in names), f"{names} not in: {error}"


# --------------------------------------------------------------------------- fuzz: evaluate
CAM_DTYPES = ["float32", "float16", "bool", "uint8", "bfloat16"]


@st.composite
def cases(draw):
    n = draw(st.integers(1, 10))
    height, width = draw(st.integers(2, 8)), draw(st.integers(2, 8))
    input_dtype = draw(st.sampled_from(["float32", "uint8", "float16"]))
    if input_dtype == "uint8":
        images = draw(hnp.arrays(np.uint8, (n, height, width, 3), elements=st.integers(0, 2)))
    else:
        images = draw(hnp.arrays(np.dtype(input_dtype), (n, height, width, 3), elements=st.floats(0, 1, width=16)))
    cam_h = draw(st.sampled_from([height, draw(st.integers(1, height))]))
    cam_w = draw(st.sampled_from([width, draw(st.integers(1, width))]))
    cam_dtype = draw(st.sampled_from(CAM_DTYPES))
    if cam_dtype in ("bool", "uint8"):
        cams = draw(hnp.arrays(np.dtype(cam_dtype), (n, cam_h, cam_w), elements=st.integers(0, 1)))
    else:
        values = draw(hnp.arrays(np.float32, (n, cam_h, cam_w), elements=st.floats(0, 1, width=16)))
        for row in draw(st.lists(st.integers(0, n - 1), max_size=2, unique=True)):
            values[row, draw(st.integers(0, cam_h - 1)), draw(st.integers(0, cam_w - 1))] = draw(
                st.sampled_from([np.nan, np.inf])
            )
        dtype = ml_dtypes.bfloat16 if cam_dtype == "bfloat16" else np.dtype(cam_dtype)
        cams = values.astype(dtype)
    if images.dtype.kind == "f" and draw(st.integers(0, 3)) == 0:
        images[draw(st.integers(0, n - 1)), 0, draw(st.integers(0, width - 1)), 1] = np.nan
    labels = np.array(draw(st.lists(st.integers(0, N_CLASSES - 1), min_size=n, max_size=n)))
    options = dict(
        batch_size=draw(st.one_of(st.none(), st.integers(1, n + 2))),
        nan_policy=draw(st.sampled_from(["raise", "omit"])),
    )
    return images, cams, labels, options, draw(st.booleans())


@pytest.mark.slow
@JAX_SETTINGS
@given(case=cases())
def test_evaluate_gives_the_numpy_numbers_or_a_clear_error(case):
    images, cams, labels, options, on_device = case
    images_before, cams_before = images.copy(), cams.copy()
    bad_images = ~np.isfinite(images.astype(np.float64).reshape(len(images), -1)).all(axis=1)
    bad_cams = ~np.isfinite(cams.astype(np.float64).reshape(len(cams), -1)).all(axis=1)
    bad = bad_images | bad_cams
    given_images = jnp.asarray(images) if on_device else images
    if options["nan_policy"] == "raise" and bad_images.any():
        event("non-finite image refused")
        with pytest.raises(ValueError) as caught:
            AveragesCam(apply_fn, given_images, **options)
        assert_names(caught.value, f"inputs[{int(np.flatnonzero(bad_images)[0])}]")
        return
    metrics = AveragesCam(apply_fn, given_images, **options)
    given_cams = jnp.asarray(cams) if on_device else cams

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
        y_c, o_c = oracle_scores(images.astype(np.float32), cams.astype(np.float32), labels)
        # float16 images are computed in float16 by this model: 3 significant digits
        tolerance = 2e-3 if images.dtype == np.float16 else 1e-5
        np.testing.assert_allclose(result.y_c[~bad_images], y_c[~bad_images], atol=tolerance)
        np.testing.assert_allclose(result.o_c[~bad], o_c[~bad], atol=tolerance)
        assert np.isnan(result.o_c[bad]).all()
        assert (result.n, result.skipped) == (int((~bad).sum()), int(bad.sum()))
        for value in (result.average_drop, result.average_increase, result.average_gain):
            assert math.isfinite(value)
        if images.dtype != np.float16:
            expected = numpy_metrics(result.y_c[~bad], result.o_c[~bad])
            assert result.average_drop == pytest.approx(expected[0], abs=1e-6)
            assert result.average_gain == pytest.approx(expected[2], abs=1e-6)
    np.testing.assert_array_equal(images, images_before)  # NaN == NaN here
    np.testing.assert_array_equal(cams.astype(np.float32), cams_before.astype(np.float32))


@st.composite
def misfits(draw):
    n = draw(st.integers(1, 5))
    kind = draw(st.sampled_from(["count", "list", "rank", "channels"]))
    if kind == "count":
        return n, np.full((draw(st.integers(0, 7).filter(lambda m: m != n)), 4, 4), 0.5, np.float32)
    if kind == "list":
        return n, [np.full((n, 4, 4), 0.5, np.float32)]
    if kind == "rank":
        return n, np.full(draw(st.sampled_from([(n,), (n, 4), ()])), 0.5, np.float32)
    return n, np.full((n, 4, 4, draw(st.integers(2, 3))), 0.5, np.float32)


@pytest.mark.slow
@settings(JAX_SETTINGS, max_examples=12)
@given(case=misfits())
def test_cams_that_do_not_fit_are_refused_by_name(case):
    n, cams = case
    metrics = AveragesCam(apply_fn, np.full((n, 4, 4, 3), 0.5, np.float32))
    with pytest.raises(ValueError) as caught:
        metrics.evaluate(cams, label_score(np.zeros(n, dtype=int)))
    assert "cams" in str(caught.value)


# --------------------------------------------------------------------------- bfloat16
@pytest.mark.slow
def test_bfloat16_images_work_and_stay_within_half_a_point_of_float32():
    rng = np.random.default_rng(3)
    images = rng.random((64, 6, 6, 3)).astype(ml_dtypes.bfloat16)  # the values both runs see
    cams = rng.random((64, 6, 6)).astype(np.float32)
    labels = rng.integers(0, N_CLASSES, 64)
    reference = AveragesCam(apply_fn, images.astype(np.float32)).evaluate(cams, label_score(labels))
    result = AveragesCam(apply_fn, jnp.asarray(images)).evaluate(cams, label_score(labels))
    for name in ("average_drop", "average_gain"):
        assert abs(getattr(result, name) - getattr(reference, name)) <= 0.5, name
    # bfloat16 keeps 8 bits: the scores agree to its rounding
    np.testing.assert_allclose(result.o_c, reference.o_c, atol=2e-2)
    assert result.y_c.dtype == np.float64
    assert all(math.isfinite(getattr(result, name)) for name in ("average_drop", "average_increase", "average_gain"))


@pytest.mark.slow
def test_bfloat16_cams_give_their_float32_values():
    rng = np.random.default_rng(4)
    images = rng.random((5, 6, 6, 3)).astype(np.float32)
    cams = rng.random((5, 3, 3)).astype(ml_dtypes.bfloat16)
    labels = np.array([0, 1, 2, 0, 1])
    _, o_c = oracle_scores(images, cams.astype(np.float32), labels)
    result = AveragesCam(apply_fn, images).evaluate(jnp.asarray(cams), label_score(labels))
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_jax_state_sums_are_float32(dtype):
    y = jnp.asarray([1.0, 0.0, 1.0], dtype=dtype)
    o = jnp.asarray([0.0, 1.0, 1.0], dtype=dtype)
    state = MetricState.empty().update(y, o)
    for name in ("drop_sum", "drop_sq_sum", "gain_sum", "gain_sq_sum"):
        assert jnp.asarray(getattr(state, name)).dtype in (jnp.float32, jnp.float64), name
    result = state.result()
    assert result.average_drop == pytest.approx(100 * (1 / (1 + EPS)) / 3, abs=1e-4)
    assert result.average_increase == pytest.approx(100 / 3)
