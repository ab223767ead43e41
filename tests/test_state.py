"""The streaming state: exact for any split, equal to ``summarize`` and to NumPy's arithmetic."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from camavg_core import MetricState, Result, summarize
from reference import EPS, reference_terms

probabilities = st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False)
edge_probabilities = st.sampled_from([0.0, 1.0, 1e-9, 1e-7, 0.5, 1 - 1e-7])
scores = st.one_of(probabilities, edge_probabilities)


@st.composite
def score_pairs(draw, min_size=1, max_size=40):
    n = draw(st.integers(min_size, max_size))
    y = np.array(draw(st.lists(scores, min_size=n, max_size=n)))
    o = np.array(draw(st.lists(scores, min_size=n, max_size=n)))
    tied = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    o[tied] = y[tied]
    return y, o


@st.composite
def split_points(draw, n):
    """Sorted cut positions in [0, n]; repeats make empty chunks, which must be harmless."""
    cuts = draw(st.lists(st.integers(0, n), max_size=6))
    return sorted(cuts)


def numpy_sums(y, o):
    """The state's fields, summed from the shared NumPy reference terms (float64)."""
    terms = reference_terms(y, o)
    drop, gain = terms["average_drop"], terms["average_gain"]
    return {
        "n": len(y),
        "drop_sum": drop.sum(),
        "drop_sq_sum": (drop**2).sum(),
        "gain_sum": gain.sum(),
        "gain_sq_sum": (gain**2).sum(),
        "increase_count": int(np.count_nonzero(terms["average_increase"])),
        "skipped": 0,
        "drop_cube_sum": (drop**3).sum(),
        "gain_cube_sum": (gain**3).sum(),
        "drop_nonzero": int(np.count_nonzero(drop)),
        "gain_nonzero": int(np.count_nonzero(gain)),
    }


def state_of(fields: dict) -> MetricState:
    """A state of the three averages from its fields by name."""
    template = MetricState.empty()
    return template.from_flat([fields[name] for name in template.fields()])


def assert_states_equal(actual: MetricState, expected: MetricState, rel: float = 1e-12) -> None:
    actual, expected = actual.to_numpy(), expected.to_numpy()
    # counts are exact whatever the split
    assert actual.n == expected.n
    assert actual.increase_count == expected.increase_count
    assert actual.skipped == expected.skipped
    assert (actual.drop_nonzero, actual.gain_nonzero) == (expected.drop_nonzero, expected.gain_nonzero)
    # sums only differ by the order of float64 additions
    for field in ("drop_sum", "drop_sq_sum", "drop_cube_sum", "gain_sum", "gain_sq_sum", "gain_cube_sum"):
        assert getattr(actual, field) == pytest.approx(getattr(expected, field), rel=rel, abs=1e-12)


# --------------------------------------------------------------------------- by hand
def test_state_by_hand():
    state = MetricState.empty().update(np.array([0.8, 0.5]), np.array([0.2, 0.6]))
    state = state.update(np.array([0.5]), np.array([0.5]))
    state = state.to_numpy()
    assert state.n == 3
    assert state.increase_count == 1  # only 0.5 -> 0.6 rises
    assert state.drop_sum == pytest.approx(0.6 / (0.8 + EPS), rel=1e-12)
    assert state.drop_sq_sum == pytest.approx((0.6 / (0.8 + EPS)) ** 2, rel=1e-12)
    assert state.gain_sum == pytest.approx(0.1 / (1 - 0.5 + EPS), rel=1e-12)
    assert state.drop_cube_sum == pytest.approx((0.6 / (0.8 + EPS)) ** 3, rel=1e-12)
    assert state.gain_cube_sum == pytest.approx((0.1 / (0.5 + EPS)) ** 3, rel=1e-12)
    assert (state.drop_nonzero, state.gain_nonzero) == (1, 1)
    assert state.skipped == 0
    result = MetricState.empty().update(np.array([0.8, 0.5, 0.5]), np.array([0.2, 0.6, 0.5])).result()
    assert result.average_drop == pytest.approx(100 * (0.6 / (0.8 + EPS)) / 3, rel=1e-12)
    assert result.average_increase == pytest.approx(100 / 3, rel=1e-12)
    assert result.average_gain == pytest.approx(100 * (0.1 / (0.5 + EPS)) / 3, rel=1e-12)
    assert result.n == 3
    assert result.y_c is None and result.o_c is None  # a stream keeps no vectors


