r"""Deletion and insertion curves: the pixel counts of their steps, their baselines, and the
per-sample area under a curve.

For an input of :math:`P = H \times W` pixels, ``steps`` = :math:`K` and ``max_fraction`` =
:math:`f`, step :math:`i = 0, \dots, K` perturbs the

.. math::

    k_i = \left\lfloor \frac{i \, \lfloor P f \rfloor}{K} \right\rfloor

most salient pixels (the CAM's order, highest first, ties by row-major index). A sample's curve
is its scores :math:`s_0, \dots, s_K` at these steps; its area is the trapezoid rule over the
fraction axis scaled to [0, 1] (:func:`auc_terms`). The perturbations themselves are
:class:`camavg_core.perturbations.Deletion` and :class:`camavg_core.perturbations.Insertion`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from camavg_core.backends import Backend, resolve_backend, work_dtype

#: RISE's blur: a Gaussian of 11 taps (radius 5) and sigma 5, per channel.
BLUR_RADIUS = 5
BLUR_SIGMA = 5.0


def pixel_counts(n_pixels: int, steps: int, max_fraction: float = 1.0) -> np.ndarray:
    r"""(K + 1,) int64: :math:`k_i = \lfloor i \lfloor P f \rfloor / K \rfloor`, in integer
    arithmetic (``floor(P * f)`` is the only float step, as in xplique).

    >>> pixel_counts(164, 20)[15], pixel_counts(100, 4, 0.5).tolist()
    (np.int64(123), [0, 12, 25, 37, 50])
    """
    reach = int(math.floor(n_pixels * max_fraction))
    return np.arange(steps + 1, dtype=np.int64) * reach // steps


def auc_terms(curve: Any, *, backend: str | Backend | None = None) -> Any:
    r"""Per-sample area under (N, K + 1) curves, the trapezoid rule over the fraction axis
    scaled to [0, 1]:

    .. math::

        \mathrm{AUC}_n = \frac{1}{K} \left( \frac{s_{n,0}}{2} + s_{n,1} + \dots + s_{n,K-1}
        + \frac{s_{n,K}}{2} \right)

    Pure (runs under ``jax.jit`` and ``tf.function``); float64 on NumPy.

    >>> auc_terms(np.array([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0]])).tolist()
    [0.5, 1.0]
    """
    bk = resolve_backend(backend, curve)
    values = bk.asarray(curve)
    values = bk.astype(values, "float64" if bk.name == "numpy" else bk.compute_dtype(values))
    intervals = bk.shape(values)[1] - 1
    inner = bk.sum(values[:, 1:-1], axis=1)
    return (values[:, 0] / 2 + inner + values[:, -1] / 2) / intervals


def full_curve(y_c: Any, step_scores: Any, reuses_plain: str | None, *, backend: str | Backend | None = None) -> Any:
    """(N, K + 1) curves from the plain scores ``y_c`` (N,) and the (rows, N) scores of a
    perturbation's steps: ``reuses_plain`` "first" puts ``y_c`` before the rows (deletion's
    :math:`k_0 = 0`), "last" after them (insertion's :math:`k_K = P`), None leaves it out.

    >>> full_curve(np.array([0.9, 0.8]), np.array([[0.5, 0.4], [0.1, 0.0]]), "first").tolist()
    [[0.9, 0.5, 0.1], [0.8, 0.4, 0.0]]
    """
    bk = resolve_backend(backend, y_c, step_scores)
    scores = bk.asarray(step_scores)
    rows = [scores[i] for i in range(bk.shape(scores)[0])]
    plain = [bk.astype(bk.asarray(y_c), bk.dtype_name(scores))]
    rows = plain + rows if reuses_plain == "first" else rows + plain if reuses_plain == "last" else rows
    return bk.einsum("kn->nk", bk.stack(rows))


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Indices outside [0, size) folded back with the half-sample symmetric rule (``d c b a | a
    b c d | d c b a``, SciPy's ``mode="reflect"``), any number of times over."""
    folded = np.mod(index, 2 * size)
    return np.where(folded >= size, 2 * size - 1 - folded, folded)


def blur_matrix(size: int, radius: int = BLUR_RADIUS, sigma: float = BLUR_SIGMA) -> np.ndarray:
    r"""(size, size) float64 matrix :math:`B` of a 1-D Gaussian blur with the reflect border:
    ``B @ v`` is ``scipy.ndimage.gaussian_filter1d(v, sigma, radius=radius, mode="reflect")``.
    The weights are :math:`\exp(-d^2 / 2\sigma^2)` for :math:`d = -r, \dots, r`, summing to 1.

    >>> blur_matrix(3, radius=1, sigma=1.0).sum(axis=1).round(12).tolist()
    [1.0, 1.0, 1.0]
    """
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    weights /= weights.sum()
    matrix = np.zeros((size, size))
    rows = np.arange(size)[:, None]
    np.add.at(matrix, (np.broadcast_to(rows, (size, offsets.size)), _reflect(rows + offsets, size)),
              np.broadcast_to(weights, (size, offsets.size)))
    return matrix


def gaussian_blur(backend: Backend, x: Any, axes: tuple[int, ...]) -> Any:
    """``x`` blurred along each of ``axes`` by :func:`blur_matrix` (11 taps, sigma 5, reflect
    border), in float32 (float64 for float64 inputs), returned in ``x``'s dtype. An
    (H, H) matrix product per axis: a pass over the batch, done once per batch (in
    ``prepare``), whatever the number of steps.

    >>> from camavg_core.backends import resolve_backend
    >>> x = np.zeros((1, 1, 9)); x[0, 0, 4] = 1.0
    >>> gaussian_blur(resolve_backend("numpy"), x, (2,))[0, 0].round(3).tolist()
    [0.146, 0.091, 0.101, 0.107, 0.109, 0.107, 0.101, 0.091, 0.146]
    """
    dtype = backend.dtype_name(x)
    work = work_dtype(dtype)
    blurred = backend.astype(x, work)
    letters = "abcdefgh"[: len(backend.shape(x))]
    for axis in axes:
        size = backend.shape(x)[axis]
        if size == 1:
            continue  # a normalised kernel on one reflected sample leaves it as it is
        source = letters.replace(letters[axis], "z")
        blurred = backend.einsum(f"{letters[axis]}z,{source}->{letters}", blur_matrix(size).astype(work), blurred)
    return backend.astype(blurred, dtype)
