"""Paired comparison of two CAM methods (camavg_core.compare, camavg_core.pair_state).

Oracles: the differences of the tests' shared NumPy reference terms (reference.py), the
results' own averages (the difference is result a minus result b), a brute-force sign-flip test
written here from ``scipy.stats.skew`` (every sign pattern, or many more random ones than the
code draws), the skewness-corrected interval and test from sums (checked against an independent
computation in test_stats.py) for ``test="t"`` and merged states, ``scipy.stats.wilcoxon`` and
``binomtest`` for the named tests, and the duality of test and interval on drawn data.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import camavg_core
import itertools

from camavg_core import PairState, avg_drop, avg_gain, avg_increase, compare, stats
from camavg_core.compare import Comparison, mcnemar_p_value, wilcoxon_p_value
from camavg_core.stats import sign_flip_test
from reference import reference_terms

scipy_stats = pytest.importorskip("scipy.stats")

METRICS = ("average_drop", "average_increase", "average_gain")


def differences_by_hand(y, o_a, o_b):
    a, b = reference_terms(y, o_a), reference_terms(y, o_b)
    return {name: a[name] - b[name] for name in METRICS}


def two_methods(n, seed):
    """Method a masks away more of the evidence than method b, on the same samples."""
    rng = np.random.default_rng(seed)
    y = rng.beta(5.0, 2.0, size=n)
    o_a = np.clip(y + rng.normal(-0.10, 0.2, size=n), 0.0, 1.0)
    o_b = np.clip(y + rng.normal(-0.05, 0.2, size=n), 0.0, 1.0)
    return y, o_a, o_b


def hall_g(x):
    """Hall's g(T) of mean 0, written from scipy's skewness (ddof 0) and the ddof-1 standard error."""
    n = x.size
    t = np.sqrt(n) * x.mean() / x.std(ddof=1)
    a = scipy_stats.skew(x) / (3 * np.sqrt(n))
    return t + a * t**2 + a * a * t**3 / 3 + a / 2


def brute_force_p(d, patterns=None, seed=123):
    """Share of sign patterns with |g| >= the observed |g|: all 2**n patterns, or ``patterns``
    random ones (plus the observed one)."""
    observed = abs(hall_g(d))
    if patterns is None:
        signs = np.array(list(itertools.product((-1.0, 1.0), repeat=d.size)))
        return np.mean([abs(hall_g(e * d)) >= observed - 1e-9 for e in signs])
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(patterns, d.size))
    return (1 + sum(abs(hall_g(e * d)) >= observed - 1e-9 for e in signs)) / (patterns + 1)


@pytest.mark.slow
def test_difference_is_result_a_minus_result_b_and_p_is_the_sign_flip_test():
    y, o_a, o_b = two_methods(300, 1)
    result = compare(y, o_a, o_b, level=0.9)
    for name, average in (("average_drop", avg_drop), ("average_increase", avg_increase), ("average_gain", avg_gain)):
        assert result.difference[name] == pytest.approx(average(y, o_a) - average(y, o_b), abs=1e-9)
    for name, d in differences_by_hand(y, o_a, o_b).items():
        # 4,000 seeded patterns in the code, 20,000 others here: within 4 standard errors
        expected = brute_force_p(d, patterns=20_000) if name != "average_increase" else None
        if expected is not None:
            assert abs(result.p_value[name] - expected) < 4 * np.sqrt(expected * (1 - expected) / 4000) + 1e-3
        low, high = result.ci[name]
        assert low <= result.difference[name] <= high
        assert result.test[name] == "sign_flip" and result.dual[name]
    assert result.n == 300 and result.skipped == 0 and result.ci_method == "sign_flip"


def test_sign_flip_with_few_samples_is_exact_over_every_pattern():
    rng = np.random.default_rng(5)
    y = rng.uniform(0.3, 0.9, 10)
    o_a, o_b = y * rng.uniform(0.2, 1.0, 10), y * rng.uniform(0.4, 1.0, 10)
    result = compare(y, o_a, o_b)
    d = differences_by_hand(y, o_a, o_b)["average_drop"]
    assert result.p_value["average_drop"] == pytest.approx(brute_force_p(d), abs=1e-12)


def test_the_interval_is_the_set_of_means_the_test_keeps():
    y, o_a, o_b = two_methods(120, 4)
    result = compare(y, o_a, o_b)
    d = differences_by_hand(y, o_a, o_b)["average_drop"]
    low, high = (bound / 100 for bound in result.ci["average_drop"])
    # the ends are found to 1e-6: just inside is kept, 2e-6 outside is rejected
    assert sign_flip_test(d, null=low + 1e-6) >= 0.05 and sign_flip_test(d, null=high - 1e-6) >= 0.05
    assert sign_flip_test(d, null=low - 2e-6) < 0.05 and sign_flip_test(d, null=high + 2e-6) < 0.05


def test_t_by_name_is_hall_from_sums_dual_to_its_interval():
    y, o_a, o_b = two_methods(300, 1)
    result = compare(y, o_a, o_b, level=0.9, test="t")
    for name, d in differences_by_hand(y, o_a, o_b).items():
        sums = (d.size, d.sum(), (d * d).sum(), (d**3).sum())
        low, high = stats.hall_t_interval(*sums, level=0.9)
        assert result.ci[name] == pytest.approx((100 * low, 100 * high), abs=1e-9)
        assert result.p_value[name] == pytest.approx(stats.hall_t_test(*sums), rel=1e-9, abs=1e-300)
        assert result.test[name] == "t" and result.dual[name]
    assert result.ci_method == "hall_t"


@st.composite
def paired_scores(draw):
    n = draw(st.integers(2, 40))
    # few distinct values, so exact ties and equal terms are common
    grid = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5 + 3e-7, 0.75, 0.9, 1.0])
    scores = st.lists(grid, min_size=n, max_size=n).map(np.array)
    return draw(scores), draw(scores), draw(scores), draw(st.sampled_from([0.8, 0.9, 0.95, 0.99]))


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(paired_scores())
def test_p_below_one_minus_level_exactly_when_the_interval_excludes_zero(data):
    y, o_a, o_b, level = data
    result = compare(y, o_a, o_b, level=level)
    for name in METRICS:
        p, (low, high) = result.p_value[name], result.ci[name]
        # at the boundary itself float rounding may fall either way; nothing to decide there
        assume(abs(p - (1 - level)) > 1e-9)
        assert (p < 1 - level) == (not low <= 0.0 <= high), (name, p, low, high)


def test_float_noise_is_no_difference():
    y, o_a, _ = two_methods(200, 2)
    o_a = np.clip(o_a, 0.01, 0.99)
    # one or two float32 ulps apart: the same maps through another route
    o_b = o_a * (1 + np.where(np.arange(200) % 2, 1.5e-7, -1.5e-7))
    result = compare(y, o_a, o_b, names=("gradcam++", "layercam"))
    for name in METRICS:
        assert abs(result.difference[name]) < 1e-4
    assert result.ci == dict.fromkeys(METRICS, (0.0, 0.0))
    assert result.p_value == dict.fromkeys(METRICS, 1.0)
    assert all(result.no_difference.values()) and result.better == dict.fromkeys(METRICS)
    assert str(result).count("no difference") == 3
    for test in ("wilcoxon", "mcnemar", "t"):
        assert compare(y, o_a, o_b, test=test).p_value == dict.fromkeys(METRICS, 1.0)


def test_a_difference_beyond_the_tie_rule_is_kept():
    y = np.full(40, 0.5)
    o_a, o_b = np.full(40, 0.3), np.full(40, 0.3 - 5e-5)  # 5e-5 is 1,400 float32 ulps of 0.3
    result = compare(y, o_a, o_b)
    # drop a - b = -5e-5 / 0.5 on every sample: zero spread, the mean is the difference
    assert result.difference["average_drop"] == pytest.approx(-100 * 1e-4, rel=1e-6)
    # 40 non-zero differences of one sign: of the 2^40 sign patterns only the observed one and
    # its mirror image reach the statistic, so the exact test's p-value is 2 / 2^40, and the
    # tail read beyond the random patterns stops there
    assert result.p_value["average_drop"] == 2.0 / 2.0**40 and not result.no_difference["average_drop"]
    # beyond 1,075 such differences 2 / 2^k underflows: printed as below 1e-300, never as 0
    n = 1100
    underflowed = compare(np.full(n, 0.5), np.full(n, 0.3), np.full(n, 0.3 - 5e-5))
    assert underflowed.p_value["average_drop"] == 0.0 and "p< 1e-300" in str(underflowed)
    # significant, but 0.01 points: no method is better at the default margin of 0.5 points
    assert result.better["average_drop"] is None
    assert compare(y, o_a, o_b, margin=0.001).better["average_drop"] == "a"


def test_the_tie_rule_in_ulps_is_importable_where_documented():
    import camavg_core.compare as module
    from camavg_core.compare import TIE_ULPS

    assert camavg_core.TIE_ULPS == TIE_ULPS == module.TIE_ULPS == 32
    ulp = 2.0**-23  # float32's epsilon: one ulp of a value in [1, 2)
    for value in (0.3, 0.99999, 1e-5):
        gap = 31 * ulp * value
        assert camavg_core.ties([value], [value + gap]).tolist() == [True]
        assert camavg_core.ties([value], [value + 2 * gap]).tolist() == [False]


# --------------------------------------------------------------------------- issue 20, section 1
def test_issue_20_confident_model_near_one_gain_and_increase_differ():
    y = np.full(100, 0.99999)
    o_a, o_b = np.full(100, 0.999995), y.copy()
    result = compare(y, o_a, o_b)
    for name, average in (("average_gain", avg_gain), ("average_increase", avg_increase)):
        assert result.difference[name] == pytest.approx(average(y, o_a) - average(y, o_b), abs=1e-4)
        assert result.p_value[name] < 1e-6 and not result.no_difference[name]
        assert result.better[name] == "a"
    assert result.difference["average_increase"] == pytest.approx(100.0)
    assert result.difference["average_gain"] == pytest.approx(100 * 5e-6 / (1e-5 + 1e-7), rel=1e-6)  # 49.5


def test_issue_20_low_target_drop_differs():
    y = np.full(100, 1e-5)
    o_a, o_b = 0 * y, y
    result = compare(y, o_a, o_b)
    assert result.difference["average_drop"] == pytest.approx(100 * 1e-5 / (1e-5 + 1e-7), rel=1e-9)  # 99.0
    assert result.p_value["average_drop"] < 1e-6 and result.better["average_drop"] == "b"


def test_issue_20_thousand_classes_and_confident_model_intervals_hold_the_true_difference():
    rng = np.random.default_rng(0)
    n = 200
    y = rng.uniform(5e-6, 2e-5, n)
    o_a, o_b = y * rng.uniform(0.1, 0.3, n), y * rng.uniform(0.9, 1.0, n)
    result = compare(y, o_a, o_b)
    truth = avg_drop(y, o_a) - avg_drop(y, o_b)  # 78.86 - 4.81 (the issue rounds b to 5.0)
    assert truth == pytest.approx(74.05, abs=0.01)
    assert result.difference["average_drop"] == pytest.approx(truth, abs=1e-4)
    low, high = result.ci["average_drop"]
    assert low <= truth <= high and result.p_value["average_drop"] < 1e-6
    # confident model: a closes 30-90% of the gap to 1, b almost nothing
    y = 1 - rng.uniform(1e-5, 1e-4, n)
    o_a = y + (1 - y) * rng.uniform(0.3, 0.9, n)
    o_b = y + (1 - y) * rng.uniform(0.0, 0.1, n)
    result = compare(y, o_a, o_b)
    truth = avg_gain(y, o_a) - avg_gain(y, o_b)
    assert result.difference["average_gain"] == pytest.approx(truth, abs=1e-4)
    low, high = result.ci["average_gain"]
    assert low <= truth <= high and result.p_value["average_gain"] < 1e-6 and truth > 50


def test_better_needs_significance_and_the_whole_interval_beyond_the_margin():
    y, o_a, o_b = two_methods(2_000, 9)  # a drops more: b is better on drop
    result = compare(y, o_a, o_b)
    low, high = result.ci["average_drop"]
    assert 0.5 < low and result.better["average_drop"] == "b"
    assert compare(y, o_a, o_b, margin=low + 0.01).better["average_drop"] is None
    assert compare(y, o_b, o_a, names=("B", "A")).better["average_drop"] == "B"
    # gain: higher is better
    y = np.full(50, 0.5)
    o_a = 0.5 + np.linspace(0.05, 0.15, 50)  # a gains 10-30%
    result = compare(y, o_a, np.full(50, 0.5))
    assert result.better["average_gain"] == "a" and result.better["average_increase"] == "a"
    with pytest.raises(ValueError, match="margin"):
        compare(y, o_a, y, margin=-1)


def test_wilcoxon_by_name_is_scipy_with_zeros_kept_and_says_it_is_not_dual():
    y, o_a, o_b = two_methods(150, 3)
    result = compare(y, o_a, o_b, test="wilcoxon")
    d = differences_by_hand(y, o_a, o_b)
    for name in ("average_drop", "average_gain"):
        expected = scipy_stats.wilcoxon(d[name], zero_method="pratt").pvalue
        assert result.p_value[name] == pytest.approx(expected, rel=1e-9)
        assert result.test[name] == "wilcoxon" and not result.dual[name]
    assert result.test["average_increase"] == "mcnemar"
    assert "not dual" in result.to_dict()["test"]["average_drop"]
    assert "(wilcoxon)" in str(result)
    # the interval stays the default one
    assert result.ci == compare(y, o_a, o_b).ci


def test_mcnemar_by_name_is_binomtest_on_the_discordant_pairs():
    y, o_a, o_b = two_methods(500, 6)
    increase_a, increase_b = y < o_a, y < o_b
    only_a = int(np.sum(increase_a & ~increase_b))
    only_b = int(np.sum(~increase_a & increase_b))
    expected = scipy_stats.binomtest(only_a, only_a + only_b).pvalue
    result = compare(y, o_a, o_b, test="mcnemar")
    assert result.p_value["average_increase"] == pytest.approx(expected, rel=1e-9)
    assert result.test == {"average_drop": "sign_flip", "average_increase": "mcnemar", "average_gain": "sign_flip"}
    assert mcnemar_p_value([1, 1, 1, 1, 0], [0, 0, 0, 0, 0]) == pytest.approx(2 / 2**4)


def test_tests_are_checked():
    with pytest.raises(ValueError, match="test"):
        compare([0.5], [0.2], [0.3], test="anova")
    with pytest.raises(ValueError, match="does not apply"):
        compare([0.5], [0.2], [0.3], test={"average_drop": "mcnemar"})


def test_wilcoxon_worked_by_hand():
    assert wilcoxon_p_value([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(2 / 2**5)
    assert wilcoxon_p_value(np.zeros(30)) == 1.0


def test_swapping_the_methods_negates_the_difference_and_interval():
    y, o_a, o_b = two_methods(80, 8)
    forward, backward = compare(y, o_a, o_b), compare(y, o_b, o_a)
    for name in METRICS:
        assert forward.difference[name] == pytest.approx(-backward.difference[name], abs=1e-9)
        low, high = backward.ci[name]
        assert forward.ci[name] == pytest.approx((-high, -low), abs=1e-9)
        assert forward.p_value[name] == pytest.approx(backward.p_value[name], rel=1e-9)


def test_a_clear_difference_is_significant_and_its_interval_excludes_zero():
    y, o_a, o_b = two_methods(2_000, 9)
    result = compare(y, o_a, o_b)
    low, high = result.ci["average_drop"]
    assert 0 < low < result.difference["average_drop"] < high
    assert result.p_value["average_drop"] < 1e-6


def test_the_p_value_does_not_depend_on_the_order_of_the_samples():
    y, o_a, o_b = two_methods(150, 13)
    order = np.random.default_rng(0).permutation(150)
    shuffled, plain = compare(y[order], o_a[order], o_b[order]), compare(y, o_a, o_b)
    for name in METRICS:
        assert shuffled.p_value[name] == pytest.approx(plain.p_value[name], rel=1e-12)
        assert shuffled.ci[name] == pytest.approx(plain.ci[name], abs=1e-9)


def test_one_sample_is_not_nan():
    result = compare([0.8], [0.2], [0.6])
    assert result.ci["average_drop"] == (-100.0, 100.0)
    assert result.p_value == {name: 1.0 for name in METRICS}
    assert result.notes and "approximate" in str(result)
    json.dumps(result.to_dict(), allow_nan=False)


def test_result_is_frozen_summarised_in_one_line_and_json_ready():
    y, o_a, o_b = two_methods(100, 10)
    result = compare(y, o_a, o_b, names=("Grad-CAM++", "Grad-CAM"), level=0.9)
    assert isinstance(result, Comparison)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.n = 3
    line = str(result)
    assert line == result.summary() and "\n" not in line
    assert line.startswith("Grad-CAM++ - Grad-CAM (n=100, 90% CI)")
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["names"] == ["Grad-CAM++", "Grad-CAM"]
    assert data["test"]["average_drop"].startswith("sign_flip: ") and data["dual"]["average_drop"] is True


def test_nan_policy_omit_skips_a_sample_non_finite_in_any_vector():
    y, o_a, o_b = two_methods(60, 11)
    o_b[4] = np.nan
    y[9] = np.inf
    result = compare(y, o_a, o_b, nan_policy="omit")
    keep = np.ones(60, dtype=bool)
    keep[[4, 9]] = False
    assert result.n == 58 and result.skipped == 2
    clean = compare(y[keep], o_a[keep], o_b[keep])
    for name in METRICS:
        assert result.difference[name] == pytest.approx(clean.difference[name], abs=1e-12)
        assert result.p_value[name] == pytest.approx(clean.p_value[name], rel=1e-9)


@pytest.mark.parametrize(
    "arguments, error, words",
    [
        (([0.5, 0.5], [0.1, 0.2], [0.1]), ValueError, "o_c_b"),
        (([0.5, 0.5], [0.1], [0.1, 0.2]), ValueError, "o_c_a"),
        (([0.5, 0.5], [0.1, 0.2], [0.1, np.nan]), ValueError, "o_c_b"),
        (([2.0, 0.5], [0.1, 0.2], [0.1, 0.2]), ValueError, "logits"),
        (([0.5, 0.5], [0.1, 0.2], [-0.1, 0.2]), ValueError, "o_c_b holds -0.1"),
        (([0.5, 0.5], [0.1, 0.2], "scores"), TypeError, "o_c_b"),
    ],
)
def test_bad_input_is_named(arguments, error, words):
    with pytest.raises(error, match=words):
        compare(*arguments)


def test_missing_scipy_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # makes `import scipy.stats` fail
    with pytest.raises(ImportError, match=r"pip install scipy"):
        compare([0.5, 0.6], [0.2, 0.3], [0.3, 0.1])


def test_exported_from_the_package():
    assert camavg_core.compare is compare and camavg_core.Comparison is Comparison


# --------------------------------------------------------------------------- PairState
@settings(max_examples=40, deadline=None)
@given(st.integers(2, 60), st.integers(0, 10_000), st.data())
def test_pair_state_split_anywhere_merges_to_the_in_memory_comparison(n, seed, data):
    y, o_a, o_b = two_methods(n, seed)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=4)))
    state = PairState.empty()
    for part in zip(*(np.split(v, cuts) for v in (y, o_a, o_b))):
        state = state.merge(PairState.empty().update(*part))
    # from sums: Hall's t, what compare gives with test="t"; flagged in notes
    streamed, in_memory = state.result(level=0.9), compare(y, o_a, o_b, level=0.9, test="t")
    assert streamed.n == in_memory.n == n and streamed.notes[0].startswith("sums only")
    for name in METRICS:
        assert streamed.difference[name] == pytest.approx(in_memory.difference[name], abs=1e-9)
        assert streamed.ci[name] == pytest.approx(in_memory.ci[name], abs=1e-9)
        assert streamed.p_value[name] == pytest.approx(in_memory.p_value[name], abs=1e-9)


def test_pair_state_sums_by_hand_and_omit():
    y, o_a, o_b = np.array([0.8, 0.6, np.nan]), np.array([0.2, 0.6, 0.1]), np.array([0.4, 0.3, 0.1])
    state = PairState.empty().update(y, o_a, o_b, nan_policy="omit").to_numpy()
    d = differences_by_hand(y[:2], o_a[:2], o_b[:2])["average_drop"]  # 0.25, -0.5
    assert (state.n, state.skipped, state.drop_nonzero) == (2, 1, 2)
    assert state.drop_estimate_sum == pytest.approx(d.sum())
    assert state.drop_sum == pytest.approx(d.sum()) and state.drop_cube_sum == pytest.approx((d**3).sum())
    with pytest.raises(ValueError, match="y_c"):
        PairState.empty().update(y, o_a, o_b)
    with pytest.raises(TypeError, match="PairState"):
        state.merge((0,) * 17)


def test_a_paired_bootstrap_only_when_asked_scipy_bca_seeded():
    y, o_a, o_b = two_methods(120, 12)
    result = compare(y, o_a, o_b, ci_method="bootstrap", level=0.9)
    d = differences_by_hand(y, o_a, o_b)
    for name in METRICS:
        expected = scipy_stats.bootstrap(
            (d[name],), np.mean, confidence_level=0.9, n_resamples=2000, rng=np.random.default_rng(0)
        ).confidence_interval
        assert result.ci[name] == pytest.approx((100 * expected.low, 100 * expected.high), rel=1e-6)
    assert result.ci_method == "bootstrap_bca" and not any(result.dual.values())
    assert result.p_value == compare(y, o_a, o_b, level=0.9).p_value
    with pytest.raises(ValueError, match="ci_method"):
        compare(y, o_a, o_b, ci_method="jackknife")


def test_a_tie_never_hides_a_difference_the_estimate_keeps():
    """Near Y = 1 gain divides by 1 - Y: scores 17 float32 ulps apart (1.0 against 0.999999,
    within the ulps rule) are gain terms 91 points apart. The tie rule once zeroed them for the
    test and the interval only: a difference of +40.5 points beside an interval of [-6.3, -3.7]
    naming b. Now the test sees the differences the estimate is made of: scipy's t interval of
    the same per-sample differences (terms by the DESIGN equations, in NumPy) is the oracle."""
    from scipy import stats

    f32 = lambda v: np.asarray(v, np.float32).astype(np.float64)  # noqa: E731
    rng = np.random.default_rng(3)
    y, o_a, o_b = np.empty(60), np.empty(60), np.empty(60)
    y[:30], o_a[:30] = f32(0.999999), 1.0  # a raises a confident score to 1.0
    o_b[:30] = y[:30]
    y[30:] = f32(rng.uniform(0.3, 0.7, 30))  # b gains 10% of the headroom where a keeps the score
    o_a[30:], o_b[30:] = y[30:], f32(y[30:] + 0.1 * (1 - y[30:]))
    assert camavg_core.ties(o_a[:30], o_b[:30]).all()
    gain = lambda o: np.maximum(0.0, o - y) / (1.0 - y + 1e-7)  # noqa: E731
    d = gain(o_a) - gain(o_b)
    result = compare(y, o_a, o_b)
    assert result.difference["average_gain"] == pytest.approx(100 * d.mean(), rel=1e-9)
    low, high = result.ci["average_gain"]
    assert low <= result.difference["average_gain"] <= high
    t_low, t_high = 100 * np.array(stats.ttest_1samp(d, 0).confidence_interval())
    assert low == pytest.approx(t_low, abs=2.0) and high == pytest.approx(t_high, abs=2.0)
    assert result.better["average_gain"] == "a"
    # Average Increase: a's 30 rises against b's 30, each term a whole 100 points: no difference
    # in the mean, and no tie that would make one side's rises vanish from the test
    assert result.difference["average_increase"] == 0.0 and result.p_value["average_increase"] == 1.0
    assert result.ci["average_increase"][0] < -10.0 < 10.0 < result.ci["average_increase"][1]
    # the sums-only path (a PairState) ties the same samples
    state = camavg_core.PairState.empty().update(y, o_a, o_b).result()
    assert state.difference["average_gain"] == pytest.approx(100 * d.mean(), rel=1e-9)
    assert state.ci["average_gain"][0] <= state.difference["average_gain"] <= state.ci["average_gain"][1]


def test_a_mufidelity_difference_beyond_one_gets_its_whole_interval():
    """MuFidelity's correlations lie in [-1, 1], so a difference reaches +-2; the interval was
    searched within +-1 and its upper end stuck at the mean (1.2677, 1.3217 for a mean of
    1.3217). The oracle: scipy's t interval of the same differences (the sign-flip interval is
    close to it at n = 40 for symmetric differences)."""
    from scipy import stats

    from camavg_core.compare import check_test, compare_terms

    mufidelity = camavg_core.METRICS["mufidelity"]
    rng = np.random.default_rng(1)
    a = np.clip(0.7 + 0.15 * rng.standard_normal(40), -1, 1)
    b = np.clip(-0.6 + 0.15 * rng.standard_normal(40), -1, 1)
    result = compare_terms({"mufidelity": a}, {"mufidelity": b}, {"mufidelity": np.zeros(40, bool)}, (mufidelity,),
                           tests=check_test("sign_flip", (mufidelity,)), level=0.95, names=("a", "b"),
                           ci_method="default")
    low, high = result.ci["mufidelity"]
    t_low, t_high = stats.ttest_1samp(a - b, 0).confidence_interval()
    assert low < (a - b).mean() < high
    assert low == pytest.approx(t_low, abs=0.01) and high == pytest.approx(t_high, abs=0.01)


def test_the_sums_only_test_claims_no_more_than_sign_flips_can_show():
    """Three images on which a rises and b does not: Increase differences +1, +1, +1, zero
    spread. Hall's t from sums gave p = 0 and "a better"; of the 2^3 sign patterns of three
    equal differences two (all +, all -) reach the observed mean, so no test of them can give
    less than 2 / 8, and no mean difference can be rejected at 0.05."""
    y = np.array([0.5, 0.6, 0.7])
    o_a, o_b = y + 0.1, y - 0.1
    for result in (camavg_core.PairState.empty().update(y, o_a, o_b).result(), compare(y, o_a, o_b, test="t")):
        assert result.p_value["average_increase"] == 0.25
        assert result.ci["average_increase"] == (-100.0, 100.0)
        assert result.better["average_increase"] is None
    # with 12 such images the floor 2 / 2^12 is far below 0.05 and the interval is Hall's
    y12 = np.linspace(0.3, 0.7, 12)
    many = camavg_core.PairState.empty().update(y12, y12 + 0.1, y12 - 0.1).result()
    assert many.p_value["average_increase"] == 2.0 / 2**12 and many.better["average_increase"] == "a"


def test_the_sums_only_test_holds_its_level_for_increase_at_small_n():
    """Exchangeable methods (each masked score rises with probability 0.3, else falls): the
    sums-only test (a PairState) rejected Average Increase 9-11% of the time at n = 2-10, mostly
    on differences of zero spread (p = 0). 400 trials per n: a rate of 5% has a standard error
    of 1.1%, hence the bound of 8%."""
    rng = np.random.default_rng(7)

    def masked(y):
        up = rng.random(y.size) < 0.3
        return np.where(up, np.minimum(1.0, y + rng.uniform(0.01, 0.05, y.size)), y * rng.uniform(0.2, 0.99, y.size))

    for n in (2, 3, 5, 10):
        rejected = 0
        for _ in range(400):
            y = rng.uniform(0.3, 0.95, n)
            result = camavg_core.PairState.empty(["average_increase"]).update(y, masked(y), masked(y)).result()
            rejected += result.p_value["average_increase"] < 0.05
        assert rejected / 400 <= 0.08, (n, rejected)
