r"""The per-sample terms of Average Drop, Average Increase and Average Gain, and their averages.

For N samples, :math:`Y_i` is the model's score for the target class on input :math:`x_i`, and
:math:`O_i` the same score on the masked input :math:`x_i \odot L_i`:

.. math::

    \mathrm{drop}_i = \frac{\max(0, Y_i - O_i)}{Y_i + \epsilon}, \qquad
    \mathrm{increase}_i = [Y_i < O_i], \qquad
    \mathrm{gain}_i = \frac{\max(0, O_i - Y_i)}{1 - Y_i + \epsilon}

with :math:`\epsilon = 10^{-7}` (Keras' epsilon, also used by torchcam and xplique). Each average
is ``100 * mean(terms)``, a percentage.

The ``*_terms`` functions are pure and run unchanged under ``jax.jit`` and ``tf.function``; the
``avg_*`` functions check their input and return a Python float.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from camavg_core import validation
from camavg_core.backends import Backend, resolve_backend

EPSILON = 1e-7


def _as_float_pair(y_c: Any, o_c: Any, backend: Backend) -> tuple[Any, Any]:
    y = backend.asarray(y_c)
    o = backend.asarray(o_c)
    dtype = "float64" if "float64" in (backend.compute_dtype(y), backend.compute_dtype(o)) else "float32"
    if backend.name == "numpy":
        dtype = "float64"
    return backend.astype(y, dtype), backend.astype(o, dtype)


def drop_terms(y_c: Any, o_c: Any, *, backend: str | Backend | None = None) -> Any:
    r"""Per-sample drop, :math:`\max(0, Y_i - O_i) / (Y_i + \epsilon)`.

    >>> drop_terms([0.8, 0.5], [0.2, 0.6]).round(6)
    array([0.75, 0.  ])
    """
    bk = resolve_backend(backend, y_c, o_c)
    y, o = _as_float_pair(y_c, o_c, bk)
    return bk.maximum(y - o, 0.0) / (y + EPSILON)


def increase_terms(y_c: Any, o_c: Any, *, backend: str | Backend | None = None) -> Any:
    r"""Per-sample increase, :math:`[Y_i < O_i]`, as 0.0 or 1.0.

    >>> increase_terms([0.8, 0.5, 0.5], [0.2, 0.6, 0.5])
    array([0., 1., 0.])
    """
    bk = resolve_backend(backend, y_c, o_c)
    y, o = _as_float_pair(y_c, o_c, bk)
    return bk.astype(y < o, bk.dtype_name(y))


def gain_terms(y_c: Any, o_c: Any, *, backend: str | Backend | None = None) -> Any:
    r"""Per-sample gain, :math:`\max(0, O_i - Y_i) / (1 - Y_i + \epsilon)`.

    >>> gain_terms([0.8, 0.5], [0.9, 0.4]).round(6)
    array([0.5, 0. ])
    """
    bk = resolve_backend(backend, y_c, o_c)
    y, o = _as_float_pair(y_c, o_c, bk)
    return bk.maximum(o - y, 0.0) / (1.0 - y + EPSILON)


def _checked_vectors(
    y_c: Any,
    o_c: Any,
    nan_policy: str,
    *,
    allow_empty: bool = False,
    names: tuple[str, str] = ("Y_c", "O_c"),
) -> tuple[np.ndarray, np.ndarray]:
    """Concrete NumPy copies of the score vectors, checked; used by the ``avg_*`` functions.

    ``allow_empty`` is for the streaming state, where an empty batch (a replica's share of
    an uneven last batch) adds nothing.
    """
    validation.check_nan_policy(nan_policy)
    y = validation.as_score_vector(_to_numpy(y_c), names[0])
    o = validation.as_score_vector(_to_numpy(o_c), names[1])
    if not (allow_empty and y.size == 0 and o.size == 0):
        validation.check_pair(y, o, names)
    validation.check_finite(y, names[0], nan_policy)
    validation.check_finite(o, names[1], nan_policy)
    return y, o


def _to_numpy(values: Any) -> Any:
    if isinstance(values, (list, tuple, int, float, bool, np.ndarray, np.generic)) or values is None:
        return values
    from camavg_core.backends import get_backend

    try:
        backend = get_backend(values)
    except TypeError:
        return values  # not an array of any backend: as_score_vector's error names the argument
    return backend.to_numpy(values)


def _mean_percent(terms: Any, valid: np.ndarray, backend: Backend) -> float:
    values = backend.to_numpy(terms).astype(np.float64)[valid]
    if values.size == 0:
        raise ValueError("Every sample was skipped as non-finite: there is nothing to average.")
    return float(100.0 * values.mean())


def _average(kind: str, y_c: Any, o_c: Any, backend, nan_policy: str) -> float:
    bk = resolve_backend(backend, y_c, o_c)
    y, o = _checked_vectors(y_c, o_c, nan_policy)
    valid = np.isfinite(y) & np.isfinite(o)
    # left-out pairs enter the terms as zeros, so inf - inf raises no warning on the way
    y, o = np.where(valid, y, 0.0), np.where(valid, o, 0.0)
    if kind == "drop":
        validation.check_probabilities(y, "Average Drop", upper=False)
        validation.check_probabilities(o, "Average Drop", upper=False, argument="O_c")
        terms = drop_terms(bk.asarray(y), bk.asarray(o), backend=bk)
    elif kind == "gain":
        validation.check_probabilities(y, "Average Gain", upper=True)
        validation.check_probabilities(o, "Average Gain", upper=True, argument="O_c")
        terms = gain_terms(bk.asarray(y), bk.asarray(o), backend=bk)
    else:
        terms = increase_terms(bk.asarray(y), bk.asarray(o), backend=bk)
    return _mean_percent(terms, valid, bk)


def avg_drop(Y_c: Any, O_c: Any, *, nan_policy: str = "raise", backend=None) -> float:
    r"""Average Drop in percent: :math:`100 \cdot \frac{1}{N}\sum_i \mathrm{drop}_i`.

    Args:
        Y_c: scores of the target class on the inputs, shape (N,), probabilities.
        O_c: scores of the same class on the masked inputs, shape (N,).
        nan_policy: ``'raise'`` (default) on a non-finite score, or ``'omit'`` to leave it out.
        backend: ``'numpy'``, ``'tensorflow'``, ``'jax'`` or a Backend; by default the arrays'.

    >>> avg_drop([0.8, 0.5], [0.2, 0.6])  # (0.6 / 0.8 + 0) / 2 = 0.375
    37.49999...
    """
    return _average("drop", Y_c, O_c, backend, nan_policy)


def avg_increase(Y_c: Any, O_c: Any, *, nan_policy: str = "raise", backend=None) -> float:
    r"""Average Increase in percent: :math:`100 \cdot \frac{1}{N}\sum_i [Y_i < O_i]`.

    Defined for any score, logits included.

    >>> avg_increase([0.8, 0.5, 0.5, 0.1], [0.2, 0.6, 0.5, 0.3])  # 2 of 4 increase
    50.0
    """
    return _average("increase", Y_c, O_c, backend, nan_policy)


def avg_gain(Y_c: Any, O_c: Any, *, nan_policy: str = "raise", backend=None) -> float:
    r"""Average Gain in percent: :math:`100 \cdot \frac{1}{N}\sum_i \mathrm{gain}_i`.

    >>> avg_gain([0.8, 0.5], [0.9, 0.4])  # (0.1 / 0.2 + 0) / 2 = 0.25
    24.99999...
    """
    return _average("gain", Y_c, O_c, backend, nan_policy)
