"""What the two-replica child processes share (tests/test_tf_averages_distributed.py and
tests/test_tf_distribute_curves.py): the CPU split into two logical devices, a
``MirroredStrategy`` over them, and the softmax model whose weights the NumPy reference knows.

The split must happen before TensorFlow runs anything, which is why the tests run it in a
fresh process of their own.
"""

from __future__ import annotations

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
