"""Each error docs/bad-input.md lists that the core raises: the type, and a message naming the problem."""

from __future__ import annotations


import numpy as np
import pytest

from camavg_core import MetricState, apply_cams, avg_drop, avg_gain, avg_increase, summarize
from camavg_core import validation
from reference import EPS


def all_score_checks():
    """Every public function that takes (Y_c, O_c) and checks them."""
    return [avg_drop, avg_increase, avg_gain, summarize]


# --------------------------------------------------------------------------- scores
@pytest.mark.parametrize("check", all_score_checks())
def test_sample_count_mismatch(check):
    with pytest.raises(ValueError, match=r"Y_c has 2 scores but O_c has 3"):
        check([0.5, 0.5], [0.5, 0.5, 0.5])


@pytest.mark.parametrize("check", all_score_checks())
def test_empty_scores(check):
    with pytest.raises(ValueError, match=r"Y_c and O_c are empty"):
        check([], [])
    with pytest.raises(ValueError, match=r"empty"):
        check(np.zeros(0), np.zeros(0))


@pytest.mark.parametrize("check", all_score_checks())
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_score_names_its_index(check, bad):
    with pytest.raises(ValueError, match=rf"Y_c\[2\] is {bad}.*nan_policy='omit'"):
        check([0.5, 0.4, bad, 0.1], [0.5, 0.4, 0.3, 0.1])
    with pytest.raises(ValueError, match=rf"O_c\[0\] is {bad}.*not finite"):
        check([0.5, 0.4], [bad, 0.4])


def test_nonfinite_names_the_first_of_several():
    with pytest.raises(ValueError, match=r"Y_c\[1\]"):
        avg_drop([0.5, np.nan, np.nan], [0.1, 0.1, 0.1])


def test_omit_skips_and_counts_nonfinite_samples():
    y = [0.8, np.nan, 0.5, 0.4]
    o = [0.2, 0.3, 0.6, np.inf]
    # samples 1 and 3 are skipped; sample 0 drops 0.6 of 0.8, sample 2 rises by 0.1 of 0.5
    assert avg_drop(y, o, nan_policy="omit") == pytest.approx(100 * (0.6 / (0.8 + EPS) + 0) / 2, rel=1e-12)
    assert avg_increase(y, o, nan_policy="omit") == pytest.approx(100 * 1 / 2)
    assert avg_gain(y, o, nan_policy="omit") == pytest.approx(100 * (0 + 0.1 / (0.5 + EPS)) / 2, rel=1e-9)
    result = summarize(y, o, nan_policy="omit")
    assert result.n == 2
    assert result.skipped == 2
    assert result.average_drop == pytest.approx(100 * (0.6 / (0.8 + EPS)) / 2, rel=1e-12)
    # the vectors are kept whole, skipped samples included
    assert len(result.y_c) == 4
    assert "2 skipped" in str(result)


@pytest.mark.parametrize("check", all_score_checks())
def test_omit_with_nothing_left(check):
    with pytest.raises(ValueError, match=r"skipped|nothing to average"):
        check([np.nan, 0.5], [0.1, np.inf], nan_policy="omit")


@pytest.mark.parametrize("check", [avg_drop, summarize])
@pytest.mark.parametrize("negative", [-0.1, -2.5])
def test_negative_scores_for_drop_mean_logits(check, negative):
    with pytest.raises(ValueError, match=r"(?s)Y_c holds -.*logits.*activation='softmax'"):
        check([0.5, negative], [0.5, 0.4])


@pytest.mark.parametrize("check", [avg_gain, summarize])
def test_scores_above_one_for_gain_mean_logits(check):
    message = r"(?s)Y_c holds 1\.5 \(must be \[0, 1\]\).*logits.*activation='softmax'"
    with pytest.raises(ValueError, match=message):
        check([0.5, 1.5], [0.5, 0.4])


def test_negative_scores_for_gain_mean_logits():
    with pytest.raises(ValueError, match=r"Average Gain.*logits"):
        avg_gain([-0.5, 0.5], [0.5, 0.4])


