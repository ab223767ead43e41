"""Fuzzing the streams: ``camavg_tf.evaluate_dataset`` and ``camavg_jax.evaluate_dataset``.

Each example is a list of 1-3 drawn ``(inputs, cams, targets)`` batches, clean or spoilt in one
way each: a list for the targets, other dtypes, a channel axis on the CAMs (all accepted); CAMs of
the wrong rank, outside [0, 1] or as a list (a multi-input model's form), NaN or infinity in the images or CAMs, targets out of range,
not integers, of the wrong count or a scalar, an empty batch (all refused, but NaN under
``nan_policy='omit'``, which skips the sample). The model is a dense softmax layer with known
weights, so NumPy computes its scores: a stream that returns must give the NumPy reference
(``tests/reference.py``) on the samples that count; a stream given a refused batch must raise
``ValueError`` or ``TypeError`` naming the argument; nothing else, never NaN in a result.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import reference_metrics

SHAPE = (4, 4, 2)
CLASSES = 3
KERNEL = np.random.default_rng(3).normal(0.0, 0.5, (int(np.prod(SHAPE)), CLASSES)).astype(np.float32)
ERRORS = (ValueError, TypeError)
#: words one of which a refusal's message must hold: the argument or the batch part at fault
NAMED = ("inputs", "cams", "targets", "class index", "skipped")

ACCEPTED_SPOILS = ["clean", "clean", "clean", "lists", "float64", "cam_channel", "cam_list"]
REFUSED_SPOILS = ["cam_rank", "cam_range", "cam_nan", "input_inf", "target_range", "target_float",
                  "target_count", "target_scalar", "empty"]


def probabilities(x: np.ndarray) -> np.ndarray:
    z = x.reshape(len(x), -1).astype(np.float64) @ KERNEL.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def streams():
    """``{name: (evaluate_dataset, model)}`` for each installed framework, built once."""
    found = {}
    try:
        import keras

        import camavg_tf

        model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                                  keras.layers.Dense(CLASSES, activation="softmax")])
        model.layers[-1].set_weights([KERNEL, np.zeros(CLASSES, np.float32)])
        found["tensorflow"] = (camavg_tf.evaluate_dataset, model)
    except ImportError:
        pass
    try:
        import jax

        import camavg_jax

        found["jax"] = (camavg_jax.evaluate_dataset,
                        lambda x: jax.nn.softmax(x.reshape(x.shape[0], -1) @ KERNEL))
    except ImportError:
        pass
    return found


unit_floats = st.floats(0.0, 1.0, width=32, allow_subnormal=False)


@st.composite
def batches(draw):
    """``(batch, spoil)``: one drawn batch and how it was spoilt ('clean' when not)."""
    size = draw(st.integers(1, 4))
    inputs = draw(hnp.arrays(np.float32, (size, *SHAPE), elements=unit_floats))
    cams = draw(hnp.arrays(np.float32, (size, *SHAPE[:2]), elements=unit_floats))
    targets = draw(hnp.arrays(np.int64, (size,), elements=st.integers(0, CLASSES - 1)))
    spoil = draw(st.sampled_from(ACCEPTED_SPOILS + REFUSED_SPOILS))
    sample = draw(st.integers(0, size - 1))
    if spoil == "lists":
        # a list of images or CAMs is a multi-input model's (see the xfail in
        # test_bad_input_table.py for images as a nested list of numbers)
        return (inputs, cams, targets.tolist()), spoil
    if spoil == "float64":
        return (inputs.astype(np.float64), cams.astype(np.float64), targets.astype(np.int32)), spoil
    if spoil == "cam_channel":
        return (inputs, cams[..., None], targets), spoil
    if spoil == "cam_list":
        return (inputs, cams.tolist(), targets), spoil
    if spoil == "cam_rank":
        cams = cams[:, 0] if draw(st.booleans()) else cams[..., None, None]
    elif spoil == "cam_range":
        cams = cams.copy()
        cams[sample, 0, 0] = draw(st.sampled_from([-0.5, 1.5, 255.0]))
    elif spoil == "cam_nan":
        cams = cams.copy()
        cams[sample, 1, 1] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif spoil == "input_inf":
        inputs = inputs.copy()
        inputs[sample, 0, 0, 0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif spoil == "target_range":
        targets = targets.copy()
        targets[sample] = draw(st.sampled_from([-1, CLASSES, 1000]))
    elif spoil == "target_float":
        targets = targets.astype(np.float64) + draw(st.sampled_from([0.0, 0.5]))
    elif spoil == "target_count":
        targets = np.append(targets, 0) if draw(st.booleans()) else targets[1:]
    elif spoil == "target_scalar":
        targets = np.int64(0)
    elif spoil == "empty":
        inputs, cams, targets = inputs[:0], cams[:0], targets[:0]
    return (inputs, cams, targets), spoil


def expected(drawn: list, nan_policy: str):
    """The NumPy result of the stream, or None when it must be refused."""
    if any(spoil in REFUSED_SPOILS and not (spoil in ("cam_nan", "input_inf") and nan_policy == "omit")
           for _, spoil in drawn):
        return None
    y, o, valid = [], [], []
    for (inputs, cams, targets), _ in drawn:
        x = np.asarray(inputs, np.float64)
        maps = np.asarray(cams, np.float64).reshape(len(x), *SHAPE[:2])
        rows = np.arange(len(x))
        valid.append(np.isfinite(x).all(axis=(1, 2, 3)) & np.isfinite(maps).all(axis=(1, 2)))
        y.append(probabilities(np.nan_to_num(x))[rows, targets])
        o.append(probabilities(np.nan_to_num(x * maps[..., None]))[rows, targets])
    y, o, valid = np.concatenate(y), np.concatenate(o), np.concatenate(valid)
    if not valid.any():
        return None  # every sample skipped: nothing to average
    y, o = y[valid], o[valid]
    # Average Increase counts y < o: where float32 cannot tell y from o, either side is right
    tied = np.abs(y - o) <= 1e-5
    increase = (100.0 * np.mean((y < o) & ~tied), 100.0 * np.mean((y < o) | tied))
    return reference_metrics(y, o), increase, int(valid.sum()), int((~valid).sum())


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["tensorflow", "jax"])
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
          deadline=None, max_examples=20)
@given(drawn=st.lists(batches(), min_size=1, max_size=3), nan_policy=st.sampled_from(["raise", "omit"]))
def test_stream_gives_the_numpy_values_or_names_the_argument(streams, framework, drawn, nan_policy):
    if framework not in streams:
        pytest.skip(f"{framework} is not installed")
    evaluate_dataset, model = streams[framework]
    verdict = expected(drawn, nan_policy)
    data = [batch for batch, _ in drawn]
    event(", ".join(spoil for _, spoil in drawn))
    if verdict is None:
        with pytest.raises(ERRORS) as caught:
            evaluate_dataset(model, data, nan_policy=nan_policy)
        message = str(caught.value)
        assert any(word in message for word in NAMED), message
        return
    metrics, increase, n, skipped = verdict
    result = evaluate_dataset(model, data, nan_policy=nan_policy)
    assert (result.n, result.skipped) == (n, skipped)
    assert increase[0] - 1e-9 <= result.average_increase <= increase[1] + 1e-9
    for name in ("average_drop", "average_gain"):
        value = metrics[name]
        assert math.isfinite(getattr(result, name)), name
        # the model runs in float32: a term moves by a few float32 ulps of the scores
        assert getattr(result, name) == pytest.approx(value, abs=1e-3), name
