"""The adapters on a small Keras CNN: ``AveragesCam`` construction, ``evaluate`` and
``evaluate_many``, and the peak memory of ``evaluate_dataset`` as N grows.

The ratios to the bare forward pass on MobileNetV2 are ``benchmarks/compare.py``'s job; these
track the absolute times and memory from commit to commit.
"""

from __future__ import annotations

import numpy as np

from . import require_backend

CLASSES = 10


def small_cnn(size: int):
    """A seeded three-layer CNN with a softmax head (untrained: speed does not need weights)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(x))


def coarse_cams(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Grad-CAM-like maps: coarse (size / 8) random maps upsampled to the input size."""
    import tensorflow as tf

    coarse = rng.uniform(0, 1, (n, max(1, size // 8), max(1, size // 8), 1)).astype(np.float32)
    return tf.image.resize(coarse, (size, size)).numpy()[..., 0]


class TensorFlowAveragesCam:
    """``camavg_tf.AveragesCam`` at 64 px, batch 64."""

    params = [256, 1024]
    param_names = ["n"]
    timeout = 300

    def setup(self, n):
        require_backend("tensorflow")
        from tf_keras_vis.utils.scores import CategoricalScore

        from camavg_tf import AveragesCam

        rng = np.random.default_rng(0)
        self.model = small_cnn(64)
        self.images = rng.uniform(0, 1, (n, 64, 64, 3)).astype(np.float32)
        self.cam_sets = [coarse_cams(rng, n, 64) for _ in range(4)]
        self.score = CategoricalScore([int(label) for label in rng.integers(0, CLASSES, n)])
        self.metrics = AveragesCam(self.model, self.images, batch_size=64)
        # trace the masked pass with a CAM set the timed calls do not use first, so none of them
        # finds its CAMs in the cache
        self.metrics.evaluate(self.cam_sets[3], self.score)
        self.turn = 0

    def _next_cams(self):
        # two CAM sets in turn, so each call pays its masked pass instead of hitting the cache
        self.turn += 1
        return self.cam_sets[self.turn % 2]

    def time_construction(self, n):
        from camavg_tf import AveragesCam

        AveragesCam(self.model, self.images, batch_size=64)

    def time_evaluate(self, n):
        self.metrics.evaluate(self._next_cams(), self.score)

    def time_drop_then_increase(self, n):
        cams = self._next_cams()
        self.metrics.average_drop(cams, self.score)
        self.metrics.average_increase(cams, self.score)

    def time_evaluate_many_4(self, n):
        self.metrics.evaluate_many(self.cam_sets, self.score)


class StreamingPeakMemory:
    """``evaluate_dataset`` over a generator of 64 px batches, vectors not kept: the peak
    memory must not grow with N (N = 2,000 and 20,000 differ by < 100 MB)."""

    params = [2000, 20000]
    param_names = ["n"]
    timeout = 600
    batch = 100

    def setup(self, n):
        require_backend("tensorflow")
        self.model = small_cnn(64)

    def _batches(self, n):
        """Batches made on the fly, so no more than one is ever held by the generator."""
        rng = np.random.default_rng(1)
        for start in range(0, n, self.batch):
            size = min(self.batch, n - start)
            images = rng.uniform(0, 1, (size, 64, 64, 3)).astype(np.float32)
            cams = rng.uniform(0, 1, (size, 8, 8)).astype(np.float32)
            yield images, cams, rng.integers(0, CLASSES, size)

    def peakmem_evaluate_dataset(self, n):
        from camavg_tf.streaming import evaluate_dataset

        result = evaluate_dataset(self.model, self._batches(n))
        assert result.n == n


class JaxStreamingPeakMemory:
    """``camavg_jax.evaluate_dataset`` over the same generator: the peak memory must not grow
    with N either."""

    params = [2000, 20000]
    param_names = ["n"]
    timeout = 600
    batch = 100

    def setup(self, n):
        require_backend("jax")
        import jax
        import jax.numpy as jnp

        rng = np.random.default_rng(0)
        kernel = jnp.asarray(rng.normal(0, 0.1, (3, 3, 3, 16)).astype(np.float32))
        dense = jnp.asarray(rng.normal(0, 0.1, (16, CLASSES)).astype(np.float32))

        def apply_fn(x):
            features = jax.lax.conv_general_dilated(x, kernel, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return jax.nn.softmax(jnp.mean(jax.nn.relu(features), axis=(1, 2)) @ dense, axis=-1)

        self.apply_fn = apply_fn

    def peakmem_evaluate_dataset(self, n):
        from camavg_jax import evaluate_dataset

        result = evaluate_dataset(self.apply_fn, StreamingPeakMemory._batches(self, n))
        assert result.n == n