def test_increase_accepts_logits_and_drop_accepts_scores_above_one():
    # increase is defined for any score
    assert avg_increase([-2.0, 3.0], [-1.0, 2.0]) == 50.0
    # drop only needs Y >= 0: (1.5 - 0.5) / (1.5 + eps)
    assert avg_drop([1.5], [0.5]) == pytest.approx(100 * 1.0 / (1.5 + EPS), rel=1e-12)


def test_a_score_of_exactly_zero_is_valid():
    # a saturated softmax: Y = 0 contributes drop 0 / (0 + eps) = 0
    assert avg_drop([0.0, 0.5], [0.0, 0.25]) == pytest.approx(100 * (0 + 0.25 / (0.5 + EPS)) / 2, rel=1e-12)
    assert avg_gain([0.0], [0.0]) == 0.0
    result = summarize([0.0, 0.0], [0.0, 0.3])
    assert result.average_drop == 0.0
    assert result.average_increase == 50.0
    assert result.average_gain == pytest.approx(100 * (0.3 / (1 + EPS)) / 2, rel=1e-12)


@pytest.mark.parametrize("check", all_score_checks())
@pytest.mark.parametrize("policy", ["ignore", "propagate", None, "RAISE"])
def test_bad_nan_policy(check, policy):
    with pytest.raises(ValueError, match=rf"nan_policy must be one of \('raise', 'omit'\), got {policy!r}"):
        check([0.5], [0.4], nan_policy=policy)


def test_bad_nan_policy_in_the_state():
    with pytest.raises(ValueError, match=r"nan_policy must be one of"):
        MetricState.empty().update(np.array([0.5]), np.array([0.4]), nan_policy="ignore")


@pytest.mark.parametrize("check", all_score_checks())
def test_scores_of_the_wrong_shape(check):
    message = r"Y_c must be a vector of one score per sample, shape \(N,\), got shape \(2, 3\)"
    with pytest.raises(ValueError, match=message):
        check(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"O_c must be a vector.*got shape \(\)"):
        check(np.zeros(1), np.float64(0.5))


def test_scores_that_are_not_numbers():
    with pytest.raises(TypeError, match=r"Y_c must be an array of scores, got str"):
        avg_drop("0.5", [0.5])
    with pytest.raises(TypeError, match=r"O_c must be an array of scores, got NoneType"):
        avg_drop([0.5], None)
    with pytest.raises(TypeError, match=r"Y_c must hold numbers"):
        summarize(np.array(["a", "b"]), [0.5, 0.5])
    with pytest.raises(TypeError, match=r"Y_c must hold real numbers"):
        avg_increase(np.array([1j, 2j]), [0.5, 0.5])
    with pytest.raises(ValueError, match=r"Y_c could not be read as an array"):
        avg_drop([[0.5], [0.5, 0.4]], [0.5, 0.5])


def test_score_function_of_the_wrong_shape():
    message = r"score_function must return one score per sample, shape \(3,\), but returned shape \(3, 2\)"
    with pytest.raises(ValueError, match=message):
        validation.check_scores_shape((3, 2), 3)
    with pytest.raises(ValueError, match=r"shape \(4,\), but returned shape \(\)"):
        validation.check_scores_shape((), 4)
    # (N,) and (N, 1) are both one score per sample
    validation.check_scores_shape((3,), 3)
    validation.check_scores_shape((3, 1), 3)


def test_score_function_giving_nonfinite_scores():
    with pytest.raises(ValueError, match=r"score_function gave a non-finite score \(nan\) for sample 1"):
        validation.check_scores_finite(np.array([0.5, np.nan]), "score_function", "raise")
    validation.check_scores_finite(np.array([0.5, np.nan]), "score_function", "omit")


# --------------------------------------------------------------------------- cams
def images(n=2, height=4, width=4, channels=3):
    return np.ones((n, height, width, channels))


