"""Masking: CAM shapes and data formats, bilinear resizing, normalisation, no mutation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camavg_core import apply_cams, mask_inputs
from camavg_core.backends import resize_bilinear_numpy


def random_case(seed: int, n=3, height=4, width=5, channels=3):
    rng = np.random.default_rng(seed)
    inputs = rng.random((n, height, width, channels))
    cams = rng.random((n, height, width))
    return inputs, cams


# --------------------------------------------------------------------------- shapes
def test_cams_of_shape_nhw_broadcast_over_channels():
    inputs, cams = random_case(0)
    masked = apply_cams(inputs, cams)
    np.testing.assert_array_equal(masked, inputs * cams[..., np.newaxis])


def test_cams_with_a_channel_axis_of_one():
    inputs, cams = random_case(1)
    masked = apply_cams(inputs, cams[..., np.newaxis])
    np.testing.assert_array_equal(masked, inputs * cams[..., np.newaxis])


def test_channels_first():
    inputs, cams = random_case(2)
    inputs_first = np.ascontiguousarray(inputs.transpose(0, 3, 1, 2))  # (N, C, H, W)
    expected = inputs_first * cams[:, np.newaxis]
    np.testing.assert_array_equal(apply_cams(inputs_first, cams, data_format="channels_first"), expected)
    # a (N, 1, H, W) CAM is the channels-first CAM with its channel axis
    np.testing.assert_array_equal(
        apply_cams(inputs_first, cams[:, np.newaxis], data_format="channels_first"), expected
    )


def test_single_channel_images():
    inputs, cams = random_case(3, channels=1)
    np.testing.assert_array_equal(apply_cams(inputs, cams), inputs * cams[..., np.newaxis])


def test_hand_worked_masking():
    images = np.full((1, 2, 2, 2), 4.0)
    cams = np.array([[[0.0, 0.5], [1.0, 0.25]]])
    masked = apply_cams(images, cams)
    # every channel of pixel (i, j) is 4 * cam[i, j]
    expected_channel = np.array([[4 * 0.0, 4 * 0.5], [4 * 1.0, 4 * 0.25]])
    np.testing.assert_array_equal(masked[0, :, :, 0], expected_channel)
    np.testing.assert_array_equal(masked[0, :, :, 1], expected_channel)


# --------------------------------------------------------------------------- dtypes
def test_uint8_images_become_float32():
    images = np.array([[[[200, 10]], [[100, 0]]]], dtype=np.uint8)  # (1, 2, 1, 2)
    cams = np.array([[[0.5], [0.25]]])
    masked = apply_cams(images, cams)
    assert masked.dtype == np.float32
    np.testing.assert_array_equal(masked[0, :, 0], [[200 * 0.5, 10 * 0.5], [100 * 0.25, 0]])


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_float_images_keep_their_dtype(dtype):
    inputs, cams = random_case(4)
    masked = apply_cams(inputs.astype(dtype), cams)
    assert masked.dtype == np.dtype(dtype)


def test_dtype_argument_sets_the_masked_dtype():
    inputs, cams = random_case(5)
    masked = mask_inputs(inputs.astype(np.float32), cams, dtype="float64")
    assert masked.dtype == np.float64


# --------------------------------------------------------------------------- resizing
def lerp_2_to_4(first: float, second: float) -> list[float]:
    """Half-pixel-centre linear interpolation of 2 samples onto 4.

    Output pixel j has its centre at (j + 0.5) * 2/4 - 0.5 in input coordinates:
    -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
    """
    return [first, 0.75 * first + 0.25 * second, 0.25 * first + 0.75 * second, second]


def test_resize_2x2_to_4x4_by_hand():
    cam = np.array([[0.0, 1.0], [0.5, 0.25]])
    # rows first: interpolate each column from 2 rows to 4, then each row from 2 columns to 4
    columns = [lerp_2_to_4(cam[0, j], cam[1, j]) for j in range(2)]  # columns[j][i]
    expected = np.array([lerp_2_to_4(columns[0][i], columns[1][i]) for i in range(4)])
    # e.g. expected[1, 1]: row 1 of column 0 is 0.75*0 + 0.25*0.5 = 0.125, of column 1 is
    # 0.75*1 + 0.25*0.25 = 0.8125; then 0.75*0.125 + 0.25*0.8125 = 0.296875
    assert expected[1, 1] == pytest.approx(0.296875)
    resized = resize_bilinear_numpy(cam[np.newaxis, :, :, np.newaxis], (4, 4))[0, :, :, 0]
    np.testing.assert_allclose(resized, expected, rtol=0, atol=1e-15)
    # and through apply_cams on 4x4 images of ones
    masked = apply_cams(np.ones((1, 4, 4, 2)), cam[np.newaxis])
    np.testing.assert_allclose(masked[0, :, :, 1], expected, rtol=0, atol=1e-15)


@settings(deadline=None)
@given(
    source=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    target=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    seed=st.integers(0, 2**16),
)
def test_numpy_resize_matches_tf_image_resize(source, target, seed):
    tf = pytest.importorskip("tensorflow")
    images = np.random.default_rng(seed).random((2, *source, 1)).astype(np.float32)
    expected = tf.image.resize(images, target, method="bilinear", antialias=False).numpy()
    np.testing.assert_allclose(resize_bilinear_numpy(images, target), expected, atol=1e-6, rtol=0)


def test_apply_cams_resizes_like_tf_image_resize():
    tf = pytest.importorskip("tensorflow")
    inputs, _ = random_case(6, height=7, width=9)
    cams = np.random.default_rng(7).random((3, 3, 4)).astype(np.float32)
    resized = tf.image.resize(cams[..., np.newaxis], (7, 9), method="bilinear", antialias=False).numpy()
    expected = inputs.astype(np.float32) * resized
    np.testing.assert_allclose(apply_cams(inputs.astype(np.float32), cams), expected, atol=1e-6)


# --------------------------------------------------------------------------- normalisation
def test_normalize_is_per_sample_min_max():
    cams = np.stack(
        [
            np.linspace(0.2, 0.6, 12).reshape(3, 4),  # already in [0, 1], but not spanning it
            np.linspace(-3.0, 5.0, 12).reshape(3, 4),  # outside [0, 1]: allowed when normalising
            np.full((3, 4), 0.7),  # constant: becomes zeros, not 0/0
        ]
    )
    inputs = np.ones((3, 3, 4, 2))
    masked = apply_cams(inputs, cams, normalize=True)
    expected = np.stack(
        [
            (cams[0] - 0.2) / (0.6 - 0.2),
            (cams[1] - -3.0) / (5.0 - -3.0),
            np.zeros((3, 4)),
        ]
    )
    assert np.all(np.isfinite(masked))
    np.testing.assert_allclose(masked[..., 0], expected, atol=1e-12)
    np.testing.assert_allclose(masked[..., 1], expected, atol=1e-12)


def test_normalize_constant_zero_map_gives_zeros():
    masked = apply_cams(np.ones((1, 2, 2, 1)), np.zeros((1, 2, 2)), normalize=True)
    assert not np.any(np.isnan(masked))
    np.testing.assert_array_equal(masked, 0.0)


def test_constant_cams_are_valid_without_normalize():
    inputs, _ = random_case(8)
    np.testing.assert_array_equal(apply_cams(inputs, np.zeros((3, 4, 5))), 0.0)
    np.testing.assert_array_equal(apply_cams(inputs, np.ones((3, 4, 5))), inputs)


# --------------------------------------------------------------------------- every backend
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("cam_size", [(4, 5), (2, 3)])
def test_masking_on_each_backend_matches_numpy(backend, data_format, normalize, cam_size):
    rng = np.random.default_rng(9)
    inputs = rng.random((2, 4, 5, 3)).astype(np.float32)
    cams = rng.random((2, *cam_size)).astype(np.float32)
    maps = cams.astype(np.float64)
    if normalize:
        low = maps.min(axis=(1, 2), keepdims=True)
        maps = (maps - low) / (maps.max(axis=(1, 2), keepdims=True) - low)
    if cam_size != (4, 5):
        maps = resize_bilinear_numpy(maps[..., np.newaxis], (4, 5))[..., 0]
    expected = inputs * maps[..., np.newaxis]
    if data_format == "channels_first":
        inputs = inputs.transpose(0, 3, 1, 2)
        expected = expected.transpose(0, 3, 1, 2)
    masked = apply_cams(
        backend.asarray(inputs), backend.asarray(cams), data_format=data_format, normalize=normalize
    )
    assert backend.is_appropriate_type(masked)
    np.testing.assert_allclose(backend.to_numpy(masked), expected, atol=1e-6, rtol=0)


def test_inputs_and_cams_are_not_modified(backend):
    rng = np.random.default_rng(10)
    for dtype in ("float32", "float64"):
        inputs = rng.random((2, 4, 4, 3)).astype(dtype)
        cams = (rng.random((2, 2, 2, 1)) * 3 - 1).astype(dtype)  # resized and normalised
        source_inputs, source_cams = inputs.copy(), cams.copy()
        inputs_b, cams_b = backend.asarray(inputs), backend.asarray(cams)
        inputs_before = backend.to_numpy(inputs_b).copy()
        cams_before = backend.to_numpy(cams_b).copy()
        apply_cams(inputs_b, cams_b, normalize=True)
        mask_inputs(inputs_b, cams_b, normalize=True)
        np.testing.assert_array_equal(backend.to_numpy(inputs_b), inputs_before)
        np.testing.assert_array_equal(backend.to_numpy(cams_b), cams_before)
        np.testing.assert_array_equal(inputs, source_inputs)
        np.testing.assert_array_equal(cams, source_cams)
    # NumPy arrays already of the compute dtype are the cheap path that could alias: check it
    inputs = rng.random((2, 3, 3, 2))
    cams = rng.random((2, 3, 3))
    inputs_before, cams_before = inputs.copy(), cams.copy()
    masked = apply_cams(inputs, cams)
    masked[...] = -1.0
    np.testing.assert_array_equal(inputs, inputs_before)
    np.testing.assert_array_equal(cams, cams_before)


# --------------------------------------------------------------------------- layouts a resize would misread
def test_nchw_inputs_read_as_channels_last_are_refused_naming_channels_first():
    rng = np.random.default_rng(20)
    inputs, cams = rng.random((2, 3, 8, 16)), rng.random((2, 8, 16))
    with pytest.raises(ValueError, match=r'match axes 2 and 3 .*data_format="channels_first"'):
        apply_cams(inputs, cams)
    masked = apply_cams(inputs, cams, data_format="channels_first")
    np.testing.assert_array_equal(masked, inputs * cams[:, None])


def test_nhwc_inputs_read_as_channels_first_are_refused_naming_channels_last():
    rng = np.random.default_rng(21)
    inputs, cams = rng.random((2, 8, 16, 3)), rng.random((2, 8, 16))
    with pytest.raises(ValueError, match=r'match axes 1 and 2 .*data_format="channels_last"'):
        apply_cams(inputs, cams, data_format="channels_first")


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_a_transposed_map_is_refused(data_format):
    rng = np.random.default_rng(22)
    inputs = rng.random((2, 8, 16, 3) if data_format == "channels_last" else (2, 3, 8, 16))
    with pytest.raises(ValueError, match=r"\(16, 8\) are the inputs' spatial shape \(8, 16\) transposed.*swapaxes"):
        apply_cams(inputs, rng.random((2, 16, 8)), data_format=data_format)


def test_a_map_of_another_size_is_still_resized():
    rng = np.random.default_rng(23)
    inputs, small = rng.random((2, 8, 16, 3)), rng.random((2, 4, 8))
    expected = inputs * resize_bilinear_numpy(small[..., None], (8, 16))
    np.testing.assert_allclose(apply_cams(inputs, small), expected, rtol=1e-6)
    square = rng.random((2, 8, 8, 3))  # a square map is its own transpose: nothing to refuse
    np.testing.assert_array_equal(apply_cams(square, small[:, :, :4].copy() * 0 + 1), square)


def test_inputs_of_the_other_layout_are_refused_before_a_coarse_map_is_stretched():
    """NCHW images read as NHWC (the default data_format): a Grad-CAM's 4 x 4 maps matched
    neither reading, so the map was stretched to 3 x 32 and broadcast over 32 "channels" (an
    Average Drop of 9.52 where the images' own layout gives 7.67), silently. The shape of the
    inputs now decides: a spatial axis of at most 4 values beside a channel axis of more."""
    rng = np.random.default_rng(0)
    maps = rng.random((6, 4, 4)).astype(np.float32)
    nhwc = rng.random((6, 32, 32, 3)).astype(np.float32)
    nchw = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match=r"look channels-first, \(N, C, H, W\).*data_format=\"channels_first\""):
        apply_cams(nchw, maps)
    with pytest.raises(ValueError, match=r"look channels-last, \(N, H, W, C\).*data_format=\"channels_last\""):
        apply_cams(nhwc, maps, data_format="channels_first")
    # each in its own layout: the same masked images (NumPy's resize, the tests' oracle above)
    big = resize_bilinear_numpy(maps[..., None].astype(np.float64), (32, 32))[..., 0]
    np.testing.assert_allclose(apply_cams(nhwc, maps), nhwc * big[..., None], atol=1e-6)
    np.testing.assert_allclose(apply_cams(nchw, maps, data_format="channels_first"), nchw * big[:, None], atol=1e-6)
    # a map of the size the reading names is taken at its word: no resize, nothing to guess
    assert apply_cams(nchw, np.ones((6, 3, 32), np.float32)).shape == nchw.shape
