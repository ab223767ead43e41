"""Fuzzing the distributed doors on a MirroredStrategy over 2 logical CPU devices.

TensorFlow fixes its devices when it first initialises them, so the fuzzing runs in a child
pytest process (``CAMAVG_FUZZ_CHILD=1``) whose first act is to split the CPU in two; the one
test of the parent process runs that child and passes when every child test passes.

Doors: ``ReplicaLoop.per_sample`` (the one distributed path: per-sample values gathered in order,
then the host's checks and sums, ``summarize``), the Keras metrics under ``strategy.run``, and
``AveragesCam(strategy=...)``. Drawn: score vectors with NaN, infinity, values outside [0, 1],
empty; batch sizes that leave a replica an empty share; CAMs with NaN or outside [0, 1]. The outcome is the NumPy reference
(``tests/reference.py``) on the samples that count, or ``ValueError``/``TypeError`` naming the
argument (inside the replicated graph, TensorFlow's ``InvalidArgumentError`` with the same text).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

CHILD = os.environ.get("CAMAVG_FUZZ_CHILD") == "1"
CHILD_TIMEOUT_S = 300

tf = pytest.importorskip("tensorflow")
if CHILD:  # before anything initialises TensorFlow's devices
    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402
from reference import reference_metrics  # noqa: E402

FUZZ = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=15)
THREE = ("average_drop", "average_increase", "average_gain")
SHAPE, CLASSES = (4, 4, 2), 3
KERNEL = np.random.default_rng(11).normal(0.0, 0.5, (int(np.prod(SHAPE)), CLASSES)).astype(np.float32)


@pytest.mark.slow
def test_fuzzing_under_two_replicas_passes():
    if CHILD:
        pytest.skip("this is the child")
    env = dict(os.environ, CAMAVG_FUZZ_CHILD="1", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.setdefault("HYPOTHESIS_PROFILE", "ci")
    command = [sys.executable, "-m", "pytest", os.path.abspath(__file__), "-q", "-x",
               "-p", "no:cacheprovider", "-k", "child"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=env,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills the child before raising
        pytest.fail(f"the child ran past {CHILD_TIMEOUT_S} s:\n{(exc.stdout or '')[-3000:]}")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " skipped" not in done.stdout.splitlines()[-1], done.stdout[-2000:]


# --------------------------------------------------------------------------- the child
@pytest.fixture(scope="module")
def strategy():
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    return mirrored


@pytest.fixture(scope="module")
def loop(strategy):
    from camavg_tf.distribute import ReplicaLoop

    return ReplicaLoop(strategy, lambda batch: batch)


@pytest.fixture(scope="module")
def model(strategy):
    import keras

    with strategy.scope():
        dense = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                                  keras.layers.Dense(CLASSES, activation="softmax")])
    dense.layers[-1].set_weights([KERNEL, np.zeros(CLASSES, np.float32)])
    return dense


score_values = st.one_of(
    st.floats(0.0, 1.0, allow_subnormal=False), st.floats(0.0, 1.0, allow_subnormal=False),
    st.sampled_from([0.0, 1.0, -0.5, 1.5, np.nan, np.inf, -np.inf]),
)


@st.composite
def score_pairs(draw):
    n = draw(st.integers(0, 7))
    y = draw(hnp.arrays(np.float64, (n,), elements=score_values))
    o = draw(hnp.arrays(np.float64, (n,), elements=score_values))
    return y, o


def verdict(y: np.ndarray, o: np.ndarray, nan_policy: str, *, low: bool, high: bool, names=("Y_c", "O_c")):
    """None for a refusal (and the names it may give), else the valid mask."""
    at_fault = []
    for scores, name in zip((y, o), names):
        finite = scores[np.isfinite(scores)]
        if nan_policy == "raise" and finite.size < scores.size:
            at_fault.append(name)
        if finite.size and ((low and finite.min() < 0) or (high and finite.max() > 1)):
            at_fault.append(name)
    return at_fault, np.isfinite(y) & np.isfinite(o)


def assert_names_one_of(error: BaseException, names) -> None:
    message = str(getattr(error, "message", error))
    assert any(name in message for name in names), f"{type(error).__name__} names none of {names}: {message}"


@FUZZ
@given(pair=score_pairs(), batch=st.integers(1, 4), nan_policy=st.sampled_from(["raise", "omit"]))
def test_child_replica_loop_gathers_the_values_in_order_then_the_host_sums_them(loop, pair, batch, nan_policy):
    from camavg_core import summarize

    y, o = pair
    at_fault, valid = verdict(y, o, nan_policy, low=True, high=True)
    dataset = tf.data.Dataset.from_tensor_slices((y, o)).batch(batch)
    if y.size == 0:
        event("empty")
        with pytest.raises(ValueError, match="dataset is empty"):
            loop.per_sample(dataset)
        return
    gathered_y, gathered_o = (values.numpy() for values in loop.per_sample(dataset))
    # in the dataset's order, whatever replica took which sample, NaN and infinity included
    np.testing.assert_array_equal(gathered_y, y)
    np.testing.assert_array_equal(gathered_o, o)
    if at_fault or not valid.any():
        event("refused")
        with pytest.raises((ValueError, TypeError)) as caught:
            summarize(gathered_y, gathered_o, nan_policy=nan_policy)
        assert_names_one_of(caught.value, at_fault or ["nothing to average"])
        return
    event("summed")
    result = summarize(gathered_y, gathered_o, nan_policy=nan_policy)
    assert (result.n, result.skipped) == (int(valid.sum()), int((~valid).sum()))
    expected = reference_metrics(y[valid], o[valid])
    for name in THREE:
        assert math.isfinite(getattr(result, name))
        assert getattr(result, name) == pytest.approx(expected[name], abs=1e-9), name


@FUZZ
@given(pair=score_pairs(), batch=st.integers(1, 4), kind=st.sampled_from(["drop", "increase", "gain"]),
       nan_policy=st.sampled_from(["raise", "omit"]))
def test_child_keras_metric_on_replicas_gives_the_numpy_value_or_names_the_argument(
    strategy, pair, batch, kind, nan_policy
):
    from camavg_tf import metrics

    y, o = pair
    with strategy.scope():
        metric = {"drop": metrics.AverageDrop, "increase": metrics.AverageIncrease,
                  "gain": metrics.AverageGain}[kind](nan_policy=nan_policy)

    @tf.function
    def step(replica_batch):
        strategy.run(metric.update_state, args=replica_batch)

    def outcome():
        for replica_batch in strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices((y, o)).batch(batch)
        ):
            step(replica_batch)

    names = ("scores", "masked_scores")
    at_fault, valid = verdict(y, o, nan_policy, low=kind != "increase", high=kind == "gain", names=names)
    if at_fault:
        event("refused")
        with pytest.raises((ValueError, TypeError, tf.errors.InvalidArgumentError)) as caught:
            outcome()
        assert_names_one_of(caught.value, at_fault)
        return
    outcome()
    assert int(metric.count) == int(valid.sum())
    value = float(metric.result())
    expected = reference_metrics(y[valid], o[valid])[f"average_{kind}"] if valid.any() else 0.0
    assert math.isfinite(value) and value == pytest.approx(expected, abs=1e-4)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=8)
@given(n=st.integers(1, 5), spoil=st.sampled_from(["clean", "clean", "nan", "range"]),
       nan_policy=st.sampled_from(["raise", "omit"]), data=st.data())
def test_child_averages_cam_on_replicas_gives_the_numpy_values_or_names_the_argument(
    strategy, model, n, spoil, nan_policy, data
):
    from camavg_core.scoring import CategoricalScore
    from camavg_tf import AveragesCam

    unit = st.floats(0.0, 1.0, width=32, allow_subnormal=False)
    inputs = data.draw(hnp.arrays(np.float32, (n, *SHAPE), elements=unit))
    cams = data.draw(hnp.arrays(np.float32, (n, *SHAPE[:2]), elements=unit))
    targets = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, CLASSES - 1)))
    bad = data.draw(st.integers(0, n - 1))
    if spoil == "nan":
        cams[bad, 0, 0] = np.nan
    elif spoil == "range":
        cams[bad, 0, 0] = 1.5

    def outcome():
        return AveragesCam(model, inputs, batch_size=2, nan_policy=nan_policy, strategy=strategy).evaluate(
            cams, CategoricalScore(targets)
        )

    valid = np.isfinite(cams).all(axis=(1, 2))
    if spoil == "range" or (spoil == "nan" and (nan_policy == "raise" or not valid.any())):
        with pytest.raises((ValueError, TypeError)) as caught:
            outcome()
        assert_names_one_of(caught.value, ["cams", "skipped"])
        return
    result = outcome()

    def probabilities(x):
        z = x.reshape(n, -1).astype(np.float64) @ KERNEL.astype(np.float64)
        return np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)

    rows = np.arange(n)
    y = probabilities(inputs)[rows, targets]
    o = probabilities(inputs * np.nan_to_num(cams)[..., None])[rows, targets]
    assert (result.n, result.skipped) == (int(valid.sum()), int((~valid).sum()))
    expected = reference_metrics(y[valid], o[valid])
    for name in ("average_drop", "average_gain"):
        assert math.isfinite(getattr(result, name))
        assert getattr(result, name) == pytest.approx(expected[name], abs=1e-3), name
    # Average Increase counts y < o: where float32 cannot tell them apart either side is right
    y, o = y[valid], o[valid]
    tied = np.abs(y - o) <= 1e-5
    low, high = 100 * np.mean((y < o) & ~tied), 100 * np.mean((y < o) | tied)
    assert low - 1e-9 <= result.average_increase <= high + 1e-9


if not CHILD:  # the child's tests exist only in the child process, where the CPU is split in two
    for _name in [name for name in list(globals()) if name.startswith("test_child_")]:
        del globals()[_name]
