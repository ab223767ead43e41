"""Batches sharded over 4 virtual CPU devices give the single-device scores.

XLA reads ``--xla_force_host_platform_device_count`` when JAX starts, so the 4-device run is a
subprocess with the flag set before JAX is imported; this process keeps its single device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from camavg_jax import AveragesCam  # noqa: E402

# Shared by both runs: the model, the data, the CAM sets. Prints the results as JSON.
SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from camavg_jax import AveragesCam

    rng = np.random.default_rng(7)
    images = rng.random((11, 8, 8, 3)).astype(np.float32)
    cams = [rng.random((11, 8, 8)).astype(np.float32), rng.random((11, 4, 4)).astype(np.float32)]
    labels = rng.integers(0, 4, 11)
    kernel = jnp.asarray(rng.normal(scale=0.5, size=(3, 3, 3, 5)), jnp.float32)
    dense = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    traces = []

    def apply_fn(x):
        traces.append(x.shape)
        features = jax.lax.conv_general_dilated(
            x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.mean(jax.nn.relu(features), axis=(1, 2)) @ dense

    def score(outputs):
        return outputs[jnp.arange(outputs.shape[0]), labels]

    metrics = AveragesCam(apply_fn, images, batch_size=6, activation="softmax")
    results = [metrics.evaluate(c, score) for c in cams + [cams[0] * 0.5]]
    rows = metrics.adapter.rows_per_batch(metrics.n, 6)
    batch = metrics.adapter.batch(metrics.engine.inputs[0], 0, rows)
    print(json.dumps({
        "devices": jax.local_device_count(),
        "batch_size": rows,
        "batch_devices": len(batch.sharding.device_set),
        "batch_shard_rows": [s.data.shape[0] for s in batch.addressable_shards],
        "traces": len(traces),
        "pass_traces": metrics.trace_count,
        "y_c": [r.y_c.tolist() for r in results],
        "o_c": [r.o_c.tolist() for r in results],
        "metrics": [[r.average_drop, r.average_increase, r.average_gain] for r in results],
    }))
    """
)


def _run(device_count: int) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={device_count}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs():
    return _run(4), _run(1)


@pytest.mark.slow
def test_four_devices_shard_every_batch(runs):
    sharded, _ = runs
    assert sharded["devices"] == 4
    assert sharded["batch_size"] == 8  # 6 rounded up to a multiple of 4 devices
    assert sharded["batch_devices"] == 4
    assert sharded["batch_shard_rows"] == [2, 2, 2, 2]
    # 11 samples = 8 + 3 padded to 8: the plain pass, the masked pass at the input size and at
    # the 4x4 CAM size; the third CAM set reuses the first shape. apply_fn itself is traced once,
    # by the plain pass at construction, and that trace serves the masked passes
    assert sharded["pass_traces"] == 3
    assert sharded["traces"] == 1


@pytest.mark.slow
def test_sharded_scores_equal_single_device_scores(runs):
    sharded, single = runs
    assert single["devices"] == 1 and single["batch_size"] == 6
    np.testing.assert_allclose(sharded["y_c"], single["y_c"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sharded["o_c"], single["o_c"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sharded["metrics"], single["metrics"], rtol=1e-6, atol=1e-5)


def test_single_device_in_this_process_is_not_sharded():
    metrics = AveragesCam(lambda x: x[:, 0, 0, :], np.full((3, 2, 2, 2), 0.5, np.float32))
    assert metrics.adapter.placement.n_devices == jax.local_device_count()
    if jax.local_device_count() == 1:
        assert metrics.adapter.placement.sharding is None
        assert metrics.adapter.rows_per_batch(metrics.n, 32) == 3
