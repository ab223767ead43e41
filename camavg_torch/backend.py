"""The PyTorch backend of camavg's array protocol.

Plain ``torch`` operations that keep every result on its operands' device (a NumPy operand, such
as class indices, is moved there), so masking and scoring run where the inputs live and only
scalars and (N,) vectors reach the host. The bilinear resize is ``F.interpolate`` with
``align_corners=False`` and no antialiasing: half-pixel centres, the numbers of
``tf.image.resize``.

>>> import torch
>>> from camavg_core import drop_terms
>>> drop_terms(torch.tensor([0.8, 0.5]), torch.tensor([0.2, 0.6])).round(decimals=4).tolist()
[0.75, 0.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from camavg_core.backends import Backend


class TorchBackend(Backend):
    """camavg's array operations on ``torch.Tensor``."""

    name = "torch"
    in_place_slices = True

    def __init__(self) -> None:
        import torch
        import torch.nn.functional as F

        self.torch, self.F = torch, F

    def is_appropriate_type(self, x: Any) -> bool:
        return isinstance(x, self.torch.Tensor)

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        tensor = x if isinstance(x, self.torch.Tensor) else self.torch.as_tensor(np.asarray(x))
        if dtype is None or isinstance(dtype, self.torch.dtype):
            return tensor if dtype is None else tensor.to(dtype)
        return tensor.to(getattr(self.torch, dtype if isinstance(dtype, str) else np.dtype(dtype).name))

    def to_numpy(self, x: Any) -> np.ndarray:
        if not isinstance(x, self.torch.Tensor):
            return np.asarray(x)
        if x.dtype == self.torch.bfloat16 or (x.is_floating_point() and x.element_size() == 1):
            x = x.float()  # NumPy has no bfloat16 or float8
        return x.detach().cpu().numpy()

    def dtype_name(self, x: Any) -> str:
        return str(x.dtype).removeprefix("torch.") if isinstance(x, self.torch.Tensor) else np.asarray(x).dtype.name

    def to_numpy_dtype(self, x: Any) -> np.dtype:
        if x.dtype == self.torch.bfloat16:
            import ml_dtypes

            return np.dtype(ml_dtypes.bfloat16)
        return self.torch.empty(0, dtype=x.dtype).numpy().dtype

    def astype(self, x: Any, dtype: str) -> Any:
        return self.asarray(x, dtype)

    def reshape(self, x, shape):
        return self.torch.reshape(x, tuple(shape))

    def all_equal(self, x, y):
        return tuple(x.shape) == tuple(y.shape) and x.dtype == y.dtype and bool(self.torch.equal(x, y.to(x.device)))

    # a NumPy operand goes to the tensor's device (as_tensor leaves a tensor already there as it is)
    def maximum(self, x, y):
        return self.torch.clamp(x, min=y) if isinstance(y, (int, float)) else self.torch.maximum(x, self.torch.as_tensor(y, device=x.device))

    def minimum(self, x, y):
        return self.torch.clamp(x, max=y) if isinstance(y, (int, float)) else self.torch.minimum(x, self.torch.as_tensor(y, device=x.device))

    def where(self, cond, x, y):
        x = x if isinstance(x, self.torch.Tensor) else self.torch.as_tensor(x)
        y = y if isinstance(y, (int, float)) else self.torch.as_tensor(y, device=x.device, dtype=x.dtype)
        return self.torch.where(self.torch.as_tensor(cond, device=x.device), x, y)

    def isfinite(self, x):
        return self.torch.isfinite(x)

    def sum(self, x, axis=None):
        return x.sum() if axis is None else x.sum(dim=axis)

    def min(self, x, axis=None, keepdims=False):
        return x.min() if axis is None else self.torch.amin(x, dim=axis, keepdim=keepdims)

    def max(self, x, axis=None, keepdims=False):
        return x.max() if axis is None else self.torch.amax(x, dim=axis, keepdim=keepdims)

    def resize_bilinear(self, images, size):
        # (N, h, w, C) -> (N, C, h, w) for interpolate, and back
        resized = self.F.interpolate(images.permute(0, 3, 1, 2), size=tuple(int(s) for s in size), mode="bilinear",
                                     align_corners=False, antialias=False)
        return resized.permute(0, 2, 3, 1).to(images.dtype)

    def softmax(self, x):
        return self.torch.softmax(x, dim=-1)

    def sigmoid(self, x):
        return self.torch.sigmoid(x)

    def stack(self, arrays):
        return self.torch.stack([a if isinstance(a, self.torch.Tensor) else self.torch.as_tensor(a) for a in arrays])

    def argsort(self, x, axis=-1, descending=False):
        return self.torch.sort(-x if descending else x, dim=axis, stable=True).indices

    def invert_permutation(self, order):
        places = self.torch.arange(order.shape[1], device=order.device, dtype=order.dtype).expand_as(order)
        return self.torch.empty_like(order).scatter_(1, order, places)

    def einsum(self, subscripts, *operands):
        device = next((o.device for o in operands if isinstance(o, self.torch.Tensor)), None)
        return self.torch.einsum(subscripts, *[self.torch.as_tensor(o, device=device) for o in operands])

    def transpose(self, x, axes):
        return x.permute(*axes).contiguous()

    def inv(self, a):
        return self.torch.linalg.inv(a)

    def compiled(self, function: Any, static_argnums: tuple[int, ...]) -> Any:
        """``function`` run as written, also inside a ``torch.compile``-d pass
        (``AveragesCam(..., compile=True)``), where dynamo would trace it: ROAD's solver loops
        until its residual is small enough, a value dynamo breaks its graph on at every
        iteration, and tracing its exact level's set-up failed inside torch (a guard on a
        tensor made from a NumPy array under ``inference_mode``, torch 2.13)."""
        return self.torch.compiler.disable(function)

    def select_class(self, outputs, indices):
        classes = self.torch.as_tensor(np.asarray(indices, dtype=np.int64), device=outputs.device)
        rows = self.torch.arange(outputs.shape[0], device=outputs.device)
        if outputs.ndim > 2:  # e.g. per-pixel outputs: pick the class, average the rest
            picked = self.torch.movedim(outputs, -1, 1)[rows, classes]
            return picked.reshape(outputs.shape[0], -1).mean(dim=1)
        return outputs[rows, classes]

    def pad(self, x, widths):
        flat = [w for pair in reversed(list(widths)) for w in pair]  # torch lists the last axis first
        return self.F.pad(x, flat)
