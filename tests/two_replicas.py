"""What the two-replica child processes share (tests/test_tf_averages_distributed.py,
tests/test_tf_distribute_curves.py and tests/test_step_groups.py): the CPU split into two
logical devices, a ``MirroredStrategy`` over them, the softmax model whose weights the NumPy
reference knows, and the parent's run of the child (:func:`child_report`).

The split must happen before TensorFlow runs anything, which is why the tests run it in a
fresh process of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def mirrored_over_two_cpus() -> Any:
    """Split the CPU into two logical devices and return a ``MirroredStrategy`` over both."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def dense_softmax(shape: tuple, classes: int, kernel: Any, bias: Any) -> Any:
    """A functional Keras model: flatten, then a softmax ``Dense`` with the given weights."""
    import keras

    x = keras.Input(shape)
    dense = keras.layers.Dense(classes, activation="softmax")
    model = keras.Model(x, dense(keras.layers.Flatten()(x)))
    dense.set_weights([kernel, bias])
    return model


def child_report(test_file: str, timeout_s: float) -> dict:
    """Run ``python test_file --child`` from the checkout's root, this checkout's packages
    first on the path, and return the JSON of its last ``CHILD-REPORT`` line; the test fails
    with the child's stderr when it fails, reports nothing or runs past ``timeout_s``."""
    import pytest

    root = os.path.dirname(os.path.dirname(os.path.abspath(test_file)))
    path = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONPATH=path)
    try:
        done = subprocess.run([sys.executable, os.path.abspath(test_file), "--child"], capture_output=True,
                              text=True, timeout=timeout_s, env=env, cwd=root)
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills the child before raising
        pytest.fail(f"the MirroredStrategy child ran past {timeout_s} s:\n{(exc.stderr or '')[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("CHILD-REPORT ")]
    assert done.returncode == 0 and lines, f"child failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(lines[-1][len("CHILD-REPORT "):])
