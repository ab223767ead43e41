"""The TensorFlow backend of camavg's array protocol.

Plain ``tf`` ops only (no ``tf.experimental.numpy``, which changes TensorFlow process-wide).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from camavg_core.backends import Backend


def _spreads_a_mask(shape: Any, target: Any) -> bool:
    """Whether a mask of static ``shape`` is one channel over images of ``target``'s, (B, H, W,
    1) over (B, H, W, C) or (B, 1, H, W) over (B, C, H, W): a broadcast on an axis of the image."""
    if shape.rank is None or shape.rank < 3 or shape.rank != target.rank:
        return False
    return any(c == 1 and d != 1 for c, d in zip(shape, target))


@functools.cache
def _mask_select() -> Any:
    """``tf.where`` compiled by XLA, for a mask spread over the channels: TF's CPU kernel for a
    select that broadcasts ran 3x as long as XLA's loop (2.1 against 0.6 ms for 32 images of
    96 x 96 x 3, a Deletion step's mask; 2026-12-06). The same values, bit for bit: a select
    computes nothing. Built at first use (one compile per shape)."""
    import tensorflow as tf

    return tf.function(lambda cond, x, y: tf.where(cond, x, y), jit_compile=True, autograph=False)


class TensorFlowBackend(Backend):
    name = "tensorflow"

    def __init__(self) -> None:
        import tensorflow as tf

        self.tf = tf

    def is_appropriate_type(self, x: Any) -> bool:
        return isinstance(x, (self.tf.Tensor, self.tf.Variable))

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        tensor = x if isinstance(x, (self.tf.Tensor, self.tf.Variable)) else self.tf.convert_to_tensor(np.asarray(x))
        return tensor if dtype is None else self.tf.cast(tensor, dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        if isinstance(x, (self.tf.Tensor, self.tf.Variable)):
            return x.numpy()
        return np.asarray(x)

    def is_concrete(self, x: Any) -> bool:
        return not isinstance(x, self.tf.Tensor) or hasattr(x, "numpy") and self.tf.executing_eagerly()

    def dtype_name(self, x: Any) -> str:
        return self.asarray(x).dtype.name

    def to_numpy_dtype(self, x: Any) -> np.dtype:
        return self.asarray(x).dtype.as_numpy_dtype

    def astype(self, x: Any, dtype: str) -> Any:
        return self.tf.cast(x, dtype)

    def shape(self, x: Any) -> tuple[int, ...]:
        static = x.shape
        if static.rank is not None and all(d is not None for d in static):
            return tuple(int(d) for d in static)
        dynamic = self.tf.shape(x)
        return tuple(int(d) if d is not None else dynamic[i] for i, d in enumerate(static))

    def reshape(self, x, shape):
        return self.tf.reshape(x, shape)

    def all_equal(self, x, y):
        if tuple(x.shape) != tuple(y.shape) or x.dtype != y.dtype:
            return False
        return bool(self.tf.reduce_all(self.tf.equal(x, y)))

    def maximum(self, x, y):
        return self.tf.maximum(x, self.tf.cast(y, x.dtype))

    def minimum(self, x, y):
        return self.tf.minimum(x, self.tf.cast(y, x.dtype))

    def where(self, cond, x, y):
        x = self.tf.convert_to_tensor(x)
        y = self.tf.cast(y, x.dtype)
        if isinstance(cond, self.tf.Tensor) and _spreads_a_mask(cond.shape, x.shape):
            return _mask_select()(cond, x, y)
        return self.tf.where(cond, x, y)

    def isfinite(self, x):
        return self.tf.math.is_finite(x)

    def sum(self, x, axis=None):
        return self.tf.reduce_sum(x, axis=axis)

    def min(self, x, axis=None, keepdims=False):
        return self.tf.reduce_min(x, axis=axis, keepdims=keepdims)

    def max(self, x, axis=None, keepdims=False):
        return self.tf.reduce_max(x, axis=axis, keepdims=keepdims)

    def resize_bilinear(self, images, size):
        resized = self.tf.image.resize(images, size, method="bilinear", antialias=False)
        return self.tf.cast(resized, images.dtype)

    def softmax(self, x):
        return self.tf.nn.softmax(x, axis=-1)

    def sigmoid(self, x):
        return self.tf.sigmoid(x)

    def stack(self, arrays):
        return self.tf.stack([self.tf.convert_to_tensor(a) for a in arrays])

    def argsort(self, x, axis=-1, descending=False):
        # descending as the negated values ascending, the rule of every backend: ties in index order
        return self.tf.argsort(-x if descending else x, axis=axis, stable=True)

    def invert_permutation(self, order):
        # the rows as one permutation of all B n places (row b's shifted by b n), inverted by
        # TF's 1-D op: 12x faster than a scatter of every (row, place) pair (64 x 9216: 1.5 ms
        # against 18 ms); int64, so that B n may pass 2**31
        tf = self.tf
        shape = tf.shape(order, out_type=tf.int64)
        offsets = tf.range(shape[0])[:, None] * shape[1]
        flat = tf.reshape(tf.cast(order, tf.int64) + offsets, [-1])
        return tf.cast(tf.reshape(tf.math.invert_permutation(flat), shape) - offsets, order.dtype)

    def einsum(self, subscripts, *operands):
        return self.tf.einsum(subscripts, *[self.tf.convert_to_tensor(o) for o in operands])

    def transpose(self, x, axes):
        # TF's transpose writes the new layout (TF has no views); the default's einsum took
        # 2.4x-3.9x its time on the CPU (64 images of 96 px: 1.9 and 5.9 ms against 0.8 and
        # 1.5 ms, into channels first and back), three times per paired ROAD solve
        return self.tf.transpose(x, axes)

    def inv(self, a):
        return self.tf.linalg.inv(a)

    def spd_inverse(self, a):
        # L^-T L^-1 from the Cholesky factor: exactly symmetric, and 15 ms against 23 ms for
        # LU's inverse and its symmetrisation (64 matrices of 144 x 144)
        tf = self.tf
        factor = tf.linalg.cholesky(a)
        eye = tf.eye(int(a.shape[-1]), batch_shape=tf.shape(a)[:1], dtype=a.dtype)
        lower_inverse = tf.linalg.triangular_solve(factor, eye, lower=True)
        return tf.linalg.matmul(lower_inverse, lower_inverse, transpose_a=True)

    def select_class(self, outputs, indices):
        tf = self.tf
        indices = tf.convert_to_tensor(np.asarray(indices, dtype=np.int32))
        rank = len(outputs.shape)
        if rank > 2:  # move the class axis next to the batch axis, then average the rest
            outputs = tf.transpose(outputs, [0, rank - 1, *range(1, rank - 1)])
            picked = tf.gather(outputs, indices, axis=1, batch_dims=1)
            return tf.reduce_mean(tf.reshape(picked, (tf.shape(picked)[0], -1)), axis=1)
        return tf.gather(outputs, indices, axis=1, batch_dims=1)

    def pad(self, x, widths):
        return self.tf.pad(x, widths)

    def while_loop(self, cond, body, state):
        return tuple(self.tf.while_loop(cond, body, state))

    def impute_fast(self, x, masks, *, tol, max_iter, preconditioner, channels_last, noise):
        # the solver's iteration (and the multigrid's set-up) as XLA kernels
        from camavg_tf.imputation import impute_masks

        return impute_masks(x, masks, tol=tol, max_iter=max_iter, preconditioner=preconditioner,
                            channels_last=channels_last, noise=noise)
