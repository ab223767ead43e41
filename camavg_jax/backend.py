"""The JAX backend of camavg's array protocol.

Every method is a plain ``jax.numpy`` / ``jax.image`` operation with static shapes, so the core's
equations, streaming state and masking run unchanged on ``jax.Array`` values and under
``jax.jit``. Concrete-value checks live outside (``is_concrete`` tells the core when it is
looking at a tracer).

>>> import jax.numpy as jnp
>>> from camavg_core import drop_terms
>>> drop_terms(jnp.array([0.8, 0.5]), jnp.array([0.2, 0.6])).round(4).tolist()
[0.75, 0.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from camavg_core.backends import Backend


class JaxBackend(Backend):
    """camavg's array operations on ``jax.Array`` (tracers included)."""

    name = "jax"

    def __init__(self) -> None:
        import jax
        import jax.numpy as jnp
        from jax import core

        self.jax = jax
        self.jnp = jnp
        self._tracer_type = core.Tracer

    def is_appropriate_type(self, x: Any) -> bool:
        return isinstance(x, self.jax.Array)

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        return self.jnp.asarray(x, dtype=dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(self.jax.device_get(x))

    def is_concrete(self, x: Any) -> bool:
        return not isinstance(x, self._tracer_type)

    def to_numpy_dtype(self, x: Any) -> np.dtype:
        dtype = getattr(x, "dtype", None)
        return np.dtype(dtype) if dtype is not None else np.asarray(x).dtype

    def astype(self, x: Any, dtype: str) -> Any:
        return self.jnp.asarray(x).astype(dtype)

    def reshape(self, x, shape):
        return self.jnp.reshape(x, shape)

    def all_equal(self, x, y):
        if tuple(x.shape) != tuple(y.shape) or x.dtype != y.dtype:
            return False
        return bool(self.jnp.array_equal(x, y))

    def maximum(self, x, y):
        return self.jnp.maximum(x, y)

    def minimum(self, x, y):
        return self.jnp.minimum(x, y)

    def where(self, cond, x, y):
        return self.jnp.where(cond, x, y)

    def isfinite(self, x):
        return self.jnp.isfinite(x)

    def sum(self, x, axis=None):
        return self.jnp.sum(x, axis=axis)

    def min(self, x, axis=None, keepdims=False):
        return self.jnp.min(x, axis=axis, keepdims=keepdims)

    def max(self, x, axis=None, keepdims=False):
        return self.jnp.max(x, axis=axis, keepdims=keepdims)

    def resize_bilinear(self, images, size):
        # jax.image's "linear" kernel uses half-pixel centres and, without antialiasing,
        # renormalises the weights at the borders: the same numbers as tf.image.resize(bilinear)
        images = self.jnp.asarray(images)
        batch, _, _, channels = images.shape
        resized = self.jax.image.resize(
            images, (batch, int(size[0]), int(size[1]), channels), method="linear", antialias=False
        )
        return resized.astype(images.dtype)

    def softmax(self, x):
        return self.jax.nn.softmax(x, axis=-1)

    def sigmoid(self, x):
        return self.jax.nn.sigmoid(x)

    def stack(self, arrays):
        return self.jnp.stack([self.jnp.asarray(a) for a in arrays])

    def argsort(self, x, axis=-1, descending=False):
        x = self.jnp.asarray(x)
        return self.jnp.argsort(-x if descending else x, axis=axis, stable=True)

    def invert_permutation(self, order):
        jnp = self.jnp
        rows = jnp.arange(order.shape[0])[:, None]
        return jnp.zeros_like(order).at[rows, order].set(jnp.broadcast_to(jnp.arange(order.shape[1], dtype=order.dtype), order.shape))

    def einsum(self, subscripts, *operands):
        return self.jnp.einsum(subscripts, *operands)

    def inv(self, a):
        return self.jnp.linalg.inv(a)

    def materialise(self, x):
        # XLA fuses the ops that make a value into each of its uses and recomputes them there:
        # the slices and sums that make ROAD's coarse levels at every use (the solver compiled
        # for 9 s and ran 100x slower), a V-cycle level's restricted residual at each pixel of
        # the level above. An optimization barrier says "compute once"; XLA's CPU compiler
        # (jaxlib 0.10) removes barriers before it fuses, so on the CPU a floating value passes
        # through a conditional instead, which XLA neither fuses across nor folds: its
        # predicate, an odd integer (the first value's bits, or 1) compared with 0, is always
        # true, and the branch never taken gives NaN, not a number that could pass for one
        # (a 64-image paired solve at 96 px: 0.22-0.26 s against 0.91-1.06 s). On accelerators,
        # where a conditional's predicate goes to the host, the barrier.
        jax, jnp = self.jax, self.jnp
        x = jnp.asarray(x)
        if jax.default_backend() != "cpu" or not jnp.issubdtype(x.dtype, jnp.floating) or x.size == 0:
            return jax.lax.optimization_barrier(x)
        bits = jax.lax.bitcast_convert_type(x.reshape(-1)[0], jnp.dtype(f"uint{8 * x.dtype.itemsize}"))
        return jax.lax.cond((bits | 1) != 0, lambda v: v, lambda v: jnp.full_like(v, jnp.nan), x)

    def select_class(self, outputs, indices):
        jnp = self.jnp
        outputs = jnp.asarray(outputs)
        rows = jnp.arange(outputs.shape[0])
        classes = jnp.asarray(np.asarray(indices, dtype=np.int32))
        if outputs.ndim > 2:  # e.g. per-pixel outputs: pick the class, average the rest
            picked = jnp.moveaxis(outputs, -1, 1)[rows, classes]
            return jnp.mean(jnp.reshape(picked, (outputs.shape[0], -1)), axis=1)
        return outputs[rows, classes]

    def pad(self, x, widths):
        return self.jnp.pad(x, widths)

    def while_loop(self, cond, body, state):
        return tuple(self.jax.lax.while_loop(lambda s: cond(*s), lambda s: body(*s), tuple(state)))

    def compiled(self, function, static_argnums):
        # ROAD's generic solver as one jit program per shape: an eager call would run its set-up
        # op by op, each op compiled at the first sight of its shapes (a pair of 6 images of 40 px
        # on the 2-core VM, 2026-12-06: 4.4 s the first call and 0.39 s after, jitted 1.6 s and
        # 0.02 s); under an outer jit (ROAD's compiled pass) the program is inlined. No state of
        # camavg's: the wrapper is made per call, and JAX's own cache, keyed on the function,
        # the static arguments and the arrays' shapes and dtypes, holds the program
        return self.jax.jit(function, static_argnums=static_argnums)
