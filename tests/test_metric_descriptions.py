"""One description per metric, one update path, checks at the doors only.

- A metric that exists only in this file (the relative change (O - Y) / Y of the score, on the
  CAM mask) works end to end through ``evaluate``, ``compare`` and a stream, on an engine whose
  adapter is made here of NumPy alone; its numbers are NumPy's, computed here.
- In one ``evaluate`` no score vector is checked twice: the validation functions are counted.

Oracles: NumPy means and differences of the terms written here; the stream against the
in-memory call (two paths); the three averages' values against tests/reference.py.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from camavg_core import METRICS, Metric, MetricState, compare, summarize, validation
from camavg_core.engine import AveragesCamBase, Engine, Options
from camavg_core.masking import mask_inputs
from camavg_core.stream import evaluate_stream
from numpy_adapter import NumpyAdapter
from reference import reference_terms

EPS = 1e-7


def relative_change(y, curve, backend):
    """(O - Y) / (Y + eps): how much of the score the masked input keeps, minus one."""
    return (curve[0] - y) / (y + EPS)


RELATIVE_CHANGE = Metric(
    "relative_change", "Relative Change", unit="fraction", scale=1.0, higher_is_better=True,
    scores="probabilities", terms=relative_change, bounds=(-1.0, np.inf),
)


class NumpyAveragesCam(AveragesCamBase):
    def __init__(self, weights, inputs):
        self.model, self.inputs = weights, inputs
        self.engine = Engine(NumpyAdapter(weights), inputs, batch_size=None, nan_policy="raise", level=0.95,
                             options=Options())


RNG = np.random.default_rng(21)
N = 40
IMAGES = RNG.random((N, 6, 6, 3))
WEIGHTS = RNG.normal(size=(3, 4)) * 4
LABELS = RNG.integers(0, 4, N)
CAMS_A = RNG.random((N, 3, 3))
CAMS_B = RNG.random((N, 3, 3)) ** 3


def score(outputs):
    return outputs[np.arange(N), LABELS]


def numpy_scores(cams):
    """Y and O computed here: the model written out; the masked inputs from camavg's
    ``mask_inputs`` (its bilinear resize is tested in test_masking.py)."""
    def model(x):
        logits = x.mean(axis=(1, 2)) @ WEIGHTS
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True))[np.arange(N), LABELS]

    masked = mask_inputs(IMAGES, cams)
    return model(IMAGES), model(np.asarray(masked))


def test_a_metric_defined_here_works_in_evaluate():
    cam = NumpyAveragesCam(WEIGHTS, IMAGES)
    result = cam.evaluate(CAMS_A, score, metrics=[RELATIVE_CHANGE, "average_drop"])
    y, o = numpy_scores(CAMS_A)
    assert list(result.values) == ["average_drop", "relative_change"]  # camavg's own first, in METRICS order
    assert result.values["relative_change"] == pytest.approx(np.mean((o - y) / (y + EPS)), rel=1e-12)
    assert result.average_drop == pytest.approx(100 * reference_terms(y, o)["average_drop"].mean(), rel=1e-12)
    assert result.ci_method == {"relative_change": "hall_t", "average_drop": "hall_t"}
    low, high = result.ci["relative_change"]
    assert low < result.values["relative_change"] < high
    assert "relative_change" in str(result) and "Relative Change" not in str(result)
    assert result.to_dict()["relative_change"] == result.values["relative_change"]


def test_a_metric_defined_here_works_in_compare_and_compare_methods():
    cam = NumpyAveragesCam(WEIGHTS, IMAGES)
    both = cam.compare({"a": CAMS_A, "b": CAMS_B}, score, metrics=[RELATIVE_CHANGE])
    y, o_a = numpy_scores(CAMS_A)
    _, o_b = numpy_scores(CAMS_B)
    expected = np.mean((o_a - y) / (y + EPS)) - np.mean((o_b - y) / (y + EPS))
    row = both.comparisons.rows[0]
    assert (row.metric, row.a, row.b) == ("relative_change", "a", "b")
    assert row.difference == pytest.approx(expected, rel=1e-9)
    direct = compare(y, o_a, o_b, metrics=[RELATIVE_CHANGE], test="t")
    assert direct.difference["relative_change"] == pytest.approx(expected, rel=1e-9)
    # higher is better: a positive difference beyond the margin, significant, names a
    if direct.p_value["relative_change"] < 0.05 and direct.ci["relative_change"][0] > 0.5:
        assert direct.better["relative_change"] == "a"
    assert " pp" not in direct.summary()  # a fraction, not percentage points


def test_printed_values_and_differences_keep_three_decimals_for_a_fraction_and_two_for_percent():
    cam = NumpyAveragesCam(WEIGHTS, IMAGES)
    result = cam.evaluate(CAMS_A, score, metrics=[RELATIVE_CHANGE, "average_drop"])
    y, o_a = numpy_scores(CAMS_A)
    _, o_b = numpy_scores(CAMS_B)
    change = np.mean((o_a - y) / (y + EPS))
    drop = 100 * reference_terms(y, o_a)["average_drop"].mean()
    low, high = result.ci["relative_change"]
    assert f"relative_change {change:.3f} [{low:.3f}, {high:.3f}]" in str(result)
    assert f"average_drop {drop:.2f}% [" in str(result)
    difference = change - np.mean((o_b - y) / (y + EPS))
    direct = compare(y, o_a, o_b, metrics=[RELATIVE_CHANGE, "average_drop"], test="t")
    assert f"relative_change {difference:+.3f} [" in direct.summary()
    assert f"average_drop {direct.difference['average_drop']:+.2f} pp [" in direct.summary()
    table = cam.compare({"a": CAMS_A, "b": CAMS_B}, score, metrics=[RELATIVE_CHANGE]).comparisons
    assert f"{difference:+8.3f}" in str(table) and "diff pp" not in str(table)


@given(value=st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
                       st.floats(min_value=-2e-3, max_value=2e-3)),
       metric=st.sampled_from(["average_drop", "road"]), sign=st.booleans())
@example(value=-0.00026, metric="road", sign=False).via("an interval's bound just below 0")
@example(value=0.0007, metric="road", sign=True).via("rounds up to the last decimal")
@example(value=-0.0, metric="average_drop", sign=True).via("negative zero")
def test_a_printed_value_is_on_the_same_side_of_zero_and_as_near_as_its_digits_say(value, metric, sign):
    """``Metric.format``: the text, read back, has the value's sign (0 only for 0, -0.0
    included), is within half a unit of its last decimal (2 for percent, 3 for a fraction) of
    the value, and a value too small for those decimals keeps one significant digit: within
    half of the value's leading power of ten. ``sign`` puts a + before positive values; 0 has
    none."""
    decimals = 2 if metric == "average_drop" else 3
    text = METRICS[metric].format(value, sign=sign)
    shown = float(text)
    assert np.sign(shown) == np.sign(value)
    assert "e" not in text
    if value == 0:
        assert text == "0." + "0" * decimals
    half_unit = 0.5 * 10.0 ** -decimals
    if abs(value) >= half_unit * (1 + 1e-9):  # printed with its decimals
        assert len(text.split(".")[1]) == decimals
        assert abs(shown - value) <= half_unit * (1 + 1e-9)
    elif value != 0 and abs(value) < half_unit * (1 - 1e-9):  # one significant digit
        leading = 10.0 ** np.floor(np.log10(abs(value)))
        assert abs(shown - value) <= 0.5 * leading * (1 + 1e-9)
    assert text.startswith("+") == (sign and value > 0)


def test_a_metric_defined_here_works_in_a_stream_and_equals_memory():
    adapter = NumpyAdapter(WEIGHTS)
    batches = [(IMAGES[i:i + 16], CAMS_A[i:i + 16], LABELS[i:i + 16]) for i in range(0, N, 16)]
    streamed = evaluate_stream(adapter, batches, options=Options(), metrics=[RELATIVE_CHANGE])
    memory = NumpyAveragesCam(WEIGHTS, IMAGES).evaluate(CAMS_A, score, metrics=[RELATIVE_CHANGE])
    assert streamed.n == memory.n == N
    assert streamed.values["relative_change"] == pytest.approx(memory.values["relative_change"], rel=1e-12)
    assert streamed.ci["relative_change"] == pytest.approx(memory.ci["relative_change"], rel=1e-9)
    several = [(x, {"a": c, "b": CAMS_B[i:i + 16]}, t) for i, (x, c, t) in zip(range(0, N, 16), batches)]
    methods = evaluate_stream(adapter, several, options=Options(), metrics=[RELATIVE_CHANGE])
    assert [row.metric for row in methods.comparisons.rows] == ["relative_change"]


def test_a_state_of_a_metric_defined_here_merges_and_names_its_fields():
    y, o = numpy_scores(CAMS_A)
    whole = MetricState.empty([RELATIVE_CHANGE]).update(y, o)
    halves = MetricState.empty([RELATIVE_CHANGE]).update(y[:7], o[:7]).merge(
        MetricState.empty([RELATIVE_CHANGE]).update(y[7:], o[7:]))
    terms = (o - y) / (y + EPS)
    assert whole.fields() == ["n", "skipped", "relative_change_sum", "relative_change_sq_sum",
                              "relative_change_cube_sum", "relative_change_nonzero"]
    assert halves.relative_change_sum == pytest.approx(terms.sum(), rel=1e-12)
    assert halves.relative_change_cube_sum == pytest.approx((terms**3).sum(), rel=1e-12)
    with pytest.raises(ValueError, match="different metrics"):
        whole.merge(MetricState.empty())


def test_descriptions_say_what_the_old_tables_said():
    drop, increase, gain = list(METRICS.values())[:3]
    assert list(METRICS) == ["average_drop", "average_increase", "average_gain", "deletion", "insertion",
                             "mufidelity", "road"]
    assert (drop.higher_is_better, increase.higher_is_better, gain.higher_is_better) == (False, True, True)
    assert (drop.interval, increase.interval, gain.interval) == ("hall_t", "wilson", "hall_t")
    assert (drop.scores, increase.scores, gain.scores) == ("nonnegative", "any", "probabilities")
    with pytest.raises(ValueError, match="differs from camavg's own"):
        summarize([0.5], [0.4], metrics=[Metric("average_drop", "Mine", "percent", 100.0, True, "any", relative_change)])


def test_settings_name_every_parameter_a_factory_was_given():
    """What results.json records of a metric: each parameter its factory took, the averages none."""
    from camavg_core.metrics import deletion_metric, mufidelity_metric, road_metric

    assert [m.settings for m in list(METRICS.values())[:3]] == ["", "", ""]
    deletion = deletion_metric(steps=7, baseline=0.5, max_fraction=0.8).settings
    assert all(part in deletion for part in ("Deletion(", "steps=7", "baseline=0.5", "max_fraction=0.8"))
    mufidelity = mufidelity_metric(grid_size=5, subset_fraction=0.3, n_samples=40, correlation="pearson", seed=3).settings
    assert all(part in mufidelity for part in ("grid_size=5", "subset_fraction=0.3", "n_samples=40", "seed=3",
                                               "correlation='pearson'"))
    road = road_metric(fractions=(0.25, 0.5), noise=2.55, seed=4, selection="percentile").settings
    assert all(part in road for part in ("fractions=(0.25, 0.5)", "noise=2.55", "seed=4", "selection='percentile'"))


def test_grammar_comes_from_the_descriptions():
    drop, _, gain = list(METRICS.values())[:3]
    assert validation.metrics_phrase([drop, gain]) == ("Average Drop and Average Gain", "need")
    assert validation.metrics_phrase([gain]) == ("Average Gain", "needs")
    with pytest.raises(ValueError, match="^Average Drop and Average Gain need scores"):
        summarize([0.5, 1.5], [0.5, 0.5])
    with pytest.raises(ValueError, match="^Average Gain needs scores"):
        summarize([0.5, 1.5], [0.5, 0.5], metrics=["average_gain"])


# --------------------------------------------------------------------------- checks at the doors
CHECKS = ("as_score_vector", "check_finite", "check_scores_finite", "check_probabilities", "check_pair")


@pytest.fixture
def counted(monkeypatch):
    """Every call of a score-vector check, by check and by the id of the vector it saw."""
    calls = collections.Counter()
    for name in CHECKS:
        original = getattr(validation, name)

        def wrapper(values, *args, _original=original, _name=name, **kwargs):
            calls[(_name, id(values))] += 1
            return _original(values, *args, **kwargs)

        monkeypatch.setattr(validation, name, wrapper)
    return calls


def test_one_evaluate_checks_each_score_vector_once(counted):
    cam = NumpyAveragesCam(WEIGHTS, IMAGES)
    counted.clear()
    result = cam.evaluate(CAMS_A, score)
    assert result.n == N
    by_check = collections.Counter(name for name, _ in counted.elements())
    # each of Y_c and O_c: one finiteness check (where the scores are made) and one range check
    assert by_check == {"check_scores_finite": 2, "check_probabilities": 2}
    assert max(counted.values()) == 1  # no vector is seen twice by the same check


def test_summarize_and_compare_check_at_their_door_once(counted):
    y, o_a = numpy_scores(CAMS_A)
    _, o_b = numpy_scores(CAMS_B)
    summarize(y, o_a)
    by_check = collections.Counter(name for name, _ in counted.elements())
    assert by_check == {"as_score_vector": 2, "check_finite": 2, "check_pair": 1, "check_probabilities": 2}
    counted.clear()
    compare(y, o_a, o_b)
    by_check = collections.Counter(name for name, _ in counted.elements())
    assert by_check == {"as_score_vector": 3, "check_finite": 3, "check_pair": 2, "check_probabilities": 3}
