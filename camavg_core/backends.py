"""The array operations the equations and masking need, one backend per framework.

The registry follows einops' ``get_backend``: a backend is created only for a framework that is
already in ``sys.modules``, so camavg never imports TensorFlow, JAX or PyTorch on a user's behalf. The
frameworks' backends live in their adapters (``camavg_tf``, ``camavg_jax``, ``camavg_torch``) and are
registered here by module path, imported the first time an array of theirs is seen.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import numpy as np

from camavg_core import validation as errors

# framework module that must already be imported -> (backend module, class name)
_LAZY_BACKENDS: dict[str, tuple[str, str]] = {
    "tensorflow": ("camavg_tf.backend", "TensorFlowBackend"),
    "jax": ("camavg_jax.backend", "JaxBackend"),
    "torch": ("camavg_torch.backend", "TorchBackend"),
}
_NAME_TO_FRAMEWORK = {"tensorflow": "tensorflow", "tf": "tensorflow", "jax": "jax", "torch": "torch", "pytorch": "torch"}


def work_dtype(*dtype_names: str, host: bool = False) -> str:
    """The float dtype camavg computes in: float64 when any of the arrays is float64 (always on
    the host, ``host=True``), else float32: never float16 or bfloat16, whose 3 significant
    digits would round the averages and the CAMs.

    >>> work_dtype("float16"), work_dtype("float32", "float64"), work_dtype("float32", host=True)
    ('float32', 'float64', 'float64')
    """
    return "float64" if host or "float64" in dtype_names else "float32"


class Backend:
    """The operations camavg needs from an array library.

    Subclasses import their framework in ``__init__``. Every method takes and returns the
    backend's own arrays, except ``to_numpy`` and the concrete scalar readers.

    ``pad``, ``transpose`` and ``while_loop`` are the control and shape ops of ROAD's solver
    (:mod:`camavg_core.imputation`), ``inv`` its one linear-algebra op; ``while_loop`` runs in
    Python unless the framework traces. ``spd_inverse`` and ``materialise`` have defaults that
    a backend may refine.
    ``impute_fast`` is an optional hook: a backend with its own solver for some of ROAD's
    imputations (TensorFlow's XLA kernels) returns its result there, and None (the default)
    sends :func:`camavg_core.imputation.impute` on to the generic solver, which runs as
    ``compiled`` makes it (JAX: one ``jax.jit`` program; the default: as written).
    """

    name: str = "abstract"
    #: ``a[index] += b`` adds into ``a`` in place (PyTorch): the ROAD solver's neighbour sums
    #: then skip the padded copy of their operand (:func:`camavg_core.imputation.neighbour_sum`)
    in_place_slices: bool = False

    def is_appropriate_type(self, x: Any) -> bool:
        raise NotImplementedError

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        raise NotImplementedError

    def to_numpy(self, x: Any) -> np.ndarray:
        raise NotImplementedError

    def is_concrete(self, x: Any) -> bool:
        """False for values being traced (``jax.jit``, ``tf.function`` graphs)."""
        return True

    def dtype_name(self, x: Any) -> str:
        return np.dtype(self.to_numpy_dtype(x)).name

    def to_numpy_dtype(self, x: Any) -> np.dtype:
        raise NotImplementedError

    def astype(self, x: Any, dtype: str) -> Any:
        raise NotImplementedError

    def compute_dtype(self, x: Any) -> str:
        """The float dtype the equations run in: float64 stays, anything else is float32.

        Never float16 or bfloat16: their 3 significant digits would round the averages.
        """
        return work_dtype(self.dtype_name(x))

    def shape(self, x: Any) -> tuple[int, ...]:
        return tuple(int(d) for d in x.shape)

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        raise NotImplementedError

    def all_equal(self, x: Any, y: Any) -> bool:
        """Whether two arrays have the same shape and values (a concrete bool on the host)."""
        raise NotImplementedError

    def maximum(self, x: Any, y: Any) -> Any:
        raise NotImplementedError

    def minimum(self, x: Any, y: Any) -> Any:
        raise NotImplementedError

    def where(self, cond: Any, x: Any, y: Any) -> Any:
        raise NotImplementedError

    def isfinite(self, x: Any) -> Any:
        raise NotImplementedError

    def sum(self, x: Any, axis: Any = None) -> Any:
        raise NotImplementedError

    def min(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        raise NotImplementedError

    def max(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        raise NotImplementedError

    def resize_bilinear(self, images: Any, size: tuple[int, int]) -> Any:
        """Resize (N, h, w, C) to (N, H, W, C), half-pixel centres, no antialiasing."""
        raise NotImplementedError

    def softmax(self, x: Any) -> Any:
        """The softmax over the last axis."""
        raise NotImplementedError

    def sigmoid(self, x: Any) -> Any:
        raise NotImplementedError

    def stack(self, arrays: list) -> Any:
        raise NotImplementedError

    def argsort(self, x: Any, axis: int = -1, descending: bool = False) -> Any:
        """Indices that sort ``x`` along ``axis``, stable: equal values keep their index order
        (also when ``descending``), so a ranking of CAM values breaks ties the same way on
        every backend."""
        raise NotImplementedError

    def invert_permutation(self, order: Any) -> Any:
        """For (B, n) rows of permutations of 0..n-1, each row's inverse: ``out[b, order[b, i]]
        = i`` (a scatter, which costs less than sorting ``order`` again)."""
        raise NotImplementedError

    def einsum(self, subscripts: str, *operands: Any) -> Any:
        """NumPy's ``einsum`` (explicit ``->`` form, lower-case letters). NumPy operands become
        the backend's arrays on the device of the first array that is not NumPy's."""
        raise NotImplementedError

    def transpose(self, x: Any, axes: tuple[int, ...]) -> Any:
        """``x`` with its axes in the order ``axes`` (``np.transpose``'s), laid out in that
        order (a view with permuted strides, as NumPy and PyTorch give, would leave every
        later op running in the old order). The default: ``einsum``."""
        letters = "abcdefghijklmnopqrstuvwxyz"[: len(axes)]
        return self.einsum(f"{letters}->{''.join(letters[a] for a in axes)}", x)

    def inv(self, a: Any) -> Any:
        """The inverses of a batch of (B, n, n) invertible matrices."""
        raise NotImplementedError

    def spd_inverse(self, a: Any) -> Any:
        """The inverses of a batch of (B, n, n) symmetric positive definite matrices, exactly
        symmetric (ROAD's exact coarse solve: CG wants a symmetric preconditioner). The
        default: ``inv``'s, symmetrised as (A^-1 + A^-T) / 2 (an LU inverse is symmetric only
        to rounding)."""
        inverse = self.inv(a)
        return (inverse + self.transpose(inverse, (0, 2, 1))) * 0.5

    def materialise(self, x: Any) -> Any:
        """``x``, computed once where the framework would fuse the ops that make it into each
        of its uses (ROAD's solver sets up coarse levels and weights once per solve and uses
        them every iteration). The default: ``x`` itself (frameworks that run ops as given)."""
        return x

    def select_class(self, outputs: Any, indices: np.ndarray) -> Any:
        """(N,) scores: ``outputs[i, ..., indices[i]]``, averaged over any middle axes."""
        raise NotImplementedError

    def pad(self, x: Any, widths: Any) -> Any:
        """``x`` zero-padded by ``widths``, one (before, after) pair per axis (``np.pad``'s)."""
        raise NotImplementedError

    def while_loop(self, cond: Any, body: Any, state: tuple) -> tuple:
        """``while cond(*state): state = body(*state)``, the final state as a tuple; one graph
        loop where the framework traces (not ``max_iter`` unrolled copies), else Python's."""
        while bool(cond(*state)):
            state = tuple(body(*state))
        return tuple(state)

    def compiled(self, function: Any, static_argnums: tuple[int, ...]) -> Any:
        """``function`` as one compiled program where the framework compiles whole functions
        (JAX's ``jax.jit``, with ``static_argnums`` the arguments that are not arrays), so that
        a call outside any compiled pass does not dispatch its ops one by one; the default:
        ``function`` itself (frameworks that run ops as given, or trace them where they are
        called, as ``tf.function`` does)."""
        return function

    def impute_fast(self, x: Any, masks: tuple, *, tol: float, max_iter: int, preconditioner: str,
                    channels_last: bool, noise: Any) -> Any:
        """ROAD's imputation by this backend's own solver, or None where it has none (the
        default): ``(outputs, iterations)``, one output per mask of ``masks`` (one, or two
        disjoint ones solved in one field: :func:`camavg_core.imputation.impute_pair`), each
        plus ``noise`` (shaped as ``x``, or None) at its removed pixels, with
        :func:`camavg_core.imputation.impute`'s other arguments. ``x`` is (B, H, W, C) with
        ``channels_last``, else (B, C, H, W), the masks, the noise and the outputs likewise
        (the masks with one channel), in the compute dtype, ``preconditioner`` resolved."""
        return None

    def __repr__(self) -> str:
        return f"<camavg backend {self.name!r}>"


class NumpyBackend(Backend):
    """The reference backend: plain NumPy, float64 wherever precision is a choice."""

    name = "numpy"

    def is_appropriate_type(self, x: Any) -> bool:
        return isinstance(x, (np.ndarray, np.generic))

    def asarray(self, x: Any, dtype: Any = None) -> np.ndarray:
        return np.asarray(x, dtype=dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def to_numpy_dtype(self, x: Any) -> np.dtype:
        return np.asarray(x).dtype

    def compute_dtype(self, x: Any) -> str:
        return "float64"

    def astype(self, x: Any, dtype: str) -> np.ndarray:
        return np.asarray(x).astype(dtype, copy=False)

    def reshape(self, x, shape):
        return np.reshape(x, shape)

    def all_equal(self, x, y):
        return bool(np.array_equal(x, y))

    def maximum(self, x, y):
        return np.maximum(x, y)

    def minimum(self, x, y):
        return np.minimum(x, y)

    def where(self, cond, x, y):
        return np.where(cond, x, y)

    def isfinite(self, x):
        return np.isfinite(x)

    def sum(self, x, axis=None):
        return np.sum(x, axis=axis)

    def min(self, x, axis=None, keepdims=False):
        return np.min(x, axis=axis, keepdims=keepdims)

    def max(self, x, axis=None, keepdims=False):
        return np.max(x, axis=axis, keepdims=keepdims)

    def resize_bilinear(self, images, size):
        return resize_bilinear_numpy(images, size)

    def softmax(self, x):
        exp = np.exp(x - np.max(x, axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)

    def sigmoid(self, x):
        return 1.0 / (1.0 + np.exp(-np.asarray(x)))

    def stack(self, arrays):
        return np.stack([np.asarray(a) for a in arrays])

    def argsort(self, x, axis=-1, descending=False):
        # descending by sorting the negated values: ties then keep their index order too
        return np.argsort(-np.asarray(x) if descending else x, axis=axis, kind="stable")

    def invert_permutation(self, order):
        order = np.asarray(order)
        inverse = np.empty_like(order)
        np.put_along_axis(inverse, order, np.broadcast_to(np.arange(order.shape[1], dtype=order.dtype), order.shape), axis=1)
        return inverse

    def einsum(self, subscripts, *operands):
        return np.einsum(subscripts, *operands)

    def transpose(self, x, axes):
        return np.ascontiguousarray(np.transpose(x, axes))

    def inv(self, a):
        return np.linalg.inv(a)

    def pad(self, x, widths):
        return np.pad(x, widths)

    def select_class(self, outputs, indices):
        outputs = np.asarray(outputs)
        picked = outputs[np.arange(outputs.shape[0]), ..., np.asarray(indices)]
        if picked.ndim > 1:  # the class axis moved to the front with advanced indexing
            picked = picked.reshape(picked.shape[0], -1).mean(axis=1)
        return picked


def _interpolation_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower index, upper index and upper weight of half-pixel-centre linear interpolation."""
    scale = in_size / out_size
    centres = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    centres = np.clip(centres, 0.0, in_size - 1)
    lower = np.floor(centres).astype(np.int64)
    upper = np.minimum(lower + 1, in_size - 1)
    return lower, upper, centres - lower


def resize_bilinear_numpy(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (N, h, w, C) with half-pixel centres, as ``tf.image.resize`` does."""
    images = np.asarray(images)
    out_dtype = images.dtype if np.issubdtype(images.dtype, np.floating) else np.float64
    work = images.astype(np.float64)
    rows_lo, rows_hi, row_w = _interpolation_weights(work.shape[1], size[0])
    cols_lo, cols_hi, col_w = _interpolation_weights(work.shape[2], size[1])
    row_w = row_w[None, :, None, None]
    col_w = col_w[None, None, :, None]
    rows = work[:, rows_lo] * (1 - row_w) + work[:, rows_hi] * row_w
    out = rows[:, :, cols_lo] * (1 - col_w) + rows[:, :, cols_hi] * col_w
    return out.astype(out_dtype)


_NUMPY = NumpyBackend()
_loaded: dict[str, Backend] = {"numpy": _NUMPY}


def _load(framework: str) -> Backend:
    if framework not in _loaded:
        module_name, class_name = _LAZY_BACKENDS[framework]
        module = importlib.import_module(module_name)
        _loaded[framework] = getattr(module, class_name)()
    return _loaded[framework]


def resolve_backend(backend: str | Backend | None = None, *arrays: Any) -> Backend:
    """The backend named by ``backend``, or else the one the arrays belong to.

    ``backend`` may be a :class:`Backend`, or a name: ``"numpy"``, ``"tensorflow"`` (``"tf"``),
    ``"jax"`` or ``"torch"``. With ``None``, the first array that is not a Python scalar or list decides; a
    framework is only considered when the user has already imported it.

    >>> import numpy as np
    >>> resolve_backend(None, np.zeros(3)).name
    'numpy'
    >>> resolve_backend("numpy").name
    'numpy'
    """
    if isinstance(backend, Backend):
        return backend
    if backend is not None:
        if not isinstance(backend, str):
            raise TypeError(errors.bad_backend_type(backend))
        key = backend.lower()
        if key == "numpy":
            return _NUMPY
        if key not in _NAME_TO_FRAMEWORK:
            raise ValueError(errors.unknown_backend(backend, ["numpy", *_LAZY_BACKENDS]))
        return _load(_NAME_TO_FRAMEWORK[key])
    for array in arrays:
        found = _backend_of(array)
        if found is not None:
            return found
    return _NUMPY


def get_backend(array: Any) -> Backend:
    """The backend an array belongs to (NumPy for Python scalars and lists).

    Raises ``TypeError`` for array types of no known framework.
    """
    found = _backend_of(array)
    if found is not None:
        return found
    if isinstance(array, (int, float, bool, list, tuple, np.generic)):
        return _NUMPY
    raise TypeError(errors.unknown_array_type(array))


def _backend_of(array: Any) -> Backend | None:
    for backend in list(_loaded.values()):
        if backend.is_appropriate_type(array):
            return backend
    for framework in _LAZY_BACKENDS:
        if framework in sys.modules and framework not in _loaded:
            try:
                backend = _load(framework)
            except ImportError:
                # the adapter cannot load (its framework is broken or too old): its arrays are
                # not ours to read, and other frameworks' arrays must not fail because of it
                continue
            if backend.is_appropriate_type(array):
                return backend
    return None
