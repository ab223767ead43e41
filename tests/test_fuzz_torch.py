"""Fuzzing ``camavg_torch.AveragesCam`` with the cases and the oracle of ``test_fuzz_jax.py``.

The model is the same tiny function (a per-pixel linear layer, tanh, a global mean and a dense
softmax) written in PyTorch; the images are drawn channels-last and handed to PyTorch
channels-first, as its users hold them. Every call gives the NumPy oracle's numbers or a
``ValueError`` naming the argument, and leaves the images and CAMs as they were.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import event, example, given, settings

torch = pytest.importorskip("torch")
pytest.importorskip("jax")  # the shared cases live beside the JAX fuzz test
from test_fuzz_jax import DENSE_WEIGHTS, JAX_SETTINGS, PIXEL_WEIGHTS, assert_names, cases, misfits, numpy_metrics, oracle_scores  # noqa: E402

from camavg_torch import AveragesCam, CategoricalScore  # noqa: E402


def model(x):
    """The fuzz model in PyTorch, on (N, C, H, W); it computes in the images' float dtype."""
    x = x.permute(0, 2, 3, 1)
    features = torch.tanh(x @ torch.from_numpy(PIXEL_WEIGHTS).to(x.dtype))
    return torch.softmax(features.mean(dim=(1, 2)) @ torch.from_numpy(DENSE_WEIGHTS).to(x.dtype), dim=-1)


def channels_first(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(images, -1, 1))


# images 3 px high and maps 3 x 3 to be resized: as channels first (N, 3, 3, 4), the maps match
# the axes channels-last images would have (Hypothesis found it; the layout is refused by name)
_AMBIGUOUS = (np.full((2, 3, 4, 3), 0.5, np.float32), np.full((2, 3, 3), 0.5, np.float32), np.array([0, 1]),
              {"batch_size": None, "nan_policy": "raise"}, True)


@JAX_SETTINGS
@given(case=cases())
@example(case=_AMBIGUOUS)
def test_evaluate_gives_the_numpy_numbers_or_a_clear_error(case):
    images, cams, labels, options, on_device = case
    images_before, cams_before = images.copy(), cams.copy()
    bad_images = ~np.isfinite(images.astype(np.float64).reshape(len(images), -1)).all(axis=1)
    bad_cams = ~np.isfinite(cams.astype(np.float64).reshape(len(cams), -1)).all(axis=1)
    bad = bad_images | bad_cams
    nchw = channels_first(images)
    given_images = torch.from_numpy(nchw) if on_device else nchw
    if options["nan_policy"] == "raise" and bad_images.any():
        with pytest.raises(ValueError) as caught:
            AveragesCam(model, given_images, **options)
        assert_names(caught.value, f"inputs[{int(np.flatnonzero(bad_images)[0])}]")
        return
    metrics = AveragesCam(model, given_images, **options)
    score = CategoricalScore(labels)
    if cams.shape[1:] != nchw.shape[2:] and cams.shape[1:] == nchw.shape[1:3]:
        # maps of another size that match the channels and the height, as channels-last images
        # would: the adapter does not guess the layout, it names data_format
        event("layout refused")
        with pytest.raises(ValueError) as caught:
            metrics.evaluate(cams, score)
        assert_names(caught.value, 'data_format="channels_last"')
    elif options["nan_policy"] == "raise" and bad.any():
        with pytest.raises(ValueError) as caught:
            metrics.evaluate(cams, score)
        assert_names(caught.value, f"cams[{int(np.flatnonzero(bad_cams)[0])}]")
    elif bad.all():
        with pytest.raises(ValueError) as caught:
            metrics.evaluate(cams, score)
        assert_names(caught.value, "skipped", "nothing to average")
    else:
        event("omitted some" if bad.any() else "valid")
        result = metrics.evaluate(cams, score)
        y_c, o_c = oracle_scores(images.astype(np.float32), cams.astype(np.float32), labels)
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
    np.testing.assert_array_equal(images, images_before)
    np.testing.assert_array_equal(cams.astype(np.float32), cams_before.astype(np.float32))


@settings(JAX_SETTINGS, max_examples=12)
@given(case=misfits())
def test_cams_that_do_not_fit_are_refused_by_name(case):
    n, cams = case
    if isinstance(cams, np.ndarray) and cams.ndim == 4:  # a channel axis where PyTorch puts it
        cams = channels_first(cams)
    metrics = AveragesCam(model, np.full((n, 3, 4, 4), 0.5, np.float32))
    with pytest.raises(ValueError) as caught:
        metrics.evaluate(cams, CategoricalScore(np.zeros(n, dtype=int)))
    assert "cams" in str(caught.value)
