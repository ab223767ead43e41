"""The Keras metrics AverageDrop, AverageIncrease and AverageGain, eagerly and in tf.function.

Every expected number comes from the tests' shared NumPy reference (reference.py) or is worked
by hand. The two-replica (MirroredStrategy) and two-host (MultiWorkerMirroredStrategy) runs of
the same metrics are in test_tf_distribute.py and test_multiworker.py, which need processes of
their own.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from camavg_tf.metrics import (  # noqa: E402
    AverageDrop,
    AverageGain,
    AverageIncrease,
    StateMetric,
)
from reference import EPS, reference_terms  # noqa: E402

METRICS = (AverageDrop, AverageIncrease, AverageGain)
# each Keras metric's name in the shared reference
KIND = {AverageDrop: "average_drop", AverageIncrease: "average_increase", AverageGain: "average_gain"}


def scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, n).astype(np.float32), rng.uniform(0, 1, n).astype(np.float32)


# --------------------------------------------------------------------------- by hand
def test_hand_worked_values():
    y = [0.8, 0.5, 0.5, 0.2]
    o = [0.2, 0.6, 0.5, 0.6]
    drop, increase, gain = AverageDrop(), AverageIncrease(), AverageGain()
    for metric in (drop, increase, gain):
        metric.update_state(y, o)
    # drop: 0.6/0.8 = 0.75, then 0, 0, 0 -> 100 * 0.75 / 4 = 18.75
    assert float(drop.result()) == pytest.approx(18.75, abs=1e-4)
    # increase: 0.5 < 0.6 and 0.2 < 0.6 -> 2 of 4
    assert float(increase.result()) == pytest.approx(50.0)
    # gain: 0.1/0.5 = 0.2 and 0.4/0.8 = 0.5 -> 100 * 0.7 / 4 = 17.5
    assert float(gain.result()) == pytest.approx(17.5, abs=1e-4)


# --------------------------------------------------------------------------- against NumPy
@pytest.mark.parametrize("metric_class", METRICS)
def test_eager_batches_equal_numpy(metric_class):
    y, o = scores(50, seed=1)
    metric = metric_class()
    for start in range(0, 50, 16):  # 16, 16, 16, 2
        metric.update_state(y[start : start + 16], o[start : start + 16])
    terms = reference_terms(y, o)[KIND[metric_class]]
    assert float(metric.result()) == pytest.approx(100 * terms.mean(), rel=1e-6, abs=1e-6)
    assert float(metric.standard_error()) == pytest.approx(100 * terms.std(ddof=1) / np.sqrt(50), rel=1e-5)
    assert float(tf.convert_to_tensor(metric.count)) == 50


@pytest.mark.slow
@pytest.mark.parametrize("metric_class", METRICS)
def test_inside_tf_function_equals_numpy(metric_class):
    y, o = scores(40, seed=2)
    metric = metric_class()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)] * 2)
    def update(y_batch, o_batch):  # the batch size is unknown when traced
        metric.update_state(y_batch, o_batch)

    for start in range(0, 40, 12):
        update(y[start : start + 12], o[start : start + 12])
    expected = 100 * reference_terms(y, o)[KIND[metric_class]].mean()
    assert float(metric.result()) == pytest.approx(expected, rel=1e-6, abs=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    data=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 30), st.just(2)),
        elements=st.floats(0.0, 1.0, allow_subnormal=False),
    ),
    split=st.integers(0, 30),
)
def test_any_split_gives_the_numpy_average(data, split):
    y, o = data[:, 0], data[:, 1]
    split = min(split, len(y))
    for metric_class in METRICS:
        metric = metric_class()
        metric.update_state(y[:split], o[:split])
        metric.update_state(y[split:], o[split:])
        expected = 100 * reference_terms(y, o)[KIND[metric_class]].mean()
        assert float(metric.result()) == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_the_state_metrics_variables_are_the_states_fields_and_equal_numpy_sums():
    y, o = scores(33, seed=3)
    metric = StateMetric()
    tf.function(metric.update_state)(tf.constant(y), tf.constant(o))
    state = metric.state()
    assert [v.name for v in metric.variables] == state.fields()
    terms = reference_terms(y, o)
    drop, gain = terms["average_drop"], terms["average_gain"]
    expected = [
        33, 0, drop.sum(), (drop**2).sum(), (drop**3).sum(), np.count_nonzero(drop), (y < o).sum(),
        gain.sum(), (gain**2).sum(), (gain**3).sum(), np.count_nonzero(gain),
    ]
    np.testing.assert_allclose([float(value) for value in state.flat()], expected, rtol=1e-12)


# --------------------------------------------------------------------------- state handling
def test_reset_state_forgets_everything():
    metric = AverageDrop()
    metric.update_state([0.8], [0.2])
    metric.reset_state()
    assert float(metric.result()) == 0.0 and int(metric.count) == 0  # as keras.metrics.Mean
    metric.update_state([0.5], [0.25])
    assert float(metric.result()) == pytest.approx(100 * 0.25 / (0.5 + EPS))


def test_variables_sum_across_replicas():
    metric = AverageGain()
    assert {v.aggregation for v in metric.variables} == {"sum"}
    assert {v.dtype for v in metric.variables} == {"float64"}
    # the variables are the fields of the metric's MetricState
    assert [v.name for v in AverageIncrease().variables] == ["n", "skipped", "increase_count"]
    assert [v.name for v in AverageGain().variables] == [
        "n", "skipped", "gain_sum", "gain_sq_sum", "gain_cube_sum", "gain_nonzero"
    ]


def test_result_dtype_follows_the_metric_dtype():
    assert AverageDrop().result().dtype == tf.float32
    metric = AverageDrop(dtype="float64")
    metric.update_state([0.8], [0.2])
    assert metric.result().dtype == tf.float64


def test_column_scores_are_read_as_vectors():
    metric = AverageIncrease()
    metric.update_state(np.array([[0.1], [0.5]]), np.array([[0.2], [0.4]]))
    assert float(metric.result()) == pytest.approx(50.0)


def test_config_round_trip_keeps_nan_policy():
    metric = AverageGain(name="gain_omit", nan_policy="omit")
    clone = AverageGain.from_config(metric.get_config())
    assert clone.name == "gain_omit" and clone.nan_policy == "omit"


# --------------------------------------------------------------------------- non-finite scores
def test_omit_skips_and_counts_nonfinite_pairs():
    y = np.array([0.8, np.nan, 0.5, 0.4])
    o = np.array([0.2, 0.3, np.inf, 0.6])
    metric = AverageDrop(nan_policy="omit")
    metric.update_state(y, o)
    assert float(tf.convert_to_tensor(metric.skipped)) == 2
    assert float(tf.convert_to_tensor(metric.count)) == 2
    assert float(metric.result()) == pytest.approx(100 * (0.6 / (0.8 + EPS)) / 2)


def test_raise_names_the_first_nonfinite_score_eagerly():
    with pytest.raises(ValueError, match=r"masked_scores\[1\] is nan"):
        AverageIncrease().update_state([0.1, 0.2], [0.3, np.nan])


def test_raise_inside_tf_function_is_a_graph_assertion():
    metric = AverageDrop()

    @tf.function
    def update(y_batch, o_batch):
        metric.update_state(y_batch, o_batch)

    with pytest.raises(tf.errors.InvalidArgumentError, match="nan_policy='omit'"):
        update(tf.constant([0.5, np.nan]), tf.constant([0.1, 0.2]))


# --------------------------------------------------------------------------- bad input
def test_logits_are_refused_by_drop_and_gain_but_not_increase():
    with pytest.raises(ValueError, match="logits"):
        AverageDrop().update_state([-1.5, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="logits"):
        AverageGain().update_state([1.5, 0.3], [0.1, 0.2])
    increase = AverageIncrease()
    increase.update_state([-1.5, 2.0], [0.1, 1.0])  # any score can increase
    assert float(increase.result()) == pytest.approx(50.0)


def test_logits_inside_tf_function_fail_the_graph_check():
    metric = AverageGain()
    with pytest.raises(tf.errors.InvalidArgumentError, match="logits"):
        tf.function(metric.update_state)(tf.constant([1.5, 0.3]), tf.constant([0.1, 0.2]))


def test_sample_weight_is_refused():
    with pytest.raises(ValueError, match="takes no sample_weight"):
        AverageDrop().update_state([0.5], [0.2], sample_weight=[2.0])


def test_mismatched_and_matrix_scores_are_refused():
    with pytest.raises(ValueError, match="scores has 2 scores but masked_scores has 3"):
        AverageDrop().update_state([0.5, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"masked_scores must be a vector of one score per sample"):
        AverageDrop().update_state([0.5, 0.2], np.ones((2, 4)) / 4)


def test_unknown_nan_policy_is_refused():
    with pytest.raises(ValueError, match="nan_policy must be one of"):
        AverageDrop(nan_policy="ignore")


# --------------------------------------------------------------------------- Keras conventions
@pytest.mark.parametrize("metric_class", METRICS)
def test_empty_result_is_zero_and_count_is_exposed(metric_class):
    metric = metric_class()
    assert float(metric.result()) == 0.0 and not np.isnan(float(metric.result()))
    assert int(metric.count) == 0
    assert metric.interval() == (0.0, 100.0)
    metric.update_state([0.8, 0.5, 0.4], [0.2, 0.6, 0.4])
    assert int(metric.count) == 3
    metric.reset_state()
    assert float(metric.result()) == 0.0 and int(metric.count) == 0


# --------------------------------------------------------------------------- the same interval
@pytest.mark.slow
@pytest.mark.parametrize("level", [0.9, 0.95])
def test_interval_is_the_interval_of_summarize_and_the_stream(level):
    from camavg_core import MetricState, summarize

    rng = np.random.default_rng(5)
    y = rng.beta(5.0, 2.0, 300)
    o = np.clip(y + rng.normal(-0.05, 0.2, 300), 0.0, 1.0)
    in_memory = summarize(y, o, level=level)
    streamed = MetricState.empty().update(y[:100], o[:100]).merge(
        MetricState.empty().update(y[100:], o[100:])
    ).result(level=level)
    for metric_class, name in zip(METRICS, ("average_drop", "average_increase", "average_gain")):
        metric = metric_class()
        step = tf.function(metric.update_state)
        for start in range(0, 300, 64):  # uneven batches, traced
            step(tf.constant(y[start : start + 64]), tf.constant(o[start : start + 64]))
        assert metric.interval(level=level) == pytest.approx(in_memory.ci[name], abs=1e-9)
        assert metric.interval(level=level) == pytest.approx(streamed.ci[name], abs=1e-9)
        assert metric.ci_method == in_memory.ci_method[name]
        assert float(metric.result()) == pytest.approx(getattr(in_memory, name), abs=1e-4)


# --------------------------------------------------------------------------- the checks of core
def test_a_logit_in_the_masked_scores_is_refused_with_the_message_of_core():
    from camavg_core import validation

    with pytest.raises(ValueError) as caught:
        AverageDrop().update_state([0.9, 0.5], [-0.4, 0.2])  # once read as a drop of 102.2%
    with pytest.raises(ValueError) as core:
        validation.check_probabilities(np.array([-0.4, 0.2]), "Average Drop", upper=False, argument="masked_scores")
    assert str(caught.value) == str(core.value)
    assert "masked_scores holds -0.4" in str(caught.value) and "logits" in str(caught.value)
    with pytest.raises(ValueError, match="masked_scores holds 1.3"):
        AverageGain().update_state([0.5, 0.5], [1.3, 0.2])


@pytest.mark.parametrize(
    "metric_class, y, o, seen",
    [
        (AverageDrop, [0.9, 0.5], [-0.4, 0.2], "a value < 0"),
        (AverageGain, [0.5, 0.5], [1.3, 0.2], "a value > 1"),
        (AverageGain, [1.5, 0.3], [0.1, 0.2], "a value > 1"),
    ],
)
def test_traced_checks_carry_the_text_of_core(metric_class, y, o, seen):
    from camavg_core import validation

    metric = metric_class()
    argument = "masked_scores" if metric_class is not AverageGain or y[0] <= 1 else "scores"
    expected = validation.probabilities_message(
        metric.described[0].title, argument, seen, upper=metric_class is AverageGain
    )
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        tf.function(metric.update_state)(tf.constant(y), tf.constant(o))
    # TensorFlow escapes the quotes of a graph assertion's message; the text is otherwise intact
    assert expected in caught.value.message.replace("\\'", "'")


def test_probabilities_message_is_the_text_of_check_probabilities():
    from camavg_core import validation

    with pytest.raises(ValueError) as caught:
        validation.check_probabilities(np.array([0.2, 1.5]), "Average Gain", upper=True, argument="O_c")
    assert str(caught.value) == validation.probabilities_message("Average Gain", "O_c", "1.5", upper=True)