def test_update_returns_a_new_state():
    empty = MetricState.empty()
    updated = empty.update(np.array([0.8]), np.array([0.2]))
    assert empty == MetricState.empty() and empty.n == 0
    assert int(updated.n) == 1


def test_result_types_are_python_numbers():
    y = np.array([0.8, 0.5], dtype=np.float32)
    o = np.array([0.2, 0.6], dtype=np.float32)
    state = MetricState.empty().update(y, o)
    result = state.result()
    assert type(result.average_drop) is float
    assert type(result.average_increase) is float
    assert type(result.average_gain) is float
    assert type(result.n) is int


def test_omit_skips_and_counts_nonfinite_pairs():
    y = np.array([0.8, np.nan, 0.5, 0.4])
    o = np.array([0.2, 0.3, np.inf, 0.4])
    state = MetricState.empty().update(y, o, nan_policy="omit").to_numpy()
    # samples 1 and 2 are skipped; of 0 and 3, only sample 0 drops: 0.6 / 0.8
    assert state.n == 2
    assert state.skipped == 2
    assert state.increase_count == 0
    assert state.drop_sum == pytest.approx(0.6 / (0.8 + EPS), rel=1e-12)
    result = MetricState.empty().update(y, o, nan_policy="omit").result()
    assert result.average_drop == pytest.approx(100 * 0.6 / (0.8 + EPS) / 2, rel=1e-12)
    assert result.skipped == 2


def test_raise_names_the_first_nonfinite_sample():
    with pytest.raises(ValueError, match=r"y_c\[1\].*nan_policy='omit'"):
        MetricState.empty().update(np.array([0.8, np.nan]), np.array([0.2, 0.3]))
    with pytest.raises(ValueError, match=r"o_c\[0\]"):
        MetricState.empty().update(np.array([0.8, 0.1]), np.array([np.inf, 0.3]))


def test_empty_state_has_no_result():
    with pytest.raises(ValueError, match="nothing to average"):
        MetricState.empty().result()
    everything_skipped = MetricState.empty().update(np.array([np.nan]), np.array([0.1]), nan_policy="omit")
    with pytest.raises(ValueError, match="skipped"):
        everything_skipped.result()


def test_update_rejects_mismatched_vectors():
    with pytest.raises(ValueError, match=r"y_c has 2 scores but o_c has 3"):
        MetricState.empty().update(np.array([0.1, 0.2]), np.array([0.1, 0.2, 0.3]))


def test_update_rejects_bad_nan_policy():
    with pytest.raises(ValueError, match="nan_policy.*'skip'"):
        MetricState.empty().update(np.array([0.1]), np.array([0.1]), nan_policy="skip")


def test_update_rejects_logits():
    with pytest.raises(ValueError, match="logits.*activation='softmax'"):
        MetricState.empty().update(np.array([-1.5, 0.2]), np.array([0.1, 0.2]))


