"""The core: the per-sample equations, their checked averages, and the streaming state.

Per backend (NumPy, TensorFlow, JAX) and number of samples (10^3 to 10^7). TensorFlow and JAX
run compiled (``tf.function``, ``jax.jit``), warmed up in ``setup``, the way the adapters run
them; NumPy runs as it is.
"""

from __future__ import annotations

import numpy as np

from . import BACKENDS, block, compiled, require_backend, to_backend

SIZES = [10**3, 10**5, 10**7]


def score_pair(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded probabilities: Y in (0, 1], O around it, so every branch of the terms is taken."""
    rng = np.random.default_rng(seed)
    y_c = rng.uniform(0.05, 1.0, n).astype(np.float32)
    o_c = np.clip(y_c + rng.normal(0, 0.2, n), 0.0, 1.0).astype(np.float32)
    return y_c, o_c


class Equations:
    """``drop_terms``, ``increase_terms`` and ``gain_terms``: pure, compiled where possible."""

    params = (BACKENDS, SIZES)
    param_names = ["backend", "n"]

    def setup(self, backend, n):
        from camavg_core import drop_terms, gain_terms, increase_terms

        bk = require_backend(backend)
        y_c, o_c = score_pair(n)
        self.y_c, self.o_c = to_backend(backend, y_c), to_backend(backend, o_c)
        self.drop = compiled(backend, lambda y, o: drop_terms(y, o, backend=bk))
        self.increase = compiled(backend, lambda y, o: increase_terms(y, o, backend=bk))
        self.gain = compiled(backend, lambda y, o: gain_terms(y, o, backend=bk))
        for function in (self.drop, self.increase, self.gain):
            block(function(self.y_c, self.o_c))

    def time_drop_terms(self, backend, n):
        block(self.drop(self.y_c, self.o_c))

    def time_increase_terms(self, backend, n):
        block(self.increase(self.y_c, self.o_c))

    def time_gain_terms(self, backend, n):
        block(self.gain(self.y_c, self.o_c))


class CheckedAverages:
    """``avg_drop`` / ``avg_increase`` / ``avg_gain``: checks on the host, then the mean."""

    params = (BACKENDS, SIZES)
    param_names = ["backend", "n"]

    def setup(self, backend, n):
        from camavg_core import avg_drop, avg_gain, avg_increase

        require_backend(backend)
        y_c, o_c = score_pair(n)
        self.y_c, self.o_c = to_backend(backend, y_c), to_backend(backend, o_c)
        for average in (avg_drop, avg_increase, avg_gain):  # first eager calls compile their ops
            average(self.y_c, self.o_c)

    def time_avg_drop(self, backend, n):
        from camavg_core import avg_drop

        avg_drop(self.y_c, self.o_c)

    def time_avg_increase(self, backend, n):
        from camavg_core import avg_increase

        avg_increase(self.y_c, self.o_c)

    def time_avg_gain(self, backend, n):
        from camavg_core import avg_gain

        avg_gain(self.y_c, self.o_c)


class StreamingState:
    """``MetricState.update`` (sums only) and ``merge``; compiled with ``nan_policy='omit'``,
    the form the streaming loops run on the device."""

    params = (BACKENDS, SIZES)
    param_names = ["backend", "n"]

    def setup(self, backend, n):
        from camavg_core import MetricState

        bk = require_backend(backend)
        y_c, o_c = score_pair(n)
        self.y_c, self.o_c = to_backend(backend, y_c), to_backend(backend, o_c)
        self.empty = MetricState.empty()
        self.update = compiled(backend, lambda y, o: MetricState.empty().update(y, o, nan_policy="omit", backend=bk))
        self.state = self.update(self.y_c, self.o_c)
        block(self.state.merge(self.state).drop_sum)  # first eager calls compile their ops
        self.state.result()

    def time_update(self, backend, n):
        block(self.update(self.y_c, self.o_c).drop_sum)

    def time_result(self, backend, n):
        self.state.result()

    def time_merge(self, backend, n):
        block(self.state.merge(self.state).drop_sum)
