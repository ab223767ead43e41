"""The equations on hand-worked examples, and their properties under Hypothesis.

Every hand-worked number is written out as arithmetic from the README's definitions, with eps = 1e-7
(the property tests compare with the shared NumPy reference in reference.py instead):

    drop_i = max(0, Y_i - O_i) / (Y_i + eps)
    increase_i = [Y_i < O_i]
    gain_i = max(0, O_i - Y_i) / (1 - Y_i + eps)
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from camavg_core import (
    EPSILON,
    avg_drop,
    avg_gain,
    avg_increase,
    drop_terms,
    gain_terms,
    increase_terms,
)
from reference import EPS, reference_metrics


def test_epsilon_is_keras_epsilon():
    assert EPSILON == 1e-7


# --------------------------------------------------------------------------- hand-worked
def test_drop_of_one_sample():
    # Y = 0.8, O = 0.2: the score lost 0.6 of its 0.8
    assert avg_drop([0.8], [0.2]) == pytest.approx(100 * max(0, 0.8 - 0.2) / (0.8 + EPS), rel=1e-12)


def test_drop_averages_over_samples():
    y = [0.8, 0.5, 0.4]
    o = [0.2, 0.6, 0.1]
    # sample 0: 0.6 / 0.8; sample 1: O > Y, so 0; sample 2: 0.3 / 0.4
    expected = 100 * ((0.8 - 0.2) / (0.8 + EPS) + 0.0 + (0.4 - 0.1) / (0.4 + EPS)) / 3
    assert avg_drop(y, o) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(
        drop_terms(np.array(y), np.array(o)),
        [(0.8 - 0.2) / (0.8 + EPS), 0.0, (0.4 - 0.1) / (0.4 + EPS)],
        rtol=1e-12,
    )


def test_increase_counts_strict_rises():
    y = [0.8, 0.5, 0.5, 0.1]
    o = [0.2, 0.6, 0.5, 0.3]
    # rises at samples 1 and 3; sample 2 is a tie, which is not an increase
    assert avg_increase(y, o) == 100 * 2 / 4
    np.testing.assert_array_equal(increase_terms(np.array(y), np.array(o)), [0.0, 1.0, 0.0, 1.0])


def test_gain_of_one_sample():
    # Y = 0.8, O = 0.9: it gained 0.1 of the 0.2 it could gain
    assert avg_gain([0.8], [0.9]) == pytest.approx(100 * (0.9 - 0.8) / (1 - 0.8 + EPS), rel=1e-9)


def test_gain_averages_over_samples():
    y = [0.8, 0.5, 0.2]
    o = [0.9, 0.4, 0.6]
    expected = 100 * ((0.9 - 0.8) / (1 - 0.8 + EPS) + 0.0 + (0.6 - 0.2) / (1 - 0.2 + EPS)) / 3
    assert avg_gain(y, o) == pytest.approx(expected, rel=1e-9)


def test_ties_give_no_drop_no_increase_no_gain():
    y = np.array([0.0, 0.3, 0.5, 1.0])
    o = y.copy()
    np.testing.assert_array_equal(drop_terms(y, o), 0.0)
    np.testing.assert_array_equal(increase_terms(y, o), 0.0)
    np.testing.assert_array_equal(gain_terms(y, o), 0.0)
    assert avg_drop(y, o) == 0.0
    assert avg_increase(y, o) == 0.0
    assert avg_gain(y, o) == 0.0


def test_zero_score_is_valid_and_eps_keeps_drop_finite():
    # Y = 0 and O = 0 (a saturated softmax): drop is 0 / (0 + 1e-7) = 0, not 0/0
    assert drop_terms(np.array([0.0]), np.array([0.0]))[0] == 0.0
    assert avg_drop([0.0], [0.0]) == 0.0
    # Y = 0, O = 0.5: no drop, an increase, and a gain of 0.5 / (1 - 0 + 1e-7)
    assert avg_drop([0.0], [0.5]) == 0.0
    assert avg_increase([0.0], [0.5]) == 100.0
    assert avg_gain([0.0], [0.5]) == pytest.approx(100 * 0.5 / (1 + EPS), rel=1e-12)


def test_tiny_score_drop_is_damped_by_eps():
    # Y = 1e-9, O = 0: drop is 1e-9 / (1e-9 + 1e-7) = 1 / 101, not 1
    assert drop_terms(np.array([1e-9]), np.array([0.0]))[0] == pytest.approx(1 / 101, rel=1e-12)
    assert avg_drop([1e-9], [0.0]) == pytest.approx(100 / 101, rel=1e-12)


def test_score_of_one_for_gain():
    # Y = 1: the denominator is eps alone, and (O - 1)^+ = 0 for every O <= 1
    y = np.array([1.0, 1.0, 1.0])
    o = np.array([1.0, 0.5, 0.0])
    np.testing.assert_array_equal(gain_terms(y, o), 0.0)
    assert avg_gain(y, o) == 0.0
    # the drop from Y = 1 is ordinary: (1 - 0.5) / (1 + 1e-7) and (1 - 0) / (1 + 1e-7)
    assert avg_drop(y, o) == pytest.approx(100 * (0 + 0.5 / (1 + EPS) + 1 / (1 + EPS)) / 3, rel=1e-12)


def test_gain_near_one_is_finite():
    # Y = 1 - 1e-7: the remaining room is 1e-7, so O = 1 gains (1e-7) / (1e-7 + 1e-7) = 1/2
    y = 1 - 1e-7
    assert gain_terms(np.array([y]), np.array([1.0]))[0] == pytest.approx((1 - y) / (1 - y + EPS), rel=1e-6)


@pytest.mark.parametrize("average", [avg_drop, avg_increase, avg_gain])
def test_averages_return_python_float(average):
    value = average(np.array([0.8, 0.5], dtype=np.float32), np.array([0.2, 0.6], dtype=np.float32))
    assert type(value) is float


@pytest.mark.parametrize(
    "y, o",
    [
        ([0.8, 0.5], [0.2, 0.6]),
        ((0.8, 0.5), (0.2, 0.6)),
        (np.array([0.8, 0.5]), np.array([0.2, 0.6])),
        (np.array([[0.8], [0.5]]), np.array([[0.2], [0.6]])),  # (N, 1) columns, as Keras gives
    ],
)
def test_averages_accept_lists_tuples_arrays_and_columns(y, o):
    assert avg_drop(y, o) == pytest.approx(100 * ((0.8 - 0.2) / (0.8 + EPS) + 0) / 2, rel=1e-12)
    assert avg_increase(y, o) == 100 * 1 / 2


def test_increase_accepts_logits():
    # increase is defined for any score: -3 < -1 rises, 2 > 1 does not
    assert avg_increase([-3.0, 2.0], [-1.0, 1.0]) == 50.0


def test_float32_scores_are_averaged_in_float64():
    # 0.1 is not exact in float32; the drop uses the float32 value promoted to float64
    y = np.array([0.7], dtype=np.float32)
    o = np.array([0.1], dtype=np.float32)
    y64, o64 = float(y[0]), float(o[0])
    assert avg_drop(y, o) == pytest.approx(100 * (y64 - o64) / (y64 + EPS), rel=1e-12)


def test_averages_do_not_modify_their_arguments():
    y = np.array([0.8, 0.5, np.nan])
    o = np.array([0.2, 0.6, 0.1])
    y_before, o_before = y.copy(), o.copy()
    avg_drop(y, o, nan_policy="omit")
    avg_gain(y, o, nan_policy="omit")
    avg_increase(y, o, nan_policy="omit")
    np.testing.assert_array_equal(y, y_before)
    np.testing.assert_array_equal(o, o_before)


# --------------------------------------------------------------------------- properties
probabilities = st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False)
# exact ties, zeros, ones and near-zero / near-one values are where eps and the max matter
edge_probabilities = st.sampled_from([0.0, 1.0, 1e-9, 1e-7, 0.5, 1 - 1e-7, 1 - 1e-12])
scores = st.one_of(probabilities, edge_probabilities)


@st.composite
def score_pairs(draw, min_size=1, max_size=40, ties=True):
    """(Y, O) float64 vectors of probabilities, with some samples tied on purpose."""
    n = draw(st.integers(min_size, max_size))
    y = np.array(draw(st.lists(scores, min_size=n, max_size=n)))
    o = np.array(draw(st.lists(scores, min_size=n, max_size=n)))
    if ties:
        tied = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
        o[tied] = y[tied]
    return y, o


@given(score_pairs(), st.floats(1.0, 10.0))
def test_drop_is_a_percentage_when_masked_scores_are_nonnegative(pair, y_scale):
    y, o = pair
    # drop only needs Y >= 0; scale Y past 1 too, drop_i <= Y / (Y + eps) < 1 still holds
    y = y * y_scale
    value = avg_drop(y, o)
    assert 0.0 <= value <= 100.0


@given(score_pairs())
def test_increase_is_the_share_of_samples_that_rise(pair):
    y, o = pair
    expected = 100.0 * np.count_nonzero(y < o) / len(y)
    assert avg_increase(y, o) == pytest.approx(expected, rel=1e-12, abs=0)


@given(score_pairs())
def test_no_drop_when_masked_scores_never_fall(pair):
    y, o = pair
    o = np.maximum(o, y)
    assert avg_drop(y, o) == 0.0
    np.testing.assert_array_equal(drop_terms(y, o), 0.0)


@given(score_pairs())
def test_no_gain_when_masked_scores_never_rise(pair):
    y, o = pair
    o = np.minimum(o, y)
    assert avg_gain(y, o) == 0.0
    assert avg_increase(y, o) == 0.0


@given(score_pairs())
def test_gain_is_a_percentage_for_probabilities(pair):
    y, o = pair
    assert 0.0 <= avg_gain(y, o) <= 100.0


@given(score_pairs(), st.data())
def test_averages_do_not_depend_on_sample_order(pair, data):
    y, o = pair
    order = np.array(data.draw(st.permutations(range(len(y)))))
    for average in (avg_drop, avg_gain):
        assert average(y[order], o[order]) == pytest.approx(average(y, o), rel=1e-12, abs=1e-12)
    assert avg_increase(y[order], o[order]) == avg_increase(y, o)


@given(score_pairs())
def test_averages_are_means_of_terms_written_in_numpy(pair):
    y, o = pair
    expected = reference_metrics(y, o)
    assert avg_drop(y, o) == pytest.approx(expected["average_drop"], rel=1e-12, abs=1e-12)
    assert avg_gain(y, o) == pytest.approx(expected["average_gain"], rel=1e-12, abs=1e-12)