# --------------------------------------------------------------------------- properties
@given(score_pairs(), st.data())
def test_split_anywhere_and_merged_equals_the_whole(pair, data):
    y, o = pair
    cuts = data.draw(split_points(len(y)))
    bounds = [0, *cuts, len(y)]
    chunks = [(y[a:b], o[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    whole = MetricState.empty().update(y, o)
    merged = functools.reduce(
        MetricState.merge, (MetricState.empty().update(cy, co) for cy, co in chunks), MetricState.empty()
    )
    assert_states_equal(merged, whole)
    # streaming the chunks one update after another is the same reduction
    streamed = functools.reduce(lambda state, chunk: state.update(*chunk), chunks, MetricState.empty())
    assert_states_equal(streamed, whole)


@given(score_pairs(), st.data())
def test_merge_is_commutative_and_associative(pair, data):
    y, o = pair
    a, b = sorted(data.draw(st.lists(st.integers(0, len(y)), min_size=2, max_size=2)))
    first = MetricState.empty().update(y[:a], o[:a])
    second = MetricState.empty().update(y[a:b], o[a:b])
    third = MetricState.empty().update(y[b:], o[b:])
    assert_states_equal(first.merge(second), second.merge(first))
    assert_states_equal(first.merge(second).merge(third), first.merge(second.merge(third)))


@given(score_pairs())
def test_state_fields_match_numpy(pair):
    y, o = pair
    expected = state_of(numpy_sums(y, o))
    assert_states_equal(MetricState.empty().update(y, o), expected)


@given(score_pairs())
def test_summarize_equals_state_result_and_numpy(pair):
    y, o = pair
    summary = summarize(y, o)
    streamed = MetricState.empty().update(y[: len(y) // 2], o[: len(y) // 2]).update(
        y[len(y) // 2 :], o[len(y) // 2 :]
    ).result()
    sums = numpy_sums(y, o)
    for name, numpy_value in (
        ("average_drop", 100 * sums["drop_sum"] / len(y)),
        ("average_increase", 100 * sums["increase_count"] / len(y)),
        ("average_gain", 100 * sums["gain_sum"] / len(y)),
    ):
        assert getattr(summary, name) == pytest.approx(getattr(streamed, name), rel=1e-12, abs=1e-12)
        assert getattr(summary, name) == pytest.approx(numpy_value, rel=1e-12, abs=1e-12)
    assert summary.n == streamed.n == len(y)
    assert summary.skipped == 0
    # the same default interval and calibration notes in memory and streamed
    for name in summary.ci:
        assert summary.ci[name] == pytest.approx(streamed.ci[name], abs=1e-9)
    assert summary.ci_method == streamed.ci_method and summary.notes == streamed.notes
    np.testing.assert_array_equal(summary.y_c, y)
    np.testing.assert_array_equal(summary.o_c, o)


@given(score_pairs(), st.data())
def test_omitted_samples_are_counted_not_averaged(pair, data):
    y, o = pair
    y, o = y.copy(), o.copy()
    broken = np.array(data.draw(st.lists(st.booleans(), min_size=len(y), max_size=len(y))), dtype=bool)
    y[broken] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    state = MetricState.empty().update(y, o, nan_policy="omit")
    kept = ~broken
    expected = numpy_sums(y[kept], o[kept])
    expected["skipped"] = int(broken.sum())
    assert_states_equal(state, state_of(expected))
    summary = summarize(y, o, nan_policy="omit") if kept.any() else None
    if summary is not None:
        assert summary.skipped == broken.sum()
        assert summary.n == kept.sum()
        expected_drop = 100 * expected["drop_sum"] / kept.sum()
        assert summary.average_drop == pytest.approx(expected_drop, rel=1e-12, abs=1e-12)


def test_result_is_a_result():
    assert isinstance(MetricState.empty().update(np.array([0.5]), np.array([0.5])).result(), Result)


def test_fields_are_named_per_metric_and_all_summed():
    fields = MetricState.empty().fields()
    assert fields == [
        "n", "skipped", "drop_sum", "drop_sq_sum", "drop_cube_sum", "drop_nonzero", "increase_count",
        "gain_sum", "gain_sq_sum", "gain_cube_sum", "gain_nonzero",
    ]
    a = state_of({name: i for i, name in enumerate(fields, 1)})
    b = state_of({name: 10 * i for i, name in enumerate(fields, 1)})
    assert a.merge(b).flat() == [11 * i for i in range(1, len(fields) + 1)]
    assert [getattr(a, name) for name in fields] == list(range(1, len(fields) + 1))


def test_terms_whose_spread_cubed_underflows_get_an_interval():
    # terms near 1e-117: their spread cubed is below the smallest double (Hypothesis found it)
    summary = summarize(np.array([0.0, 0.0]), np.array([0.0, 1.2059512e-117]))
    assert summary.n == 2 and summary.average_increase == 50.0  # o > y in one sample of two
    assert all(np.isfinite(bound) for bounds in summary.ci.values() for bound in bounds)