@pytest.mark.parametrize("value", [1.5, -0.5, 255.0])
def test_cams_outside_unit_range_suggest_normalising(value):
    cams = np.full((2, 4, 4), 0.5)
    cams[1, 2, 3] = value
    with pytest.raises(ValueError, match=r"(?s)cams must lie in \[0, 1\].*Normalise.*normalize=True"):
        apply_cams(images(), cams)
    # the same CAMs are fine once normalised
    apply_cams(images(), cams, normalize=True)


def test_cams_within_float_rounding_of_the_range_are_accepted():
    cams = np.full((2, 4, 4), 0.5)
    cams[0, 0, 0] = 1 + 1e-4  # float rounding in a CAM's normalisation
    cams[1, 0, 0] = -1e-4
    masked = apply_cams(images(), cams)
    # and the stray values are clipped to [0, 1] before masking
    assert masked[0, 0, 0, 0] == 1.0
    assert masked[1, 0, 0, 0] == 0.0


def test_cam_count_differs_from_input_count():
    with pytest.raises(ValueError, match=r"cams holds 3 maps but inputs holds 2 samples"):
        apply_cams(images(n=2), np.full((3, 4, 4), 0.5))


def test_empty_inputs():
    with pytest.raises(ValueError, match=r"inputs is empty"):
        apply_cams(images(n=0), np.zeros((0, 4, 4)))


@pytest.mark.parametrize(
    "cam_shape, inputs_shape",
    [
        ((2, 0, 4), (2, 4, 4, 3)),  # an empty spatial axis cannot be interpolated
        ((2, 2, 2, 2), (2, 3, 4, 4, 1)),  # 3-D volumes of another size: only 2-D maps resize
    ],
)
def test_cams_that_cannot_be_resized(cam_shape, inputs_shape):
    message = r"cams of spatial shape .* cannot be resized to the inputs' spatial shape"
    with pytest.raises(ValueError, match=message):
        apply_cams(np.ones(inputs_shape), np.full(cam_shape, 0.5))


def test_cams_with_several_channels():
    with pytest.raises(ValueError, match=r"cams of shape \(2, 4, 4, 3\) have 3 channels"):
        apply_cams(images(), np.full((2, 4, 4, 3), 0.5))


@pytest.mark.parametrize(
    "cam_shape, message",
    [
        ((2, 4), r"cams of shape \(2, 4\) is a single map: pass one map per sample"),
        ((2,), r"expected \(N, H, W\), got rank 1 \(shape \(2,\)\)"),
        ((2, 4, 4, 1, 1), r"expected \(N, H, W\), got rank 5 \(shape \(2, 4, 4, 1, 1\)\)"),
    ],
)
def test_cams_of_the_wrong_rank(cam_shape, message):
    with pytest.raises(ValueError, match=message):
        apply_cams(images(), np.full(cam_shape, 0.5))


def test_scalar_cams():
    with pytest.raises(ValueError, match=r"expected \(N, H, W\), got rank 0"):
        apply_cams(images(), np.float64(0.5))


def test_nonfinite_cams_name_the_sample():
    cams = np.full((3, 4, 4), 0.5)
    cams[1, 2, 2] = np.nan
    with pytest.raises(ValueError, match=r"cams\[1\] holds NaN or infinity.*nan_to_num"):
        apply_cams(images(n=3), cams)


def test_cams_that_are_not_numbers():
    with pytest.raises(TypeError, match=r"cams must hold numbers"):
        apply_cams(images(), np.full((2, 4, 4), "a"))


def test_inputs_of_too_low_rank():
    with pytest.raises(ValueError, match=r"inputs must have shape \(N, H, W, C\).*got shape \(2, 4\)"):
        apply_cams(np.ones((2, 4)), np.full((2, 4), 0.5))


def test_bad_data_format():
    with pytest.raises(ValueError, match=r"data_format must be one of .*got 'NHWC'"):
        apply_cams(images(), np.full((2, 4, 4), 0.5), data_format="NHWC")


def test_cam_range_check_reports_nonfinite_bounds():
    with pytest.raises(ValueError, match=r"cams holds non-finite values"):
        validation.check_cam_range(float("nan"), 1.0)
