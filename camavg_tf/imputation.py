"""ROAD's imputation solver in TensorFlow: the equations of
:mod:`camavg_core.imputation` (its levels, Galerkin coarsening, exact coarse solve and CG steps
are shared) with the iteration, and the multigrid's per-solve set-up, compiled by XLA.

TF runs each product, sum and stencil as its own pass over memory (the iteration's fine level
took 2x the time; a coarse level's smoothing, some 25 small TF ops, 2.3x), so the full-size
work of a CG iteration runs as a few XLA loops (``jit_compile``) called from the graph's while
loop, the reductions left to TF. The solve runs channels first, (B, C, H, W) (the loops
vectorise along a row's W pixels rather than C = 3 channels, 15% off the solve); channels-last
inputs are read through transposes inside the loops that take them and the outputs written in
their layout (:func:`impute_masks`), its full-size fields with a zero border of one pixel
(:func:`_bordered`). The mask and weights stay on one channel, broadcast inside the loops. A
batch is solved as ``STREAMS`` independent parts that TF runs side by side (:func:`impute`).
:meth:`camavg_tf.backend.TensorFlowBackend.impute_fast` sends the solves here, one mask or two
disjoint ones in one field (:func:`camavg_core.imputation.impute_pair`: the fine stencils then
couple only the pixels of one system, :func:`camavg_core.imputation.class_sum`).

>>> import numpy as np, tensorflow as tf
>>> x = tf.constant(np.arange(16.0, dtype=np.float32).reshape(1, 1, 4, 4))  # x[i, j] = 4 i + j
>>> removed = np.zeros((1, 1, 4, 4), np.float32); removed[0, 0, 1:3, 1:3] = 1.0
>>> (out,), _ = impute_masks(x, (tf.constant(removed),), tol=1e-5, max_iter=2000)
>>> np.round(out.numpy()[0, 0, 1:3, 1:3], 4).tolist()   # a linear ramp is its own weighted mean
[[5.0, 6.0], [9.0, 10.0]]
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import tensorflow as tf

from camavg_core.backends import resolve_backend
from camavg_core.imputation import (
    OMEGA,
    OVERCORRECT,
    _FIRST,
    _OFFSETS,
    _add_n,
    _alpha,
    _beta,
    _coarsen,
    _fine_fields,
    _initial,
    _levels,
    _limit,
    _pad,
    _running,
    _stencil,
    _take,
    _weight_sums,
    class_sum,
    neighbour_sum,
)

_AXES = _FIRST  # the iteration runs channels first: (B, C, H, W), W innermost
_TF = resolve_backend("tensorflow")
# a smoothed coarse level's N: its 4 edge neighbours, in the order its loops take them
_EDGES = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _per_channel(v: Any) -> Any:
    """Sum over the rows and columns of (B, C, H, W), kept as axes of 1: one reduction over
    the H W contiguous values of each channel."""
    c, h, w = (int(d) for d in v.shape[1:])
    total = tf.reduce_sum(tf.reshape(v, (-1, c, h * w)), axis=-1)
    return tf.reshape(total, (-1, c, 1, 1))


def _restrict(v: Any) -> Any:
    """R / 4: the 2 x 2 average (an odd size zero-padded first) of (B, c, h, w), by strided
    slices, inside the XLA loop whose output it pools (TF's average pool of channels first,
    through a (B c, h, w, 1) view, took 2x its channels-last time, a loop's own time). The 4
    is put back on the coarse data."""
    h, w = int(v.shape[2]), int(v.shape[3])
    if h % 2 or w % 2:
        v = tf.pad(v, [[0, 0], [0, 0], [0, h % 2], [0, w % 2]])
    rows = v[:, :, 0::2] + v[:, :, 1::2]
    return 0.25 * (rows[..., 0::2] + rows[..., 1::2])


def _banded(backend: Any, coefficients: dict, h: int, w: int, extra: Any) -> Any:
    """The dense (B, n, n) matrix of a 9-point operator on an h x w grid, n = h w, from its
    diagonals (offset d is the diagonal k = d_0 w + d_1, indexed by row), plus ``extra`` (B, n)
    on the main diagonal: one op filling the band, 3x faster than the product with the shift
    matrices and the identity's (:func:`camavg_core.imputation._dense`)."""
    n = h * w
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    band = w + 1
    rows = {}
    for d in _OFFSETS:
        inside = ((i + d[0] >= 0) & (i + d[0] < h) & (j + d[1] >= 0) & (j + d[1] < w)).reshape(n)
        if not inside.any():
            # no cell has this neighbour: no entry; on a grid one cell wide or high its diagonal
            # would be another offset's (w = 1: (0, 1) is (1, 0)'s, (1, -1) the main diagonal)
            continue
        flat = tf.reshape(coefficients[d], (-1, n))
        if d == (0, 0):
            flat = flat + extra
        if not inside.all():  # a neighbour across the grid's edge is no entry (a row's wrap)
            flat = flat * tf.constant(inside.astype(flat.dtype.as_numpy_dtype))
        rows[d[0] * w + d[1]] = flat
    zero = tf.zeros_like(rows[0])
    diagonals = tf.stack([rows.get(k, zero) for k in range(band, -band - 1, -1)], axis=1)
    return tf.linalg.diag(diagonals, k=(-band, band), num_rows=n, num_cols=n, align="LEFT_RIGHT")


def _first(x: Any, last: bool) -> Any:
    """(B, H, W, C) ``x`` channels first where ``last``: inside an XLA loop, a transposed read
    rather than a copy."""
    return tf.transpose(x, (0, 3, 1, 2)) if last else x


def _inner(v: Any) -> Any:
    """The interior of a bordered (B, c, h + 2, w + 2) field."""
    return _take(v, _AXES, slice(1, -1), slice(1, -1))


def _bordered(v: Any) -> Any:
    """(B, c, h, w) with a zero border of one pixel: the form every field the loop runs a
    stencil on is kept in, so a stencil reads its neighbours by slices of its operand. A pad
    inside the loop that reads it (the stencil's own zero padding) made XLA write a padded
    copy first, two more passes over memory: a bordered operand made the fine operator's loop
    2.6x faster. A pad of a loop's result is part of that loop."""
    return _pad(_TF, v, _AXES)


def _neighbours(v: Any, sign: Any) -> Any:
    """The neighbour sum N v of the interior of a bordered field, over the neighbours of the
    same system where two share the field (``sign`` bordered, else None: the core's
    :func:`~camavg_core.imputation.class_sum`), by slices (XLA fuses them with the products
    around them; its depthwise convolution ran 40x slower)."""
    return class_sum(_TF, v, sign, _AXES, padded=True)


def _coarse_edges(fields: tuple, v: Any) -> Any:
    """A smoothed coarse level's N v, ``fields`` its 4 edge coefficients (one channel each,
    broadcast) in the order of ``_EDGES``."""
    return _stencil(_TF, dict(zip(_EDGES, fields)), v, _AXES)


def _prolonged(coarse: Any, h: int, w: int) -> Any:
    """P coarse, each value copied to its 2 x 2 block (a broadcast the loop fuses), cropped to
    (h, w)."""
    c, ch, cw = (int(d) for d in coarse.shape[1:])
    fine = tf.broadcast_to(coarse[:, :, :, None, :, None], tf.stack([tf.shape(coarse)[0], c, ch, 2, cw, 2]))
    return tf.reshape(fine, (-1, c, 2 * ch, 2 * cw))[:, :, :h, :w]


def _prolonged_bordered(coarse: Any, h: int, w: int) -> Any:
    """P coarse on the bordered fine grid (h + 2, w + 2): the coarse field bordered too (a
    quarter-size copy), each value copied to its 2 x 2 block, the border's half blocks cut off
    (bordered fine pixel i takes bordered coarse cell (i + 1) // 2). Where a size is odd the
    fine border's last row or column holds the last coarse cell, not 0: every use multiplies
    it by the mask, which is 0 there."""
    coarse = _bordered(coarse)
    return _prolonged(coarse, 2 * int(coarse.shape[2]), 2 * int(coarse.shape[3]))[:, :, 1: h + 3, 1: w + 3]


_FUSED: dict = {}


def _fused() -> dict:
    """The kernels of a CG iteration, each compiled by XLA into one loop over the pixels: a
    second output only where it is pointwise (a stencil's product as a second output
    recomputed the stencil), no reductions (XLA's CPU reductions ran several times slower than
    TF's: TF does them; the restriction's 2 x 2 average is no reduction, it is pooled in the loop
    that makes its input). Every full-size field is bordered (:func:`_bordered`): a loop with
    a stencil computes the interior and borders its result, a pointwise one runs over the
    border too (0 stays 0). The fine masks and weights come bordered with a channel axis of 1,
    broadcast in the loop; the coarse levels' fields as they are. ``sign``: None for one system,
    else first - second of two in one field, bordered (:func:`_neighbours`). ``omega``
    (the smoother's damping) and ``correction`` (the coarse correction's factor) are
    constants of the trace. Built once (each kernel traces and compiles once per shape)."""
    if _FUSED:
        return _FUSED
    compile = tf.function(jit_compile=True, autograph=False)  # noqa: A001

    @compile
    def apply(p, s, sign):
        """A p = s p - N p (``s`` the interior's weight sums)."""
        return _bordered(s * _inner(p) - _neighbours(p, sign))

    @compile
    def axpy(a, x, y):
        """y + a x, ``a`` per image and channel."""
        return y + a * x

    def smoothed_residual(r, m, weight, omega, sign):
        """Pre-smoothing e = W r, then the masked residual m (r - A e) = m ((1 - omega) r + N e)
        (the core's fine_cycle), restricted (R / 4), as it is (a pad of the restricted result
        made the loop 1.5x slower)."""
        return _restrict(_inner(m) * ((1.0 - omega) * _inner(r) + _neighbours(weight * r, sign)))

    @compile
    def residual(r, m, weight, omega, sign):
        return smoothed_residual(r, m, weight, omega, sign)

    @compile
    def corrected(r, coarse, m, weight, correction):
        """e2 = W r + correction m P coarse (e = W r recomputed, P a broadcast), bordered."""
        return weight * r + correction * m * _prolonged_bordered(coarse, int(r.shape[2]) - 2, int(r.shape[3]) - 2)

    @compile
    def smoothed(e2, r, weight, omega, sign):
        """The post-smoothing e2 + W (r - A e2) = (1 - omega) e2 + W r + W N e2, with e2 a
        loop's input: the stencil of e2 computed in the same loop ran 1.5x slower."""
        inner_weight = _inner(weight)
        return _bordered((1.0 - omega) * _inner(e2) + inner_weight * _inner(r) + inner_weight * _neighbours(e2, sign))

    @compile
    def coarse_residual(r, edges, inverse):
        """A coarse level's pre-smoothing e = D^-1 r and its residual r - A e = N e, restricted.
        The coarse levels' fields are kept as they are: bordered, with the pads at the ends of
        their loops, they ran 1.6x slower."""
        return _restrict(_coarse_edges(edges, inverse * r))

    @compile
    def coarse_smoothed(r, coarse, edges, inverse, correction):
        """e2 = e + correction P coarse, then the post-smoothing e + D^-1 N e2 (e = D^-1 r)."""
        e = inverse * r
        e2 = e + correction * _prolonged(coarse, int(r.shape[2]), int(r.shape[3]))
        return e + inverse * _coarse_edges(edges, e2)

    @compile
    def descent(alpha, ap, r, m, weight, omega, sign):
        """CG's r - alpha A p and ``residual`` of it (restricted): one pass fewer than two loops (the second
        output, r itself, is pointwise: a product of the stencil as a second output made XLA
        compute the stencil twice, 1.3x slower)."""
        r = r - alpha * ap
        return r, smoothed_residual(r, m, weight, omega, sign)

    @compile
    def update(alpha, beta, p, u, z):
        """CG's u + alpha p and next direction z + beta p: one pass over p."""
        return u + alpha * p, z + beta * p

    _FUSED.update(apply=apply, axpy=axpy, residual=residual, corrected=corrected, smoothed=smoothed,
                  descent=descent, update=update, coarse_residual=coarse_residual,
                  coarse_smoothed=coarse_smoothed)
    return _FUSED


_SETUP: dict = {}


def _setup_kernels() -> dict:
    """The per-solve set-up in XLA loops, as :func:`_fused` does for the iteration: the sums
    the start needs, the start and its residual, the result, and the Galerkin coarsening (one kernel per level: one for all
    recomputed the finer levels inside each coarse value). The masks and weights come with a
    channel axis of 1, broadcast in the loops; each sum's operands leave concatenated along the
    channels, for one TF reduction (XLA's CPU reductions are slow). ``x``, the masks (one per
    system, ``masks``), their union ``m``, ``sign`` and ``s`` come as they are; the iteration's
    fields, bordered."""
    if _SETUP:
        return _SETUP
    compile = tf.function(jit_compile=True, autograph=False)  # noqa: A001

    @compile
    def start(x, masks, last):
        """[(1 - m_k) x per system k, x, 1 - m_k per system] to sum."""
        x = _first(x, last)
        return tf.concat([(1.0 - m) * x for m in masks] + [x] + [1.0 - m for m in masks], 1)

    @compile
    def centred(x, mean, last):
        """(x - mean)^2, channels first, to sum."""
        return tf.math.squared_difference(_first(x, last), mean)

    @compile
    def residual(x, masks, means, last):
        """The start u = sum_k m_k mean_k and its residual rhs - A u = sum_k m_k N((1 - m_k)
        (x - mean_k)) (the core's :func:`~camavg_core.imputation._initial`): no difference of
        two large terms (the difference's rounding stays in the solution: its error vs spsolve
        doubled); bordered."""
        x = _first(x, last)
        u = _add_n([m * mean for m, mean in zip(masks, means)])
        r = _add_n([m * neighbour_sum(_TF, (1.0 - m) * (x - mean), _AXES) for m, mean in zip(masks, means)])
        return _bordered(u), _bordered(r)

    @compile
    def restore(x, masks, u, noise, last):
        """(1 - m_k) x + m_k (u + noise) per system k (``u`` bordered, channels first; ``x``,
        the masks, ``noise`` and the outputs in ``x``'s layout)."""
        u = _inner(u)
        if last:
            u = tf.transpose(u, (0, 2, 3, 1))
        if noise is not None:
            u = u + noise
        return tuple((1.0 - m) * x + m * u for m in masks)

    @compile
    def fine_galerkin(m, s, sign):
        """The fine operator's 9 fields coarsened once."""
        coarse = _coarsen(_TF, _fine_fields(_TF, m, s, _AXES, sign), _AXES)
        return tuple(coarse[d] for d in _OFFSETS)

    @compile
    def galerkin(*fields):
        coarse = _coarsen(_TF, dict(zip(_OFFSETS, fields)), _AXES)
        return tuple(coarse[d] for d in _OFFSETS)

    _SETUP.update(start=start, centred=centred, residual=residual, restore=restore,
                  fine_galerkin=fine_galerkin, galerkin=galerkin)
    return _SETUP


def _multigrid(m: Any, s: Any, has_known: Any, sign: Any) -> Any:
    """The core's V-cycle (:func:`camavg_core.imputation._multigrid`) in XLA loops: the fine
    level's smoothing and correction in three, each smoothed coarse level's in two (its N and
    D^-1 one channel each), the Galerkin operators from :func:`_setup_kernels`, the
    restriction a 2 x 2 average in the residual's loop (R / 4: the 4 goes on the coarse
    correction's factor); everything channels first, the full-size fields bordered
    (:func:`_bordered`).
    ``m``, ``s``: the mask (the union of the systems') and weight sums with a channel axis of
    1, as they are; ``sign``: None for one system, else first - second, as it is;
    ``has_known``: (B,) 1 where an image can be solved. Returns r -> z = M r, and (r, alpha, A p) -> (r -
    alpha A p, M of it), CG's update of r in the V-cycle's first loop."""
    setup, kernels = _setup_kernels(), _fused()

    def coarsen(coefficients):
        if coefficients is None:
            return dict(zip(_OFFSETS, setup["fine_galerkin"](m, s, sign)))
        return dict(zip(_OFFSETS, setup["galerkin"](*(coefficients[d] for d in _OFFSETS))))

    smoothed, exact = _levels(_TF, m, s, _AXES, coarsen, has_known, dense=_banded, add_n=tf.add_n)
    fields = [(tuple(edges[d] for d in _EDGES), inverse) for edges, inverse, _ in smoothed]
    fine_weight = _bordered((OMEGA * m) / s)  # one channel, broadcast in the loops
    mask = _bordered(m)
    sign = None if sign is None else _bordered(sign)
    correction = 4.0 * OVERCORRECT  # the pooled restriction's 1/4 put back

    def cycle(level: int, r: Any) -> Any:
        if level > len(fields):
            return exact(r)
        edges, inverse = fields[level - 1]
        coarse = cycle(level + 1, kernels["coarse_residual"](r, edges, inverse))
        return kernels["coarse_smoothed"](r, coarse, edges, inverse, correction)

    def precondition(r: Any, alpha: Any = None, ap: Any = None) -> Any:
        if alpha is None:
            residual = kernels["residual"](r, mask, fine_weight, OMEGA, sign)
        else:
            r, residual = kernels["descent"](alpha, ap, r, mask, fine_weight, OMEGA, sign)
        coarse = cycle(1, residual)
        e2 = kernels["corrected"](r, coarse, mask, fine_weight, correction)
        z = kernels["smoothed"](e2, r, fine_weight, OMEGA, sign)
        return z if alpha is None else (r, z)

    return precondition


#: independent solves a batch is split into (:func:`impute`)
STREAMS = 2


def impute_masks(x: Any, masks: tuple, *, tol: float, max_iter: int, preconditioner: str = "multigrid",
                 channels_last: bool = False, noise: Any = None) -> tuple:
    """:func:`camavg_core.imputation.impute` (one mask) or :func:`~camavg_core.imputation.
    impute_pair` (two disjoint ones in one field) for (B, C, H, W) ``x`` and (B, 1, H, W)
    ``masks``, or (B, H, W, C) and (B, H, W, 1) with ``channels_last``, all in the compute
    dtype: ``(outputs, iterations)``, one output per mask in ``x``'s layout, plus ``noise``
    (shaped as ``x``, or None) at its removed pixels. The same start, preconditioner, stopping
    rule and result, the iteration's full-size products, sums and stencils in XLA loops; with
    the multigrid, the set-up too. Channels-last ``x`` is read through a transpose by the
    loops that need it (the sums, the variance, the start's residual), not copied channels
    first, and one loop writes the outputs in ``x``'s layout with the noise, on the whole
    batch (the parts' solutions joined): ROAD's 9 paired solves of a 64-image batch at 96 px
    took 0.955x the time of copies in and out and the noise added by graph ops (docs/road.md).

    The batch is solved as ``STREAMS`` parts (images first - last, in order; a part may be
    empty), each its own graph loop: nothing joins them, so TF's executor runs them side by
    side, one's sums, small ops and loop control beside the other's XLA loops (one loop over
    64 images kept 1.6 of the 2 cores busy; two over 32 each 1.9, 0.78x the time). Each part
    stops when its own images meet the rule; the iterations returned are the most any took."""
    given = masks  # in x's layout, for the result
    if channels_last:  # the solver's masks channels first: their one channel moves by a reshape
        masks = tuple(tf.reshape(m, (-1, 1, *(int(d) for d in m.shape[1:3]))) for m in masks)
    n = tf.shape(x)[0]
    bounds = [(k * n) // STREAMS for k in range(STREAMS + 1)]
    solved = [_solve(x[lo:hi], tuple(m[lo:hi] for m in masks), tol=tol, max_iter=max_iter,
                     preconditioner=preconditioner, last=channels_last)
              for lo, hi in zip(bounds[:-1], bounds[1:])]
    u = tf.concat([part for part, _ in solved], 0)
    # one pass writes the outputs, in x's layout
    outs = _setup_kernels()["restore"](x, given, u, noise, channels_last)
    return outs, tf.reduce_max(tf.stack([i for _, i in solved]))


def _solve(x: Any, masks: tuple, *, tol: float, max_iter: int, preconditioner: str, last: bool) -> tuple:
    """One part's solve: (u, the solution at the removed pixels and 0 elsewhere, channels
    first and bordered; the iterations taken). ``x`` channels last where ``last``, the masks
    channels first."""
    backend = _TF
    dtype = backend.dtype_name(x)
    k = len(masks)
    channels, h, w = (int(d) for d in ((x.shape[3], *x.shape[1:3]) if last else x.shape[1:]))
    m = _add_n(list(masks))  # the union
    sign = None if k == 1 else masks[0] - masks[1]
    # each pixel's in-image weight sum depends on the shape only: a constant
    s = tf.constant(_weight_sums(resolve_backend("numpy"), np.ones((1, 1, h, w))), dtype)
    kernels, setup = _fused(), _setup_kernels()
    bordered_sign = None if sign is None else _bordered(sign)
    if preconditioner == "multigrid":
        sums = _per_channel(setup["start"](x, masks, last))  # (B, (k + 1) C + k, 1, 1)
        known_x = [sums[:, j * channels: (j + 1) * channels] for j in range(k)]
        mean = sums[:, k * channels: (k + 1) * channels] / float(h * w)
        variance = _per_channel(setup["centred"](x, mean, last)) / float(h * w)
        counts = [sums[:, (k + 1) * channels + j: (k + 1) * channels + j + 1] for j in range(k)]
        has_known = [count > 0.0 for count in counts]
        live = functools.reduce(tf.logical_and, has_known)  # every system knows a pixel
        means = tuple(backend.where(ok, total / backend.maximum(count, 1.0), mean)
                      for ok, total, count in zip(has_known, known_x, counts))
        precondition = _multigrid(m, s, backend.astype(backend.reshape(live, (-1,)), dtype), sign)
        u, r = setup["residual"](x, masks, means, last)
        z = precondition(r)
        descend = precondition  # r - alpha A p in the V-cycle's first loop
    else:
        # Jacobi: the weights copied to every channel once (TF's CPU product broadcast over the
        # channels ran several times slower than one of equal shapes), the set-up the core's
        if last:  # a check, not a way to measure: channels first by a copy
            x = tf.transpose(x, (0, 3, 1, 2))
        wide = tuple(tf.tile(v, [1, channels, 1, 1]) for v in masks)
        wide_m, wide_s = _add_n(list(wide)), tf.tile(s * tf.ones_like(m), [1, channels, 1, 1])
        jacobi = wide_m / wide_s
        u, r, live, mean, variance = _initial(backend, x, wide, _AXES)
        u, r, z, jacobi = (_bordered(v) for v in (u, r, jacobi * r, jacobi))

        def descend(r, alpha, ap):
            r = kernels["axpy"](-alpha, ap, r)
            return r, jacobi * r
    rz = _per_channel(r * z)
    limit = _limit(backend, mean, variance, live, tol)  # the core's rule

    def cond(i, u, r, p, rz):
        return (i < max_iter) & _running(backend, rz, limit)

    def body(i, u, r, p, rz):
        ap = kernels["apply"](p, s, bordered_sign)
        alpha = _alpha(backend, rz, limit, _per_channel(p * ap))
        r, z = descend(r, alpha, ap)
        rz_new = _per_channel(r * z)
        u, p = kernels["update"](alpha, _beta(backend, rz, rz_new), p, u, z)  # u, deferred, shares p's pass
        return i + 1, u, r, p, rz_new

    zero = backend.astype(backend.asarray(0), "int32")
    iterations, u, _, _, _ = backend.while_loop(cond, body, (zero, u, r, z, rz))
    # u is 0 at the pixels no system removes (it moves along masked directions only)
    return u, iterations
