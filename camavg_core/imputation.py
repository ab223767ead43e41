"""ROAD (Rong et al., ICML 2022): remove pixels by noisy linear imputation, solved on the device.

Each removed pixel takes the weighted mean of its 8 neighbours, 1/6 for the four that share an
edge and 1/12 for the diagonals; neighbours outside the image are left out and the others'
weights renormalised (the system of ``tleemann/road_evaluation``'s ``road/imputations.py``).
For the removed set U, the known pixels x and the unknowns u, multiplying each equation by its
weight sum s_i gives

.. math::  s_i u_i - \\sum_{j \\in N(i) \\cap U} w_{ij} u_j = \\sum_{j \\in N(i) \\setminus U} w_{ij} x_j,

whose matrix is symmetric (w_ij = w_ji: a weight depends on the offset only) and, whenever
one pixel is known, positive definite (a weighted graph Laplacian with Dirichlet values at the
known pixels; the 8-neighbour grid is connected). It is solved, multiplied through by 12 (integer
weights 2 and 1, exact in floating point: :func:`neighbour_sum`), by conjugate gradients
preconditioned by a multigrid V-cycle (or by the diagonal 12 s), one right-hand side per channel,
batched over the images, the stencil a separable [1, 2, 1] x [1, 2, 1] sum minus the
centre, inside the compiled pass (``Backend.while_loop``: a ``tf.while_loop``,
``jax.lax.while_loop``, or a Python loop for NumPy and PyTorch). The code is written against
the backend protocol (:class:`camavg_core.backends.Backend`); a backend may answer with its own
solver first (``Backend.impute_fast``: TensorFlow's XLA kernels, in
``camavg_tf/imputation.py``, which shares this module's levels, coarsening and CG steps);
otherwise this module's solver runs as ``Backend.compiled`` makes it (JAX: one ``jax.jit``
program per shape).
Every solver runs channels first, so that the one-channel masks and weights broadcast over an
outer axis: for the generic solver channels-last images are transposed in and out here
(``Backend.transpose``; a mask's one channel by a reshape); TensorFlow's reads them through
transposes inside its XLA loops and writes its outputs in their layout. ROAD's noise is added
at the removed pixels in the same pass as the result (``noise`` of :func:`_impute`).
Iterations stop when every image's and channel's largest error is at most about ``tol`` times
that channel's spread (its standard deviation over the image), whatever the image's size or
offset: r M r (M the preconditioner, the norm CG computes anyway) bounds the error's height
(:func:`_limit`), or after ``max_iter``.

When every pixel is removed the system is singular (``spsolve`` silently returns 0): the image
then becomes each channel's mean of the input, plus the noise.

>>> import numpy as np
>>> from camavg_core.backends import resolve_backend
>>> x = np.arange(16.0).reshape(1, 4, 4, 1)          # a ramp: x[i, j] = 4 i + j
>>> removed = np.zeros((1, 4, 4, 1)); removed[0, 1:3, 1:3] = 1.0
>>> out = impute(resolve_backend("numpy"), x, removed)
>>> np.round(out[0, 1:3, 1:3, 0], 6).tolist()   # a linear ramp is its own weighted mean
[[5.0, 6.0], [9.0, 10.0]]
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from camavg_core import validation
from camavg_core.backends import Backend
from camavg_core.perturbations import drawn_per_sample, salience_ranks

#: ROAD's default fractions of pixels removed (pytorch-grad-cam's percentiles 90, 80, ..., 10).
DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

# columns of a step's parameter row
_LERF, _COUNT, _LO, _HI, _GAMMA, _ONE_MINUS_GAMMA, _UPPER, _PIXELS = range(8)


def _layout(x: Any, cams: Any) -> tuple[int, int]:
    """The spatial axes (h, w) of ``x``: cams carry a channel axis of 1 where ``x`` has its
    channels, last (B, H, W, 1) or first (B, 1, H, W)."""
    cam_shape, x_shape = tuple(cams.shape), tuple(x.shape)
    channels_last = cam_shape[-1] == 1 and tuple(cam_shape[1:3]) == tuple(x_shape[1:3])
    return (1, 2) if channels_last else (2, 3)


def _slice(v: Any, axis: int, start: int, stop: int) -> Any:
    index = [slice(None)] * len(v.shape)
    index[axis] = slice(start, stop)
    return v[tuple(index)]


def _pad(backend: Backend, v: Any, axes: tuple[int, int], pads: tuple = ((1, 1), (1, 1))) -> Any:
    """Zero padding of the two spatial axes, ``pads`` (before, after) per axis."""
    widths = [(0, 0)] * len(v.shape)
    for axis, pair in zip(axes, pads):
        widths[axis] = tuple(pair)
    return backend.pad(v, widths)


def _take(v: Any, axes: tuple[int, int], rows: slice, cols: slice) -> Any:
    index = [slice(None)] * len(v.shape)
    index[axes[0]], index[axes[1]] = rows, cols
    return v[tuple(index)]


def neighbour_sum(backend: Backend, v: Any, axes: tuple[int, int], *, padded: bool = False) -> Any:
    """12 sum_j w_ij v_j over the 8 in-image neighbours (w 1/6 on the edges, 1/12 on the
    diagonals: weights 2 and 1): the separable [1, 2, 1] x [1, 2, 1] kernel with zero padding,
    minus its centre 4, by slices (XLA fuses them into one loop; its CPU depthwise convolution
    ran several times slower). ``padded``: ``v`` already has its zero border of one pixel, and
    the sum is that of its interior (no pad op: XLA wrote a padded copy of the operand before
    the loop).

    The solver works with the system multiplied through by 12: integer weights make each
    product exact, where a division by 12 is not. XLA and TensorFlow's kernels divide by a
    constant as a product with its rounded reciprocal, 2.9e-8 too large on average over
    random values, so the neighbours outweighed the diagonal by that much, and a large hole's
    conditioning made it an error of 1.1e-4 against spsolve (float32, 96 x 200 px, MoRF at
    0.9; PyTorch, dividing exactly, 1.3e-5).

    The sums accumulate into the arrays they make (``+=``: in place for NumPy and PyTorch,
    whose eager ops otherwise write a new full-size array each: a PyTorch solve 1.2x-1.6x faster;
    a new array for TensorFlow and JAX, whose compilers fuse the sums), the same numbers bit
    for bit on every backend, in the order the sums always had. Where the backend adds into
    slices in place (``Backend.in_place_slices``: PyTorch) the operand is not padded: each
    neighbour is added where it exists, the same sums in the same order, one full-size copy
    fewer (NumPy keeps the pad: for a strided operand the result would take the operand's
    layout, and the solver's later sums over it round differently, 1e-15 in float64)."""
    if not padded and backend.in_place_slices:
        # the same sums without the padded copy: each neighbour added where it exists (a
        # missing one is the padding's 0, and x + 0 is x), in the same order
        h, w = (int(v.shape[a]) for a in axes)
        rows = 2.0 * v
        _slice(rows, axes[0], 1, h)[...] += _slice(v, axes[0], 0, h - 1)
        _slice(rows, axes[0], 0, h - 1)[...] += _slice(v, axes[0], 1, h)
        both = 2.0 * rows
        _slice(both, axes[1], 1, w)[...] += _slice(rows, axes[1], 0, w - 1)
        _slice(both, axes[1], 0, w - 1)[...] += _slice(rows, axes[1], 1, w)
        both -= 4.0 * v
        return both
    if padded:
        h, w = (int(v.shape[a]) - 2 for a in axes)
        centre = _take(v, axes, slice(1, h + 1), slice(1, w + 1))
    else:
        h, w = (int(v.shape[a]) for a in axes)
        v, centre = backend.materialise(_pad(backend, v, axes)), v
    rows = 2.0 * _slice(v, axes[0], 1, h + 1)
    rows += _slice(v, axes[0], 0, h)
    rows += _slice(v, axes[0], 2, h + 2)
    both = 2.0 * _slice(rows, axes[1], 1, w + 1)
    both += _slice(rows, axes[1], 0, w)
    both += _slice(rows, axes[1], 2, w + 2)
    both -= 4.0 * centre
    return both


def class_sum(backend: Backend, v: Any, sign: Any, axes: tuple[int, int], *, padded: bool = False) -> Any:
    """The neighbour sum over the neighbours of the same system: :func:`neighbour_sum` for one
    mask (``sign`` None); for two disjoint masks solved in one field (:func:`impute_pair`),
    ``sign`` = first - second (a channel axis of 1) and a removed pixel of one system sees the
    other's removed pixels as known, so the coupling between the two drops out:
    (N v + sign N(sign v)) / 2, as sign_i sign_j is 1 within a system and -1 across (``v`` is 0
    at the pixels neither removes). ``padded`` as for :func:`neighbour_sum`, ``sign`` then
    bordered too."""
    total = neighbour_sum(backend, v, axes, padded=padded)
    if sign is None:
        return total
    inner = _take(sign, axes, slice(1, -1), slice(1, -1)) if padded else sign
    out = neighbour_sum(backend, sign * v, axes, padded=padded)
    out *= inner
    out += total
    out *= 0.5
    return out


def _per_channel(backend: Backend, v: Any, axes: tuple[int, int]) -> Any:
    """Sum over the spatial axes, kept as axes of 1 so it broadcasts back against ``v``."""
    total = backend.sum(v, axis=axes)  # (B, C)
    shape = [-1] + [int(d) for d in v.shape[1:]]
    for axis in axes:
        shape[axis] = 1
    return backend.reshape(total, tuple(shape))


# the 8 neighbour offsets and the centre, and the weight of each neighbour times 12 (the solver's
# system is multiplied through by 12: :func:`neighbour_sum`)
_OFFSETS = tuple((di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1))
_WEIGHT = {d: (2.0 if abs(d[0]) + abs(d[1]) == 1 else 1.0) for d in _OFFSETS if d != (0, 0)}


def _hw(v: Any, axes: tuple[int, int]) -> tuple[int, int]:
    return int(v.shape[axes[0]]), int(v.shape[axes[1]])


def _shift(padded: Any, axes: tuple[int, int], d: tuple[int, int], h: int, w: int) -> Any:
    """v_{i + d} for every pixel i, from v zero-padded by one on each side."""
    return _take(padded, axes, slice(1 + d[0], 1 + d[0] + h), slice(1 + d[1], 1 + d[1] + w))


def _add_n(terms: list) -> Any:
    """The sum of ``terms`` (of one shape, or the first two of the whole shape), left to right,
    into an array of its own: in place from the third term for NumPy and PyTorch."""
    if len(terms) == 1:
        return terms[0]
    out = terms[0] + terms[1]
    for term in terms[2:]:
        out += term
    return out


def _stencil(backend: Backend, coefficients: dict, v: Any, axes: tuple[int, int], *, padded: bool = False) -> Any:
    """sum_d c_d(i) v_{i + d} over the offsets d that ``coefficients`` holds (of the 9), whose
    coefficients vary per pixel; ``padded`` as for :func:`neighbour_sum` (the coefficients are
    the interior's)."""
    if not padded:
        v = backend.materialise(_pad(backend, v, axes))
    h, w = (int(v.shape[a]) - 2 for a in axes)
    return _add_n([c * _shift(v, axes, d, h, w) for d, c in coefficients.items()])


def _even(backend: Backend, v: Any, axes: tuple[int, int]) -> Any:
    h, w = _hw(v, axes)
    return _pad(backend, v, axes, ((0, h % 2), (0, w % 2))) if h % 2 or w % 2 else v


def _pairs(backend: Backend, v: Any, axis: int) -> tuple[Any, Any]:
    """The even and odd entries along ``axis`` (of even size), by a reshape that splits it in
    (n, 2) and an index (XLA's CPU code for stride-2 slices was several times slower)."""
    shape = [-1] + [int(d) for d in v.shape[1:]]
    shape[axis: axis + 1] = [shape[axis] // 2, 2]
    blocks = backend.reshape(v, tuple(shape))
    index = [slice(None)] * len(shape)
    index[axis + 1] = 0
    first = blocks[tuple(index)]
    index[axis + 1] = 1
    return first, blocks[tuple(index)]


def _children(backend: Backend, v: Any, axes: tuple[int, int]) -> dict:
    """The four children (a, b) of each 2 x 2 block (an odd size zero-padded)."""
    out = {}
    for a, rows in enumerate(_pairs(backend, _even(backend, v, axes), axes[0])):
        for b, part in enumerate(_pairs(backend, rows, axes[1])):
            out[(a, b)] = part
    return out


def _restrict(backend: Backend, v: Any, axes: tuple[int, int]) -> Any:
    """R: the sum of each 2 x 2 block (an odd size zero-padded), rows first: 4 slices and 2
    adds, the second pair on half the data."""
    top, bottom = _pairs(backend, _even(backend, v, axes), axes[0])
    left, right = _pairs(backend, top + bottom, axes[1])
    return left + right


def _prolong(backend: Backend, v: Any, axes: tuple[int, int], h: int, w: int) -> Any:
    """P = R^T: each coarse value copied to its 2 x 2 block (one broadcast), cropped to (h, w)
    only where a size is odd."""
    expanded, tile, out = [-1], [1], [-1]
    for k in range(1, len(v.shape)):
        size = int(v.shape[k])
        expanded.append(size)
        tile.append(1)
        out.append(2 * size if k in axes else size)
        if k in axes:
            expanded.append(1)
            tile.append(2)
    ones = backend.astype(backend.asarray(np.ones(tile, np.float32)), backend.dtype_name(v))
    fine = backend.reshape(backend.reshape(v, tuple(expanded)) * ones, tuple(out))
    if (out[axes[0]], out[axes[1]]) == (h, w):
        return fine
    return _take(fine, axes, slice(0, h), slice(0, w))


def _coarsen(backend: Backend, coefficients: dict, axes: tuple[int, int]) -> dict:
    """The Galerkin operator R A P of a 9-point operator for the piecewise-constant P: entry
    (I, I + D) sums A_ij over the children i of I and j of I + D, again 9 points."""
    out: dict = {}
    for d, c in coefficients.items():
        for (a, b), part in _children(backend, c, axes).items():
            target = ((a + d[0]) // 2, (b + d[1]) // 2)
            out[target] = part if target not in out else out[target] + part
    return {d: backend.materialise(c) for d, c in out.items()}


def _shift_matrices(h: int, w: int, dtype: Any) -> np.ndarray:
    """(9, n, n), n = h w: S_d[I, I + d] = 1 for every cell I whose neighbour I + d is in the
    grid (the 9 offsets of ``_OFFSETS``), row-major cells."""
    n = h * w
    out = np.zeros((len(_OFFSETS), n, n), dtype)
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for k, (di, dj) in enumerate(_OFFSETS):
        ok = (i + di >= 0) & (i + di < h) & (j + dj >= 0) & (j + dj < w)
        out[k, (i * w + j)[ok], ((i + di) * w + j + dj)[ok]] = 1.0
    return out


def _dense(backend: Backend, coefficients: dict, h: int, w: int, extra: Any) -> Any:
    """The dense (B, n, n) matrix of a 9-point operator on an h x w grid, n = h w, row-major
    cells, plus ``extra`` (B, n) on the main diagonal: sum_d diag(c_d) S_d, ``extra`` added to
    c_0 (S_0 is the identity). Not a product of ``extra`` with an identity matrix: XLA fused
    the coarsening that makes ``extra`` into that (B, n, n) product and recomputed it for every
    entry (JAX, a 64-image paired solve at 96 px: 100 ms of its set-up)."""
    n = h * w
    c0 = coefficients[(0, 0)]
    rows = {d: backend.reshape(coefficients[d], (-1, n)) for d in _OFFSETS}
    rows[(0, 0)] = rows[(0, 0)] + extra
    flat = backend.stack([rows[d] for d in _OFFSETS])  # (9, B, n)
    return backend.einsum("kbn,knm->bnm", flat, _shift_matrices(h, w, backend.to_numpy_dtype(c0)))


def _exact(backend: Backend, coefficients: dict, axes: tuple[int, int], has_known: Any, *,
           dense: Any = _dense) -> Any:
    """r -> A^{-1} r for the 9-point operator of ``coefficients`` (channel axis of 1) on a small
    grid, r (B, C, h, w) (the solvers run channels first): its dense (B, n, n) matrix (``dense``, :func:`_dense`'s arguments) inverted once per
    solve, applied to every channel by one batched product. A cell with no unknown (a zero row
    and column) gets a 1 on the diagonal (its residual is 0, so is its correction); an image
    with no known pixel (a singular operator, whose solve CG discards: alpha = 0) gets the
    identity added."""
    c0 = coefficients[(0, 0)]
    h, w = _hw(c0, axes)
    n = h * w
    empty = backend.astype(backend.reshape(c0, (-1, n)) <= 0.0, backend.dtype_name(c0))
    singular = backend.reshape(1.0 - has_known, (-1, 1))
    matrix = dense(backend, coefficients, h, w, backend.maximum(empty, singular))
    inverse = backend.materialise(backend.spd_inverse(matrix))

    def solve(r: Any) -> Any:
        shape = tuple(int(d) for d in r.shape[1:])
        out = backend.einsum("bcm,bnm->bcn", backend.reshape(r, (-1, shape[0], n)), inverse)
        return backend.reshape(out, (-1,) + shape)

    return solve


def _inverse(backend: Backend, diagonal: Any) -> Any:
    """1 / diagonal, 0 where a coarse cell holds no unknown (its row and column are 0)."""
    positive = diagonal > 0.0
    return backend.where(positive, 1.0 / backend.where(positive, diagonal, 1.0), 0.0)


def _fine_fields(backend: Backend, m: Any, s: Any, axes: tuple[int, int], sign: Any = None) -> dict:
    """The fine operator's coefficient fields: c_0 = m s, c_d = -w_d m m_{i + d}, times
    (1 + sign sign_{i + d}) / 2 for two systems in one field (:func:`class_sum`)."""
    h, w = _hw(m, axes)
    padded = _pad(backend, m, axes)
    signs = None if sign is None else _pad(backend, sign, axes)
    fine = {(0, 0): m * s}
    for d, weight in _WEIGHT.items():
        fine[d] = (-weight) * m * _shift(padded, axes, d, h, w)
        if sign is not None:
            fine[d] = fine[d] * (0.5 + 0.5 * sign * _shift(signs, axes, d, h, w))
    return fine


# the spatial axes of every solve: channels first, (B, C, H, W) (:func:`_impute`)
_FIRST = (2, 3)


def _weight_sums(backend: Backend, ones: Any) -> Any:
    """Each pixel's in-image weight sum times 12 (the operator's diagonal) for ``ones``, a field
    of 1s channels first, taken as at least 1: it is 0 only in a 1 x 1 image, whose pixel is
    then known (or the whole image removed, the mean's case), so any value does there, and 1
    keeps the divisions by it finite (every other sum is 2 or more)."""
    return backend.maximum(neighbour_sum(backend, ones, _FIRST), 1.0)

# the V-cycle's constants: the fine smoother's damping, the largest grid solved exactly
# (coarsest^2 cells), the coarse correction's over-weighting
OMEGA, COARSEST, OVERCORRECT = 0.9, 12, 1.7


def _levels(backend: Backend, m: Any, s: Any, axes: tuple[int, int], coarsen: Any, has_known: Any, *,
            dense: Any = _dense, add_n: Any = _add_n) -> tuple[list, Any]:
    """The V-cycle's coarse levels under the fine one (``m``, ``s``: the fine mask and weight
    sums, a channel axis of 1), each the Galerkin operator of the level above
    (``coarsen(coefficients)``, None for the fine operator's): for each smoothed level, finest
    first, its smoother's 5-point N (the -c_d of the 4 edge neighbours), the inverse of its
    diagonal with the 4 diagonal couplings lumped on, and its (h, w); then the exact solve
    (:func:`_exact`, ``dense`` its matrix) of the first level of at most ``COARSEST``^2 cells.
    The lumped operator is a 5-point weighted Laplacian, symmetric and positive definite as
    the Galerkin one (half its slices and products, as many CG iterations); its smoother
    undamped Jacobi (omega = 1: the cycle stays SPD while 2 D - A = D + N is positive
    definite, which diagonal dominance gives wherever the cells' graph reaches a known pixel;
    8 iterations against 8-10 with 0.9), expanded, so only N is applied. ``has_known``: (B,)
    1 where every system of an image knows a pixel (``live`` of :func:`_initial`: with two
    systems in one field the union ``m`` may cover every pixel); ``add_n``: the lumping's sum
    of a list (TensorFlow's one op rounds as the fast path always has)."""
    h, w = _hw(m, axes)
    smoothed = []
    coefficients = None
    while True:
        coefficients = coarsen(coefficients)
        h, w = (h + 1) // 2, (w + 1) // 2
        if h * w <= COARSEST * COARSEST:
            break
        edges = {d: backend.materialise(-c) for d, c in coefficients.items() if abs(d[0]) + abs(d[1]) == 1}
        lumped = add_n([c for d, c in coefficients.items() if d[0] and d[1]] + [coefficients[(0, 0)]])
        smoothed.append((edges, backend.materialise(_inverse(backend, lumped)), (h, w)))
    return smoothed, _exact(backend, coefficients, axes, has_known, dense=dense)


def _multigrid(backend: Backend, m: Any, s: Any, axes: tuple[int, int], sign: Any, has_known: Any) -> Any:
    """A symmetric V-cycle for the masked system (a function r -> z ~ A^{-1} r): Jacobi before
    and after each coarse correction (damped by ``OMEGA`` on the fine level), piecewise-constant
    P, Galerkin coarse operators (the smoothers' with their diagonal couplings lumped:
    :func:`_levels`), the first level of at most ``COARSEST``^2 cells solved exactly (12 x 12 at
    96 px: 8 CG iterations instead of 9-11 with 4 Jacobi sweeps on a 3 x 3 level, and ~400 tiny
    ops fewer a solve), the coarse correction weighted by ``OVERCORRECT``. Symmetric and
    positive definite on the removed pixels, so it preconditions CG. Everything that depends on
    the mask only (the coarse operators and inverse, the Jacobi weights, the masked
    over-correction) is set up once per solve, outside the CG loop, on the mask's one channel
    (``m`` and ``s`` with a channel axis of 1). ``sign``: two systems in one field
    (:func:`class_sum`), the union's mask ``m``; ``has_known`` as for :func:`_levels`. Each
    level's restricted residual, corrected error and result are materialised
    (``Backend.materialise``): XLA otherwise fused a level's work into each pixel of the level
    above that reads it and computed it there again (JAX on the CPU: a 64-image paired solve
    at 96 px took 4x-5x the time)."""
    h, w = _hw(m, axes)

    def coarsen(coefficients):
        fine = _fine_fields(backend, m, s, axes, sign) if coefficients is None else coefficients
        return _coarsen(backend, fine, axes)

    smoothed, exact = _levels(backend, m, s, axes, coarsen, has_known)
    weight = backend.materialise((OMEGA * m) / s)
    correction = backend.materialise(OVERCORRECT * m)
    mask = backend.materialise(m)
    keep = backend.materialise((1.0 - OMEGA) * m)

    def neighbours(v: Any) -> Any:
        return class_sum(backend, v, sign, axes)

    def cycle(level: int, r: Any) -> Any:
        """Coarse level ``level`` (1: the first under the fine one), its smoother expanded as in
        ``fine_cycle`` with omega = 1 and A = D - N: pre, e = D^-1 r and r - A e = N e; post,
        e2 + D^-1 (r - A e2) = e + D^-1 N e2. Where a cell holds no unknown (row and column 0,
        r = 0) the residual is right and the result (e = 0 instead of e2) meets only zero
        coefficients."""
        if level > len(smoothed):
            return exact(r)
        edges, inverse, size = smoothed[level - 1]
        e = inverse * r
        coarse = cycle(level + 1, backend.materialise(_restrict(backend, _stencil(backend, edges, e, axes), axes)))
        # the over-correction on the coarse data: 4x fewer multiplies
        e2 = backend.materialise(e + _prolong(backend, OVERCORRECT * coarse, axes, *size))
        post = _stencil(backend, edges, e2, axes)
        post *= inverse
        return backend.materialise(e + post)

    def fine_cycle(r: Any) -> Any:
        """The fine level with its operator s v - N v (N the neighbour sum) and weight omega m / s
        expanded: (s omega m / s) v = omega v for masked v, so the smoother's residuals need
        no product by s. Pre: e = W r, the masked residual m (r - A e) = (1 - omega) m r +
        m N e. Post: e + W (r - A e) = (1 - omega) e + W r + W N e. Three full passes fewer."""
        e = weight * r
        residual = neighbours(e)
        residual *= mask
        residual = _add_n([keep * r, residual])
        coarse = cycle(1, backend.materialise(_restrict(backend, residual, axes)))
        e2 = _prolong(backend, coarse, axes, h, w)
        e2 *= correction
        e2 = backend.materialise(e + e2)
        post = neighbours(e2)
        post *= weight
        return backend.materialise(_add_n([(1.0 - OMEGA) * e2, e, post]))

    return fine_cycle


def _initial(backend: Backend, x: Any, masks: tuple, axes: tuple[int, int]) -> tuple:
    """The start u, its residual r, which images can be solved, and each channel's mean and
    variance over the image, for the systems of ``masks`` (one, or two disjoint ones in one
    field: :func:`impute_pair`), system k removing m_k and knowing 1 - m_k: u = sum_k m_k
    start_k, r = rhs - A u = sum_k m_k N((1 - m_k) (x - start_k)) for rhs = sum_k m_k N((1 -
    m_k) x) (as A m_k = m_k N(1 - m_k) at its removed pixels: not the difference of two large
    terms, whose rounding stays in the solution: 10x nearer spsolve). start_k: each channel's
    mean of the pixels system k knows (a constant image is then solved). ``live``: every
    system of the image knows a pixel; where one knows none (every pixel removed) its system
    is singular and start_k is each channel's mean of the input, which the loop then leaves
    alone (alpha = 0, limit "met"). The mean and variance set the stopping rule
    (:func:`_limit`)."""
    n = float(int(x.shape[axes[0]]) * int(x.shape[axes[1]]))
    mean_all = _per_channel(backend, x, axes) / n
    variance = _per_channel(backend, (x - mean_all) * (x - mean_all), axes) / n
    u, r, live = [], [], None
    for m in masks:
        known = 1.0 - m
        count = _per_channel(backend, known, axes)
        has_known = count > 0.0
        start = backend.where(has_known, _per_channel(backend, known * x, axes) / backend.maximum(count, 1.0), mean_all)
        u.append(m * start)
        r.append(m * neighbour_sum(backend, known * (x - start), axes))
        live = has_known if live is None else live & has_known
    return _add_n(u), _add_n(r), live, mean_all, variance


#: The stopping rule's bound on (largest |error|)^2 / r M r for the multigrid-preconditioned
#: system (times 12): 0.17 was the most seen, 0.01-0.05 the usual, over 60 random sizes from
#: 8 to 80 px and masks (scattered pixels, smooth and noisy CAMs' holes, stripes, single
#: pixels, alone and paired) and the benchmark's pairs at 96, 224 and 448 px, every CG
#: iteration, float64 against spsolve (2026-12-06): the energy r M r, about the error's A-norm
#: squared, bounds a smooth error's height whatever its width.
ENERGY_BOUND = 0.25
# the limit's floor, in units in the last place of a channel's magnitude: below that the
# dtype cannot tell the solution from its rounding (a constant image stops at once)
_ROUNDING_UNITS = 2.0


def _limit(backend: Backend, mean: Any, variance: Any, live: Any, tol: float) -> Any:
    """The stopping limit on r M r per image and channel, from each channel's mean and variance
    over the image, 3e38 (met at once) where an image cannot be solved (``live`` False: every
    pixel of a system removed, :func:`_initial`): CG stops when ENERGY_BOUND r M r,
    the bound on the largest error squared, is below tol^2 times the variance, plus
    ``_ROUNDING_UNITS`` units in the last place of the channel's root mean square, squared.
    The error is then at most about tol times the channel's spread, whatever the image's size
    or offset (a property test: within it on images of 8-40 px a side; strips 3 px wide, nearly
    one-dimensional, can exceed it, 1.7x seen): the rule before it (the residual relative to the right-hand side's) let the
    error grow with both (96 to 448 px: 1.9e-5 to 7.2e-5 against spsolve; an image in [100,
    101], 3.6e-3)."""
    eps = float(np.finfo(backend.to_numpy_dtype(mean)).eps)
    floor = (_ROUNDING_UNITS * eps) ** 2 * (variance + mean * mean)
    return backend.where(live, ((tol * tol) * variance + floor) / ENERGY_BOUND, 3.0e38)


def _running(backend: Backend, rz: Any, limit: Any) -> Any:
    """Whether some image's channel has not met the stopping rule (rz above its ``limit``): the
    loop's condition. A channel whose rz is NaN (an image holding NaN or infinity, which
    ``nan_policy='omit'`` lets through to be skipped) counts as stopped, as :func:`_alpha`
    treats it: the largest rz - limit was NaN there, which ended the loop for the whole batch
    and left the other images' imputations unconverged (their ROAD terms off by up to 0.09)."""
    return backend.max(backend.where(rz > limit, 1.0, 0.0)) > 0.0


def _alpha(backend: Backend, rz: Any, limit: Any, pap: Any) -> Any:
    """CG's step rz / p A p per image and channel; 0 where the channel has met the stopping
    rule (rz at most its ``limit``, which is 3e38 where nothing is known) or p A p is 0. A
    channel that has met the rule stays as it is while the loop goes on for others (its r, so
    its rz, no longer move), so each image's imputation is the one it gets alone, whatever the
    batch around it: the same CAM gives the same numbers in any batch (a test)."""
    step = (rz > limit) & (pap > 0.0)
    return backend.where(step, rz / backend.where(step, pap, 1.0), 0.0)


def _beta(backend: Backend, rz: Any, rz_new: Any) -> Any:
    """CG's next-direction weight rz_new / rz, 0 where rz is 0."""
    return backend.where(rz > 0.0, rz_new / backend.where(rz > 0.0, rz, 1.0), 0.0)


def impute(backend: Backend, x: Any, removed: Any, *, tol: float = 1e-4, max_iter: int = 2000,
           axes: tuple[int, int] | None = None, return_iterations: bool = False,
           preconditioner: str = "multigrid") -> Any:
    """``x`` with the pixels where ``removed`` is 1 replaced by the solution of the linear
    imputation (no noise); ``removed`` is 0/1 with a channel axis of 1 ((B, H, W, 1) or
    (B, 1, H, W)). Runs in ``x``'s compute dtype (float64 for NumPy). ``tol``: the largest error
    the stopping rule allows, about, as a fraction of each channel's spread (its standard
    deviation over the image; :func:`_limit`): the default keeps a [0, 1] image within 5e-5 of
    the exact solution at any size, plus float32's rounding (1e-5 at 96-224 px, 2e-5 at 448, and
    growing with the hole: up to 1.3e-4 at 896 px, where float64 inputs stay within 5e-6).
    ``preconditioner``: ``"multigrid"`` (a V-cycle, 10-11 iterations at 96 px, 13-14 at 224,
    15-17 at 448, the default on every backend) or ``"jacobi"`` (200-300 at 96 px), a check on
    the multigrid rather than a way to measure: the rule's bound holds for the multigrid only
    (r M r measures the error's energy when M is near A^-1), and Jacobi stops further from the
    exact solution where the holes are large (2.6e-4 against spsolve on 96 px images with a
    smooth CAM's holes, where the multigrid's is 1e-5). With ``return_iterations``,
    also the number of conjugate-gradient iterations taken. A backend's own solver
    (:meth:`Backend.impute_fast <camavg_core.backends.Backend.impute_fast>`) answers first."""
    outs, iterations = _impute(backend, x, (removed,), tol, max_iter, axes, preconditioner)
    return (outs[0], iterations) if return_iterations else outs[0]


def impute_pair(backend: Backend, x: Any, first: Any, second: Any, *, tol: float = 1e-4, max_iter: int = 2000,
                axes: tuple[int, int] | None = None, return_iterations: bool = False,
                preconditioner: str = "multigrid") -> Any:
    """:func:`impute` of two disjoint masks (no pixel removed by both) in one solve:
    ``(x imputed at first, x imputed at second)``, and the iterations with
    ``return_iterations``. Each system sees the other's removed pixels as known, so one field
    holds both and their coupling drops out of the stencil (:func:`class_sum`): the pair costs
    about 1.5 solves of one system, not two (at 96 px 10-11 iterations against 8-9, each about
    1.3x the cost). ROAD's MoRF at f and LeRF at 1 - f are such a pair; masks that overlap are refused
    where their values are known (not while traced). Where one mask removes every pixel (the other then removes none),
    its imputation is each channel's mean of the input, as for :func:`impute`, and the other's
    is ``x``."""
    if backend.is_concrete(first) and backend.is_concrete(second):
        both = int(np.count_nonzero(backend.to_numpy(first) * backend.to_numpy(second)))
        if both:
            raise ValueError(validation.overlapping_pair(both))
    outs, iterations = _impute(backend, x, (first, second), tol, max_iter, axes, preconditioner)
    return (*outs, iterations) if return_iterations else outs


def _impute(backend: Backend, x: Any, removed: tuple, tol: float, max_iter: int, axes: tuple[int, int] | None,
            preconditioner: str, noise: Any = None) -> tuple:
    """The imputations of ``x`` at each mask of ``removed`` (one, or two disjoint ones), plus
    ``noise`` (shaped as ``x``, or None) at each one's removed pixels, and the iterations: one
    conjugate-gradient solve in one field."""
    axes = _layout(x, removed[0]) if axes is None else axes
    dtype = backend.compute_dtype(x)
    x = backend.astype(x, dtype)
    masks = tuple(backend.astype(m, dtype) for m in removed)  # channel axes of 1
    noise = None if noise is None else backend.astype(noise, dtype)
    if preconditioner not in ("multigrid", "jacobi"):
        raise ValueError(validation.bad_road_preconditioner(preconditioner))
    last = tuple(axes) == (1, 2)
    solved = backend.impute_fast(x, masks, tol=tol, max_iter=max_iter, preconditioner=preconditioner,
                                 channels_last=last, noise=noise)
    if solved is not None:
        return solved
    if last:
        # every solver runs channels first: the masks and weights, one channel each, then
        # broadcast over an outer axis, not over the innermost 3 values (the generic solver on a
        # 64-image pair, 2026-12-05: JAX's Jacobi 1.2 s to 0.86 s, PyTorch 0.63 s to 0.49 s,
        # NumPy 3.3 s to 2.7 s); a mask's one channel moves by a reshape, not a copy
        x = backend.transpose(x, (0, 3, 1, 2))
        masks = tuple(backend.reshape(m, (-1, 1, *_hw(m, axes))) for m in masks)
        noise = None if noise is None else backend.transpose(noise, (0, 3, 1, 2))
    outs, iterations = backend.compiled(_solve, static_argnums=(0, 4, 5, 6))(
        backend, x, masks, noise, tol, max_iter, preconditioner)
    return (tuple(backend.transpose(out, (0, 2, 3, 1)) for out in outs) if last else outs), iterations


def _solve(backend: Backend, x: Any, masks: tuple, noise: Any, tol: float, max_iter: int, preconditioner: str) -> tuple:
    """The generic solver of :func:`_impute`: (B, C, H, W) x and ``noise`` (or None) and
    (B, 1, H, W) masks in the compute dtype."""
    axes = _FIRST
    dtype = backend.dtype_name(x)
    m = _add_n(list(masks))  # the union
    sign = None if len(masks) == 1 else masks[0] - masks[1]
    s = _weight_sums(backend, m * 0.0 + 1.0)  # the diagonal

    def operator(v):
        """A v at the removed pixels, for v that is 0 at the known ones; junk at the known
        pixels, unmasked (a product a full pass of memory saved, three times an iteration):
        every use masks, the residual r through the products with z and the masked weights
        (r z, the smoother's m omega / s, the restriction's mask)."""
        return s * v - class_sum(backend, v, sign, axes)

    u, r, live, mean, variance = _initial(backend, x, masks, axes)
    if preconditioner == "multigrid":
        precondition = _multigrid(backend, m, s, axes, sign, backend.astype(backend.reshape(live, (-1,)), dtype))
    else:
        jacobi = m / s
        precondition = lambda r: jacobi * r  # noqa: E731
    z = precondition(r)
    rz = _per_channel(backend, r * z, axes)
    limit = _limit(backend, mean, variance, live, tol)

    def cond(i, u, r, p, rz):
        return (i < max_iter) & _running(backend, rz, limit)

    def body(i, u, r, p, rz):
        # u is the loop's own array, updated in place by NumPy and PyTorch; r and z are not (the
        # product r z keeps them for PyTorch's autograd, which a solve of images that require
        # gradients differentiates through)
        ap = operator(p)
        alpha = _alpha(backend, rz, limit, _per_channel(backend, p * ap, axes))
        u += alpha * p
        r = r - alpha * ap
        z = precondition(r)
        rz_new = _per_channel(backend, r * z, axes)
        return i + 1, u, r, z + _beta(backend, rz, rz_new) * p, rz_new

    zero = backend.astype(backend.asarray(0), "int32")
    iterations, u, _, _, _ = backend.while_loop(cond, body, (zero, u, r, z, rz))
    # u is 0 at the known pixels (it moves along masked directions only)
    u = u if noise is None else u + noise
    return tuple((1.0 - mk) * x + mk * u for mk in masks), iterations


def road_terms(morf: Any, lerf: Any, backend: Backend | None = None) -> Any:
    """Per-sample ROAD terms, pytorch-grad-cam's ``ROADCombined``: (mean over fractions of the
    LeRF scores - mean over fractions of the MoRF scores) / 2, from (F, N) curves of the
    target's probability; higher is better.

    >>> import numpy as np
    >>> road_terms(np.array([[0.2, 0.5], [0.0, 0.5]]), np.array([[0.8, 0.5], [0.6, 0.5]])).tolist()
    [0.3, 0.0]
    """
    if backend is None:
        from camavg_core.backends import resolve_backend

        backend = resolve_backend(None, morf, lerf)
    f_morf, f_lerf = int(morf.shape[0]), int(lerf.shape[0])
    return (backend.sum(lerf, axis=0) / f_lerf - backend.sum(morf, axis=0) / f_morf) / 2.0


def percentile_rows(fraction: float, n_pixels: int) -> tuple[float, float, float, float, float]:
    """numpy's linear percentile at p = 100 (1 - f) as pytorch-grad-cam calls it: the ascending
    positions (lo, hi) of the two values interpolated, gamma, 1 - gamma, and whether numpy
    interpolates from the upper value (gamma >= 0.5)."""
    q = round(100.0 * (1.0 - fraction), 10) / 100.0
    position = (n_pixels - 1) * q
    lo = math.floor(position)
    hi = min(lo + 1, n_pixels - 1)
    gamma = position - lo
    return float(lo), float(hi), gamma, 1.0 - gamma, float(gamma >= 0.5)


#: ROAD's default noise, the original's for [0, 1] pixels
DEFAULT_NOISE = 0.01


def outside_default_noise_range(low: float, high: float) -> bool:
    """Whether inputs whose values span [low, high] lie outside [0, 1] (to 1e-6), where
    :data:`DEFAULT_NOISE` is not the original's noise."""
    return low < -1e-6 or high > 1.0 + 1e-6


def _noise_field(backend: Backend, x: Any, cams: Any, noise: Any) -> Any:
    """The (B, D) rows of :meth:`Road.per_sample` laid out as ``x``: each row is an (H, W, C)
    field, transposed for channels-first ``x`` (the layout its ``cams`` show). Until
    2026-12-06 the field was drawn in ``x``'s own layout: the same images got other noise, so
    other ROAD numbers, on PyTorch (channels first) than on Keras or JAX. ``x`` whose sample
    size is not D (a model's later input, of another size than the first, from which the noise
    is drawn) is refused as the pass is traced: every framework knows D then (TensorFlow's
    signature keeps the per-sample data's last axis)."""
    shape, size = tuple(int(d) for d in x.shape[1:]), noise.shape[1]
    if size is not None and int(size) != math.prod(shape):
        raise ValueError(validation.road_noise_of_another_input(shape, int(size)))
    last = _layout(x, cams) == (1, 2)
    h, w, c = shape if last else (*shape[1:], shape[0])
    field = backend.reshape(noise, (-1, h, w, c))
    return field if last else backend.transpose(field, (0, 3, 1, 2))


class Road:
    """ROAD's perturbation: ``2 F`` steps, the F fractions removing the most relevant pixels
    first (MoRF), then the F fractions removing the least relevant first (LeRF); the removed
    pixels imputed (:func:`impute`) plus seeded Gaussian noise of standard deviation ``noise``
    (in the units of the inputs as given, before ``preprocess``).

    ``selection="rank"``: fraction f removes the floor(f P) pixels of P first (MoRF) or last
    (LeRF) in the stable order of :func:`camavg_core.perturbations.salience_ranks`.
    ``selection="percentile"``: pytorch-grad-cam 1.5's rule, MoRF removes ``cam >=
    np.percentile(cam, p)`` and LeRF ``1 - cam >= np.percentile(1 - cam, p)``, p = 100 (1 - f),
    ties included (a CAM that is mostly zeros removes every pixel at every MoRF step).

    The noise is one field per sample, drawn on the host from ``np.random.default_rng([seed,
    index])`` with the sample's global index (:meth:`per_sample`) in (H, W, C) order whatever
    the layout, and reused by every step of that sample; with ``noise=0`` nothing is drawn.

    The engines run the steps in the pairs of :meth:`groups` where they exist (rank selection,
    MoRF at f beside LeRF at 1 - f): :meth:`apply_group` imputes both in one solve
    (:func:`impute_pair`), about the cost of one. Each step's numbers are those of its own
    system, to the solver's tolerance.

    >>> import numpy as np
    >>> from camavg_core.backends import resolve_backend
    >>> bk, road = resolve_backend("numpy"), Road(fractions=(0.25,), noise=0.0)
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> cams = np.zeros((1, 4, 4, 1)); cams[0, 1:3, 1:3] = 1.0     # the centre is relevant
    >>> prepared = road.prepare(bk, x, cams)
    >>> morf, lerf = (road.apply(bk, x, prepared, row) for row in road.parameters(16))
    >>> np.round(morf[0, ..., 0], 6).tolist()[1]       # the centre removed and imputed
    [4.0, 5.0, 6.0, 7.0]
    >>> np.round(lerf[0, ..., 0], 3).tolist()[3]       # the last 4 zeros (row-major) removed
    [8.652, 9.13, 9.87, 10.348]
    """

    def __init__(self, fractions: Sequence[float] = DEFAULT_FRACTIONS, noise: float = DEFAULT_NOISE, seed: int = 0,
                 selection: str = "rank", tol: float = 1e-4, max_iter: int = 2000) -> None:
        if isinstance(fractions, (str, bytes)):  # "0.5" would iterate as "0", ".", "5"; "1" pass as (1.0,)
            raise TypeError(validation.bad_road_fractions(fractions))
        try:
            fractions = tuple(float(f) for f in fractions)
        except (TypeError, ValueError):
            raise TypeError(validation.bad_road_fractions(fractions)) from None
        if not fractions or not all(0.0 <= f <= 1.0 for f in fractions):
            raise ValueError(validation.bad_road_fractions(fractions))
        if not validation.is_number(noise) or not math.isfinite(noise) or noise < 0:
            raise ValueError(validation.bad_road_noise(noise))
        if not validation.is_integer(seed) or seed < 0:
            raise ValueError(validation.bad_road_seed(seed))
        if selection not in ("rank", "percentile"):
            raise ValueError(validation.bad_road_selection(selection))
        if not (validation.is_number(tol) and 0 < tol < 1) or not (validation.is_integer(max_iter) and max_iter >= 1):
            raise ValueError(validation.bad_road_solver(tol, max_iter))
        self.fractions, self.noise, self.seed, self.selection = fractions, float(noise), int(seed), selection
        self.tol, self.max_iter = float(tol), int(max_iter)
        self.steps = 2 * len(fractions)
        # what the traced code depends on; the fractions travel as parameters, the noise as data
        self.key = ("road", selection, self.tol, self.max_iter, self.noise > 0)

    def parameters(self, n_pixels: int) -> np.ndarray:
        """(2 F, 8) rows: LeRF flag, floor(f P), the percentile rule's lo, hi, gamma, 1 - gamma
        and upper flag (:func:`percentile_rows`), then P."""
        rows = []
        for lerf in (0.0, 1.0):
            for f in self.fractions:
                rows.append((lerf, float(math.floor(f * n_pixels + 1e-9)), *percentile_rows(f, n_pixels), n_pixels))
        return np.asarray(rows, np.float32)

    def groups(self, parameters: np.ndarray) -> np.ndarray | None:
        """The steps imputed together (:func:`impute_pair`): each MoRF step beside a LeRF step
        that removes none of its pixels, which rank selection guarantees when their counts add
        up to at most P (MoRF at f and LeRF at 1 - f: the default fractions pair up so, 9
        solves instead of 18). (F, 2) rows (MoRF, LeRF) when every MoRF step finds a partner
        (the fewest pixels beside the most: if that fails, so does every pairing), else None:
        one step at a time, as for percentile selection, whose ties can make the two overlap."""
        if self.selection != "rank":
            return None
        f = len(self.fractions)
        counts, n_pixels = parameters[:, _COUNT], parameters[0, _PIXELS]
        morf = sorted(range(f), key=lambda k: counts[k])
        lerf = sorted(range(f, 2 * f), key=lambda k: -counts[k])
        if any(counts[a] + counts[b] > n_pixels for a, b in zip(morf, lerf)):
            return None
        return np.array(list(zip(morf, lerf)), np.int64)

    def per_sample(self, indices: np.ndarray, x_shape: tuple) -> np.ndarray | None:
        """(N, D) float32 noise, D a sample's size: ``noise`` times D standard normals from
        ``np.random.default_rng([seed, index])`` per global index, read as an (H, W, C) field
        whatever the inputs' layout (:meth:`prepare` lays it out), so that an image gets the same
        noise channels last (Keras, JAX) and channels first (PyTorch); None when ``noise`` is
        0. ``x_shape``: one sample's shape, or the batch's (its first axis then dropped)."""
        if self.noise == 0:
            return None
        size = int(np.prod([int(d) for d in (x_shape[1:] if len(x_shape) == 4 else x_shape)]))
        # drawn and scaled in float64, rounded once into the float32 result
        return drawn_per_sample(self.seed, indices, (size,), np.float32, lambda rng: self.noise * rng.standard_normal(size))

    def prepare(self, backend: Backend, x: Any, cams: Any, extra: Any = None) -> dict:
        prepared = {"ranks": salience_ranks(backend, cams)}
        if self.selection == "percentile":
            prepared["cams"] = cams
        if extra is not None:
            prepared["noise"] = _noise_field(backend, x, cams, extra)
        return prepared

    def removed(self, backend: Backend, prepared: dict, parameter: Any) -> Any:
        """The 0/1 mask of the pixels one step removes (channel axis of 1, float32)."""
        ranks = prepared["ranks"]
        lerf = parameter[_LERF] > 0.5
        if self.selection == "rank":
            n_pixels = float(np.prod([int(d) for d in ranks.shape[1:]]))
            count = parameter[_COUNT]
            out = backend.where(lerf, ranks >= n_pixels - count, ranks < count)
            return backend.astype(out, "float32")
        cams = prepared["cams"]
        n_pixels = float(np.prod([int(d) for d in ranks.shape[1:]]))
        dtype = backend.dtype_name(cams)

        def value_at(values, position):  # per sample, the value whose descending rank is position
            picked = backend.where(ranks == position, values, 0.0)
            return _per_channel(backend, picked, tuple(range(1, len(ranks.shape))))

        lo, hi = parameter[_LO], parameter[_HI]
        # ascending position k of cam = descending position P-1-k; of 1 - cam (a monotone map,
        # also after rounding) = 1 - the descending position k of cam
        one_minus = 1.0 - cams
        a = backend.where(lerf, value_at(one_minus, lo), value_at(cams, n_pixels - 1.0 - lo))
        b = backend.where(lerf, value_at(one_minus, hi), value_at(cams, n_pixels - 1.0 - hi))
        gamma = backend.astype(parameter[_GAMMA], dtype)
        one_minus_gamma = backend.astype(parameter[_ONE_MINUS_GAMMA], dtype)
        diff = b - a
        threshold = backend.where(parameter[_UPPER] > 0.5, b - diff * one_minus_gamma, a + diff * gamma)
        values = backend.where(lerf, one_minus, cams)
        return backend.astype(values >= threshold, "float32")

    def apply(self, backend: Backend, x: Any, prepared: dict, parameter: Any) -> Any:
        return self._imputed(backend, x, prepared, [parameter])[0]

    def apply_group(self, backend: Backend, x: Any, prepared: dict, rows: Any) -> list:
        """The two steps of a row of :meth:`groups`, imputed in one solve."""
        return self._imputed(backend, x, prepared, [rows[0], rows[1]])

    def _imputed(self, backend: Backend, x: Any, prepared: dict, parameters: list) -> list:
        """The steps of ``parameters`` (one, or a pair of :meth:`groups`, disjoint by their
        counts: no check of the masks' values, a host sync on eager backends) imputed in one
        solve, plus the noise at each step's removed pixels, in ``x``'s dtype."""
        removed = [self.removed(backend, prepared, parameter) for parameter in parameters]
        outs, _ = _impute(backend, x, tuple(removed), self.tol, self.max_iter, _layout(x, removed[0]), "multigrid",
                          prepared.get("noise"))
        return [backend.astype(out, backend.dtype_name(x)) for out in outs]

    def __repr__(self) -> str:
        return (f"Road(fractions={self.fractions}, noise={self.noise}, seed={self.seed}, "
                f"selection={self.selection!r})")
