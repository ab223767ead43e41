"""Fuzzing the doors that take score vectors: ``MetricState.update`` and the Keras metrics
(eager and under ``tf.function``).

The drawn scores are those of ``tests/test_fuzz_core.py`` (arrays of any numeric dtype, lists,
tuples, scalars, None, ragged lists, objects; NaN, infinity, empty, 0-d to 3-d), and so is the
oracle, written from the contract: a valid input gives the NumPy reference
(``tests/reference.py``) on the samples that count; an invalid one raises ``ValueError`` or
``TypeError`` naming the argument (under ``tf.function`` a check on values raises
``InvalidArgumentError`` with the same text). Never another exception, never NaN in a result.

A state and a Keras metric add samples, so an empty batch is valid for them (it adds none).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import reference_metrics
from test_fuzz_core import Invalid, assert_unchanged, copies, oracle_vector, run_against_oracle, score_pairs

from camavg_core import MetricState

tf = pytest.importorskip("tensorflow")
from camavg_tf.metrics import AverageDrop, AverageGain, AverageIncrease  # noqa: E402

ERRORS = (ValueError, TypeError)
GRAPH_ERRORS = ERRORS + (tf.errors.InvalidArgumentError,)
METRICS = {"drop": AverageDrop, "increase": AverageIncrease, "gain": AverageGain}
NAMES = {"drop": "average_drop", "increase": "average_increase", "gain": "average_gain"}
nan_policies = st.sampled_from(["raise", "omit"])


def oracle_added(y_c, o_c, nan_policy: str, names: tuple[str, str], *, low: bool, high: bool):
    """What a door that adds samples must do: ``(y, o, valid)``, or :class:`Invalid`.

    ``low``/``high``: the door needs scores >= 0 / <= 1 (drop: low; gain and the state: both).
    """
    y, o = oracle_vector(y_c, names[0]), oracle_vector(o_c, names[1])
    if len(y) != len(o):
        raise Invalid(*names)
    # every argument at fault: a door may name whichever it checks first
    at_fault = []
    for scores, name in ((y, names[0]), (o, names[1])):
        finite = scores[np.isfinite(scores)]
        if nan_policy == "raise" and finite.size < scores.size:
            at_fault.append(name)
        if finite.size and ((low and finite.min() < 0) or (high and finite.max() > 1)):
            at_fault.append(name)
    if at_fault:
        raise Invalid(*at_fault)
    return y, o, np.isfinite(y) & np.isfinite(o)


def assert_reference(values: dict, y: np.ndarray, o: np.ndarray, valid: np.ndarray, tolerance: float) -> None:
    expected = reference_metrics(y[valid], o[valid])
    for name, value in values.items():
        assert math.isfinite(value), f"{name} is {value}"
        assert value == pytest.approx(expected[name], abs=tolerance), name


# --------------------------------------------------------------------------- MetricState.update
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(pair=score_pairs(), nan_policy=nan_policies)
def test_state_update_adds_the_numpy_values_or_names_the_argument(pair, nan_policy):
    y_c, o_c = pair
    before = copies(y_c, o_c)
    outcome = run_against_oracle(
        lambda: MetricState.empty().update(y_c, o_c, nan_policy=nan_policy),
        lambda: oracle_added(y_c, o_c, nan_policy, ("y_c", "o_c"), low=True, high=True),
        ERRORS,
    )
    if outcome is not None:
        (y, o, valid), state = outcome
        assert (state.n, state.skipped) == (int(valid.sum()), int((~valid).sum()))
        if valid.any():
            result = state.result()
            assert_reference({name: getattr(result, name) for name in NAMES.values()}, y, o, valid, 1e-9)
    assert_unchanged(before, [y_c, o_c])


# --------------------------------------------------------------------------- Keras metrics
def _as_tensor_if_numbers(value):
    """Numbers as a tensor, so value checks run inside the graph; anything else as given."""
    if value is None or isinstance(value, str):
        return value
    try:
        array = np.asarray(value)
    except ValueError:
        return value
    return tf.constant(array) if array.dtype.kind in "biuf" else value


def _keras_outcome(kind: str, y_c, o_c, nan_policy: str, traced: bool):
    metric = METRICS[kind](nan_policy=nan_policy)

    def call():
        if traced:
            tf.function(metric.update_state)(_as_tensor_if_numbers(y_c), _as_tensor_if_numbers(o_c))
        else:
            metric.update_state(y_c, o_c)
        return metric

    return run_against_oracle(
        call,
        lambda: oracle_added(y_c, o_c, nan_policy, ("scores", "masked_scores"),
                             low=kind != "increase", high=kind == "gain"),
        GRAPH_ERRORS if traced else ERRORS,
    )


@pytest.mark.slow
@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("kind", list(METRICS))
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=25)
@given(pair=score_pairs(), nan_policy=nan_policies)
def test_keras_metric_adds_the_numpy_value_or_names_the_argument(kind, traced, pair, nan_policy):
    y_c, o_c = pair
    before = copies(y_c, o_c)
    outcome = _keras_outcome(kind, y_c, o_c, nan_policy, traced)
    if outcome is not None:
        (y, o, valid), metric = outcome
        assert int(metric.count) == int(valid.sum())
        value = float(metric.result())
        if valid.any():  # the result is kept in float32
            assert_reference({NAMES[kind]: value}, y, o, valid, 1e-4)
        else:
            assert value == 0.0  # as keras.metrics.Mean with no sample
    assert_unchanged(before, [y_c, o_c])
