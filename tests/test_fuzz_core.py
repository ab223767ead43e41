"""Fuzzing camavg_core's public functions: a right number or a clear error, nothing in between.

Every drawn input goes through ``avg_drop``, ``avg_increase``, ``avg_gain``, ``summarize`` and
``MetricState``. An oracle written here from the contract (README.md, docs/bad-input.md), not from the
code, says whether the input is valid: if it is, the returned number must equal the NumPy
formula; if not, the call must raise ``ValueError`` or ``TypeError`` whose message names the
argument at fault. Any other exception type, a NaN or an infinity in a returned metric, or a
change to the arguments fails the test.

The explicit cases at the end are the bugs this fuzzing found (each one was an entry of the
project's hardening requests, now fixed), kept as regression tests.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from camavg_core import MetricState, avg_drop, avg_gain, avg_increase, summarize

EPS = 1e-7
ERRORS = (ValueError, TypeError)

# --------------------------------------------------------------------------- strategies
NUMERIC_DTYPES = ["bool", "int8", "int32", "int64", "uint8", "float16", "float32", "float64"]
# where eps, the max and the logits checks matter, and what breaks naive code
SPECIAL_FLOATS = [0.0, -0.0, 1.0, 0.5, 1e-7, 1e-9, 1 - 1e-7, -0.5, 1.5, np.nan, np.inf, -np.inf]


def _float_elements(dtype: str) -> st.SearchStrategy:
    width = {"float16": 16, "float32": 32, "float64": 64}[dtype]
    probability = st.floats(0.0, 1.0, width=width, allow_subnormal=False)
    stray = st.floats(-0.25, 1.25, width=width, allow_subnormal=False)
    specials = st.sampled_from(SPECIAL_FLOATS).map(lambda v: float(np.dtype(dtype).type(v)))
    # mostly probabilities, so that many drawn pairs are valid and their numbers get checked
    return st.one_of(probability, probability, probability, probability, stray, specials)


def _elements(dtype: str) -> st.SearchStrategy:
    if dtype == "bool":
        return st.booleans()
    if dtype.startswith("uint"):
        return st.one_of(st.integers(0, 1), st.integers(0, 1), st.integers(0, 3))
    if dtype.startswith("int"):
        return st.one_of(st.integers(0, 1), st.integers(0, 1), st.integers(-1, 2))
    return _float_elements(dtype)


vector_shapes = hnp.array_shapes(min_dims=1, max_dims=1, min_side=1, max_side=8)
column_shapes = st.integers(1, 5).map(lambda n: (n, 1))
any_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)


@st.composite
def score_arrays(draw, shape=None):
    """A NumPy array of a drawn numeric dtype: mostly (N,), also (N, 1), 0-d to 3-d, empty."""
    dtype = draw(st.sampled_from(NUMERIC_DTYPES))
    if shape is None:
        shape = draw(st.one_of(vector_shapes, vector_shapes, vector_shapes, column_shapes, any_shapes))
    return draw(hnp.arrays(np.dtype(dtype), shape, elements=_elements(dtype)))


SCORE_KINDS = ["array"] * 6 + ["list", "list", "tuple", "scalar", "none", "ragged", "objects"]


@st.composite
def score_likes(draw, shape=None):
    """What a user may pass as scores: arrays, Python lists and scalars, None, ragged lists."""
    array = draw(score_arrays(shape))
    kind = draw(st.sampled_from(SCORE_KINDS))
    if kind == "list":
        return array.tolist()
    if kind == "tuple":
        return tuple(array.reshape(-1).tolist())
    if kind == "scalar":
        return draw(st.one_of(st.floats(0, 1), st.integers(0, 1), st.booleans()))
    if kind == "none":
        return None
    if kind == "ragged":
        return [[0.5], [0.5, 0.25]]
    if kind == "objects":
        return [object() for _ in range(max(1, array.size))]
    return array


@st.composite
def score_pairs(draw):
    """(Y_c, O_c): mostly of one shape (so many pairs are valid), sometimes of any two."""
    y = draw(score_likes())
    if isinstance(y, np.ndarray) or (isinstance(y, (list, tuple)) and y != [[0.5], [0.5, 0.25]]):
        if draw(st.integers(0, 3)) > 0:
            return y, draw(score_likes(shape=np.shape(y)))
    return y, draw(score_likes())


nan_policies = st.sampled_from(["raise", "omit"])


# --------------------------------------------------------------------------- the oracle
class Invalid(Exception):
    """The oracle's verdict: this input must be refused, naming one of ``names``."""

    def __init__(self, *names: str) -> None:
        super().__init__(names)
        self.names = names


