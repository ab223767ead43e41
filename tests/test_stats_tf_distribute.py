"""The default interval under MirroredStrategy (2 logical CPU devices) equals the in-memory one.

TensorFlow fixes its devices when it first initialises them, so the two-replica run happens in a
child process (this file run as a script), which prints its intervals as JSON; the parent
compares them with ``summarize`` on the same scores, computed here with NumPy only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")
pytest.importorskip("scipy.stats")

N = 203  # batches of 16 leave a last batch of 11, split unevenly over the two replicas
METRICS = ("average_drop", "average_increase", "average_gain")


def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y = rng.beta(5.0, 2.0, N)
    return y, np.clip(y + rng.normal(-0.05, 0.2, N), 0.0, 1.0)


def child() -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from camavg_core import MetricState
    from camavg_tf.distribute import gather_per_sample
    from camavg_tf.metrics import AverageDrop, AverageGain, AverageIncrease

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    y, o = scores()
    dataset = tf.data.Dataset.from_tensor_slices((y, o)).batch(16)
    with strategy.scope():
        metrics = [AverageDrop(), AverageIncrease(), AverageGain()]

    @tf.function
    def step(batch):
        def on_replica(y_c, o_c):
            for metric in metrics:
                metric.update_state(y_c, o_c)

        strategy.run(on_replica, args=batch)

    for batch in strategy.experimental_distribute_dataset(dataset):
        step(batch)
    # the one distributed path: per-sample values gathered in order, reduced on the host
    gathered_y, gathered_o = (v.numpy() for v in gather_per_sample(strategy, lambda batch: batch, dataset))
    state = MetricState.empty().update(gathered_y, gathered_o)
    report = {
        "replicas": strategy.num_replicas_in_sync,
        "keras": {name: list(m.interval()) for name, m in zip(METRICS, metrics)},
        "keras_count": [int(m.count) for m in metrics],
        "state": {name: list(v) for name, v in state.result().ci.items()},
        "gathered_in_order": bool((gathered_y == y).all() and (gathered_o == o).all()),
    }
    print("CHILD-REPORT " + json.dumps(report), flush=True)


@pytest.fixture(scope="module")
def mirrored() -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child"],
        capture_output=True, text=True, timeout=150, env=env, cwd=root,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("CHILD-REPORT ")]
    assert lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("CHILD-REPORT ") :])


@pytest.mark.slow
def test_two_replicas_give_the_in_memory_interval(mirrored):
    from camavg_core import summarize

    expected = summarize(*scores()).ci
    assert mirrored["replicas"] == 2 and mirrored["keras_count"] == [N] * 3
    assert mirrored["gathered_in_order"] is True
    for name in METRICS:
        assert mirrored["keras"][name] == pytest.approx(expected[name], abs=1e-9)
        assert mirrored["state"][name] == pytest.approx(expected[name], abs=1e-9)


if __name__ == "__main__" and "--child" in sys.argv:
    child()
