"""A Keras model under the ``mixed_float16`` policy against its float32 twin (the same weights).

- With a float32 output layer (what Keras' mixed precision guide advises), all three metrics are
  within 0.5 points of the float32 model's.
- With a float16 softmax, drop and gain still are; Average Increase counts strict rises, and a
  sample whose masked score ties its plain score to float16's three digits can flip either way
  (2 points on 250 object-masked images here), which is float16's resolution, not camavg's.
- camavg scores float16 outputs in float32 and averages in float64: no second rounding.

The policy is process-global, so it is set only while a twin is built and restored to
``float32`` in a ``finally`` block, whatever happens.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from camavg_cli.synthetic import make_images  # noqa: E402
from camavg_tf import AveragesCam  # noqa: E402
from reference import reference_metrics  # noqa: E402

METRICS = ("average_drop", "average_increase", "average_gain")
# one sample whose increase flips moves Average Increase by 100 / N points: keep that under 0.5
N = 250


def mixed_twin(model: keras.Model, *, float32_output: bool) -> keras.Model:
    """``model`` rebuilt under ``mixed_float16`` with its weights; with ``float32_output`` the
    last layer keeps float32, as Keras' mixed precision guide advises. The global policy is
    ``float32`` again when this returns or raises."""

    def under_global_policy(layer):
        config = layer.get_config()
        config.pop("dtype", None)  # the layer's float32 policy would override the global one
        if float32_output and layer is model.layers[-1]:
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        twin = keras.models.clone_model(model, clone_function=under_global_policy)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    twin.set_weights(model.get_weights())
    return twin


@pytest.fixture(autouse=True)
def policy_is_float32_around_every_test():
    assert keras.mixed_precision.global_policy().name == "float32"
    yield
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.fixture(scope="module")
def twins(demo_model):
    """The demo's CNN (float32), and two mixed_float16 twins of it."""
    model = demo_model[0]
    return {
        "float32": model,
        "float32 output": mixed_twin(model, float32_output=True),
        "float16 output": mixed_twin(model, float32_output=False),
    }


@pytest.fixture(scope="module")
def evaluation():
    data = make_images(N, size=32, seed=6)
    rng = np.random.default_rng(6)
    cam_sets = {
        "object masks": data.masks,  # keep the evidence: small drops, many near-ties
        "inverse masks": 1.0 - data.masks,  # remove it: large drops
        "random": rng.random((N, 32, 32)).astype(np.float32),
        "coarse": rng.random((N, 8, 8)).astype(np.float32),  # resized to 32x32
    }
    return data, cam_sets


def evaluate(model, data, cams):
    score = lambda outputs: tf.gather(outputs, data.labels, axis=1, batch_dims=1)  # noqa: E731
    return AveragesCam(model, data.images, batch_size=64).evaluate(cams, score)


@pytest.mark.slow
def test_the_twins_really_compute_in_float16(twins):
    for name in ("float32 output", "float16 output"):
        conv = next(layer for layer in twins[name].layers if isinstance(layer, keras.layers.Conv2D))
        assert conv.compute_dtype == "float16" and conv.variable_dtype == "float32"
    assert twins["float32 output"].outputs[0].dtype == "float32"
    assert twins["float16 output"].outputs[0].dtype == "float16"


@pytest.mark.slow
@pytest.mark.parametrize("cams_name", ["object masks", "inverse masks", "random", "coarse"])
def test_mixed_float16_model_is_within_half_a_point(twins, evaluation, cams_name):
    """Keras' recommended set-up: float16 compute, a float32 output layer."""
    data, cam_sets = evaluation
    reference = evaluate(twins["float32"], data, cam_sets[cams_name])
    result = evaluate(twins["float32 output"], data, cam_sets[cams_name])
    # a comparison of real numbers, not of zeros
    assert max(getattr(reference, name) for name in METRICS) > 1.0
    for name in METRICS:
        assert abs(getattr(result, name) - getattr(reference, name)) <= 0.5, name
    np.testing.assert_allclose(result.o_c, reference.o_c, atol=5e-3)
    assert result.y_c.dtype == np.float64


@pytest.mark.slow
@pytest.mark.parametrize("cams_name", ["object masks", "inverse masks", "random", "coarse"])
def test_float16_softmax_keeps_drop_and_gain_within_half_a_point(twins, evaluation, cams_name):
    """A float16 softmax rounds every score to about 3 digits. Drop and gain move by that
    rounding only. Average Increase counts strict rises, so a sample whose masked score ties
    its plain score to float16's resolution can flip; every flipped sample must be such a tie."""
    data, cam_sets = evaluation
    reference = evaluate(twins["float32"], data, cam_sets[cams_name])
    result = evaluate(twins["float16 output"], data, cam_sets[cams_name])
    for name in ("average_drop", "average_gain"):
        assert abs(getattr(result, name) - getattr(reference, name)) <= 0.5, name
    flipped = (reference.y_c < reference.o_c) != (result.y_c < result.o_c)
    float16_resolution = 2.0**-10  # the spacing of float16 values in [0.5, 1)
    assert np.all(np.abs(reference.o_c - reference.y_c)[flipped] <= 2 * float16_resolution)


@pytest.mark.slow
def test_mixed_float16_scores_are_not_kept_in_float16(twins, evaluation):
    """The score vectors of a float16 model are its float16 outputs widened, not rounded
    again: each one is a float16 value, and the averages are computed from them in float64."""
    data, cam_sets = evaluation
    result = evaluate(twins["float16 output"], data, cam_sets["random"])
    np.testing.assert_array_equal(result.y_c, result.y_c.astype(np.float16).astype(np.float64))
    y, o = result.y_c, result.o_c
    expected_drop = reference_metrics(y, o)["average_drop"]
    assert result.average_drop == pytest.approx(expected_drop, rel=1e-12)