def oracle_vector(values, name: str) -> np.ndarray:
    """The contract for one score argument: a real-valued (N,) or (N, 1) array."""
    if values is None or isinstance(values, (str, bytes, dict, set)):
        raise Invalid(name)
    try:
        array = np.asarray(values)
    except ValueError:  # ragged
        raise Invalid(name) from None
    if array.dtype.kind not in "biuf":
        raise Invalid(name)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise Invalid(name)
    return array.astype(np.float64)


def oracle_checked(y_c, o_c, nan_policy: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both vectors, checked as the contract says, and which samples enter the averages."""
    y = oracle_vector(y_c, "Y_c")
    o = oracle_vector(o_c, "O_c")
    if len(y) != len(o) or len(y) == 0:
        raise Invalid("Y_c", "O_c")
    if nan_policy == "raise":
        if not np.isfinite(y).all():
            raise Invalid("Y_c")
        if not np.isfinite(o).all():
            raise Invalid("O_c")
    valid = np.isfinite(y) & np.isfinite(o)
    return y, o, valid


def oracle_probabilities(scores: np.ndarray, name: str, *, upper: bool) -> None:
    """A negative score (or one above 1 when gain is asked for): the model returns logits."""
    finite = scores[np.isfinite(scores)]
    if finite.size and (finite.min() < 0 or (upper and finite.max() > 1)):
        raise Invalid(name, "logits")


def oracle_metrics(y: np.ndarray, o: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    if not valid.any():
        raise Invalid("skipped", "non-finite", "nothing to average")
    y, o = y[valid], o[valid]
    return {
        "drop": 100 * float(np.mean(np.maximum(y - o, 0) / (y + EPS))),
        "increase": 100 * float(np.mean(y < o)),
        "gain": 100 * float(np.mean(np.maximum(o - y, 0) / (1 - y + EPS))),
    }


def oracle_average(kind: str, y_c, o_c, nan_policy: str) -> float:
    y, o, valid = oracle_checked(y_c, o_c, nan_policy)
    if kind in ("drop", "gain"):  # Average Increase compares scores: defined for logits
        oracle_probabilities(y, "Y_c", upper=kind == "gain")
        oracle_probabilities(o, "O_c", upper=kind == "gain")
    return oracle_metrics(y, o, valid)[kind]


# --------------------------------------------------------------------------- assertions
def copies(*values):
    return [np.array(v, copy=True) if isinstance(v, np.ndarray) else v for v in values]


def assert_unchanged(before, after) -> None:
    for old, new in zip(before, after):
        if isinstance(old, np.ndarray):
            assert old.dtype == new.dtype
            np.testing.assert_array_equal(old, new)


def assert_names_argument(error: BaseException, names: tuple[str, ...]) -> None:
    message = str(error).lower()
    assert any(name.lower() in message for name in names), (
        f"{type(error).__name__} message does not name any of {names}: {error}"
    )


def run_against_oracle(call, expect, errors=ERRORS):
    """Run the oracle and the call; both refuse (naming the argument, with one of ``errors``),
    or both give a value."""
    try:
        expected = expect()
    except Invalid as verdict:
        event(f"refused, naming {verdict.names[0]}")
        with pytest.raises(errors) as caught:
            call()
        assert_names_argument(caught.value, verdict.names)
        return None
    event("valid")
    return expected, call()


def assert_metric_equal(actual: float, expected: float) -> None:
    assert isinstance(actual, float)
    assert math.isfinite(actual), f"returned metric is {actual}"
    assert actual == pytest.approx(expected, rel=1e-9, abs=1e-9)


AVERAGES = {"drop": avg_drop, "increase": avg_increase, "gain": avg_gain}


# --------------------------------------------------------------------------- fuzz: averages
@pytest.mark.parametrize("kind", list(AVERAGES))
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(pair=score_pairs(), nan_policy=nan_policies)
def test_averages_give_the_numpy_value_or_a_clear_error(kind, pair, nan_policy):
    y_c, o_c = pair
    before = copies(y_c, o_c)
    outcome = run_against_oracle(
        lambda: AVERAGES[kind](y_c, o_c, nan_policy=nan_policy),
        lambda: oracle_average(kind, y_c, o_c, nan_policy),
    )
    if outcome is not None:
        expected, actual = outcome
        assert_metric_equal(actual, expected)
    assert_unchanged(before, [y_c, o_c])


# --------------------------------------------------------------------------- fuzz: summarize
def oracle_summary(y_c, o_c, nan_policy):
    y, o, valid = oracle_checked(y_c, o_c, nan_policy)
    oracle_probabilities(y, "Y_c", upper=True)
    oracle_probabilities(o, "O_c", upper=True)
    return oracle_metrics(y, o, valid), y, o, valid


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(pair=score_pairs(), nan_policy=nan_policies)
def test_summarize_gives_the_numpy_values_or_a_clear_error(pair, nan_policy):
    y_c, o_c = pair
    before = copies(y_c, o_c)
    outcome = run_against_oracle(
        lambda: summarize(y_c, o_c, nan_policy=nan_policy),
        lambda: oracle_summary(y_c, o_c, nan_policy),
    )
    if outcome is not None:
        (metrics, y, o, valid), result = outcome
        assert_metric_equal(result.average_drop, metrics["drop"])
        assert_metric_equal(result.average_increase, metrics["increase"])
        assert_metric_equal(result.average_gain, metrics["gain"])
        assert result.n == int(valid.sum())
        assert result.skipped == int((~valid).sum())
        # the vectors keep every sample, skipped ones included, in float64
        assert result.y_c.dtype == np.float64 and result.o_c.dtype == np.float64
        np.testing.assert_array_equal(result.y_c, y)
        np.testing.assert_array_equal(result.o_c, o)
        if result.skipped:
            assert f"{result.skipped} skipped" in str(result)
    assert_unchanged(before, [y_c, o_c])


# --------------------------------------------------------------------------- fuzz: the state
@st.composite
def float_batches(draw):
    """Batches of (y, o) float vectors, each of its own float dtype; some empty, some NaN."""
    batches = []
    for _ in range(draw(st.integers(1, 4))):
        dtype = draw(st.sampled_from(["float16", "float32", "float64"]))
        n = draw(st.integers(0, 5))
        elements = st.one_of(
            st.floats(0, 1, width=16, allow_subnormal=False),
            st.sampled_from([0.0, 1.0, 0.5, np.nan, np.inf]),
        )
        y = draw(hnp.arrays(np.dtype(dtype), n, elements=elements))
        o = draw(hnp.arrays(np.dtype(dtype), n, elements=elements))
        batches.append((y, o))
    return batches


def oracle_stream(y, o, nan_policy):
    """As ``summarize``, except that a stream that saw no sample says so (it has no Y_c yet)."""
    if len(y) == 0:
        raise Invalid("no sample")
    try:
        return oracle_summary(y, o, nan_policy)
    except Invalid as verdict:
        # batches are checked one by one, so the first bad one may be a Y_c or an O_c
        raise Invalid(*verdict.names, "Y_c", "O_c") from None


@given(batches=float_batches(), nan_policy=nan_policies, data=st.data())
def test_state_over_batches_gives_the_numpy_values_or_a_clear_error(batches, nan_policy, data):
    y_all = np.concatenate([y.astype(np.float64) for y, _ in batches])
    o_all = np.concatenate([o.astype(np.float64) for _, o in batches])
    before = copies(*[array for pair in batches for array in pair])

    def streamed():
        # each batch in its own state, merged in a drawn order: merging is a sum
        states = [MetricState.empty().update(y, o, nan_policy=nan_policy) for y, o in batches]
        order = data.draw(st.permutations(range(len(states))))
        total = MetricState.empty()
        for index in order:
            total = total.merge(states[index])
        return total.result()

    outcome = run_against_oracle(streamed, lambda: oracle_stream(y_all, o_all, nan_policy))
    if outcome is not None:
        (metrics, _, _, valid), result = outcome
        assert_metric_equal(result.average_drop, metrics["drop"])
        assert_metric_equal(result.average_increase, metrics["increase"])
        assert_metric_equal(result.average_gain, metrics["gain"])
        assert (result.n, result.skipped) == (int(valid.sum()), int((~valid).sum()))
    assert_unchanged(before, [array for pair in batches for array in pair])


@st.composite
def same_length_vectors(draw):
    n = draw(st.integers(0, 6))
    return draw(score_arrays(shape=(n,))), draw(score_arrays(shape=(n,)))


@given(pair=same_length_vectors(), nan_policy=nan_policies)
def test_state_update_of_any_dtype_gives_the_numpy_values_or_a_clear_error(pair, nan_policy):
    y_c, o_c = pair
    before = copies(y_c, o_c)
    outcome = run_against_oracle(
        lambda: MetricState.empty().update(y_c, o_c, nan_policy=nan_policy).result(),
        lambda: oracle_stream(y_c, o_c, nan_policy),
    )
    if outcome is not None:
        (metrics, _, _, valid), result = outcome
        assert_metric_equal(result.average_drop, metrics["drop"])
        assert_metric_equal(result.average_increase, metrics["increase"])
        assert_metric_equal(result.average_gain, metrics["gain"])
        assert (result.n, result.skipped) == (int(valid.sum()), int((~valid).sum()))
    assert_unchanged(before, [y_c, o_c])


@given(batch=float_batches(), nan_policy=nan_policies)
def test_state_fields_are_never_float16(batch, nan_policy):
    """Sums of float16 terms would round the averages: NumPy accumulates in float64."""
    y, o = batch[0]
    try:
        state = MetricState.empty().update(y, o, nan_policy=nan_policy)
    except ERRORS:
        return
    for name in ("drop_sum", "drop_sq_sum", "gain_sum", "gain_sq_sum"):
        assert np.asarray(getattr(state, name)).dtype == np.float64, name
    for name in ("n", "increase_count", "skipped"):
        assert np.asarray(getattr(state, name)).dtype.kind in "iu", name


# --------------------------------------------------------------------------- explicit cases
# the bugs the fuzzing found, pinned down as regression tests
JUNK = ["abc", b"abc", {"a": 0.5}, {0.5}, object(), np.array(["a", "b"]), np.array([0.5 + 1j])]


@pytest.mark.parametrize("junk", JUNK, ids=lambda j: type(j).__name__ + str(getattr(j, "dtype", "")))
@pytest.mark.parametrize("position", ["Y_c", "O_c"])
def test_junk_arguments_are_refused_by_name(junk, position):
    args = {"Y_c": [0.5, 0.5], "O_c": [0.25, 0.25]}
    args[position] = junk
    for function in (avg_drop, avg_increase, avg_gain, summarize):
        with pytest.raises(ERRORS) as caught:
            function(args["Y_c"], args["O_c"])
        assert_names_argument(caught.value, (position,))


@pytest.mark.parametrize(
    "junk",
    [*JUNK, None, np.zeros((2, 3)), np.float64(0.5), np.array([0.5, 0.5, 0.5])],
    ids=lambda j: type(j).__name__ + str(getattr(j, "shape", "")),
)
@pytest.mark.parametrize("position", ["y_c", "o_c"])
def test_state_update_names_its_arguments(junk, position):
    args = {"y_c": np.array([0.5, 0.5]), "o_c": np.array([0.25, 0.25])}
    args[position] = junk
    with pytest.raises(ERRORS) as caught:
        MetricState.empty().update(args["y_c"], args["o_c"])
    assert_names_argument(caught.value, (position,))


@pytest.mark.parametrize("y_c", [[-0.5, 0.5], [1.5, 0.5]])
def test_state_update_refuses_logits_under_omit_too(y_c):
    """Concrete values can be checked whatever the policy; gain of Y = 1.5 is negative."""
    with pytest.raises(ValueError) as caught:
        MetricState.empty().update(np.array(y_c), np.array([0.25, 0.25]), nan_policy="omit")
    assert "logits" in str(caught.value)


def test_state_update_accepts_a_column_like_the_averages():
    """(N, 1) scores, as a Keras model with one output gives them, work everywhere or nowhere."""
    y, o = np.array([[0.8], [0.5]]), np.array([[0.2], [0.6]])
    expected_drop = 100 * (0.6 / (0.8 + EPS) + 0) / 2
    assert summarize(y, o).average_drop == pytest.approx(expected_drop)
    assert MetricState.empty().update(y, o).result().average_drop == pytest.approx(expected_drop)


@pytest.mark.parametrize("other", [None, (1, 2), [0.5], 3])
def test_merge_refuses_what_is_not_a_state(other):
    with pytest.raises(TypeError) as caught:
        MetricState.empty().merge(other)
    assert_names_argument(caught.value, ("MetricState",))


@given(
    y=hnp.arrays(np.float64, 3, elements=st.floats(0.01, 0.99)),
    o=hnp.arrays(np.float64, 3, elements=st.floats(0.01, 0.99)),
)
@settings(max_examples=10)
def test_bfloat16_scores_are_averaged_like_float32(y, o):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    y16, o16 = y.astype(ml_dtypes.bfloat16), o.astype(ml_dtypes.bfloat16)
    y64, o64 = y16.astype(np.float64), o16.astype(np.float64)
    assert avg_drop(y16, o16) == pytest.approx(100 * np.mean(np.maximum(y64 - o64, 0) / (y64 + EPS)))
    assert avg_gain(y16, o16) == pytest.approx(100 * np.mean(np.maximum(o64 - y64, 0) / (1 - y64 + EPS)))
    assert summarize(y16, o16).average_increase == pytest.approx(100 * np.mean(y64 < o64))


@pytest.mark.parametrize(
    "function, o_c",
    [
        (avg_drop, [-2.0, 0.5]),  # a negative masked score is a logit: drop would be 250%
        (avg_gain, [2.0, 0.5]),  # a masked score above 1: gain would be 150%
        (summarize, [2.0, 0.5]),
        (avg_drop, [-1e308, 0.5]),  # overflows to an infinite Average Drop
        (avg_gain, [1e308, 0.5]),
    ],
)
def test_masked_scores_outside_zero_one_are_logits(function, o_c):
    with pytest.raises(ValueError) as caught:
        function([0.5, 0.5], o_c)
    assert_names_argument(caught.value, ("O_c",))
    assert "logits" in str(caught.value) and "activation=" in str(caught.value)


@pytest.mark.parametrize("level", [0.0, 1.0, 95, -0.5, "0.95", None])
def test_summarize_and_result_refuse_a_bad_level(level):
    with pytest.raises(ERRORS) as caught:
        summarize([0.5], [0.25], level=level)
    assert_names_argument(caught.value, ("level",))
    with pytest.raises(ERRORS) as caught:
        MetricState.empty().update(np.array([0.5]), np.array([0.25])).result(level=level)
    assert_names_argument(caught.value, ("level",))
