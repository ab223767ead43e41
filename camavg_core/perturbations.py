"""Perturbations: what a metric does to the inputs before the model sees them again.

A perturbation is a schedule of K steps. An adapter's compiled pass runs it: for each batch
(outer loop) it calls :meth:`Perturbation.prepare` once, then for each step (inner loop)
:meth:`Perturbation.apply` with that step's row of :meth:`Perturbation.parameters`, then
``preprocess``, the model and the activation; the outputs have shape (K, N, ...), in step order.
A perturbation may compute several steps together (:func:`step_groups`, :func:`apply_group`):
the inner loop then runs over its groups. The
parameters enter the pass as a tensor, so neither K nor their values re-trace it: one trace per
``(perturbation.key, options, per-sample shapes)`` (and group size). One perturbed batch exists
at a time (one group's, when grouped), never K copies of the inputs.

The three averages use :data:`CAM_MASK`, the one-step case: :math:`x_i \\cdot L_i`, the CAM
broadcast over the channels.

A perturbation is written once for every framework, with the backend's operations
(:class:`camavg_core.backends.Backend`) and the arrays' operators. For example, removing the
``m`` most salient pixels of each sample (ties broken by the row-major index):

>>> import numpy as np
>>> from camavg_core.backends import resolve_backend
>>> class RemoveMostSalient:
...     key, steps = ("remove_most_salient",), 1
...     def parameters(self, n_pixels):
...         return np.array([[n_pixels // 2]], np.float32)
...     def prepare(self, backend, x, cams):
...         return salience_ranks(backend, cams)
...     def apply(self, backend, x, ranks, parameter):
...         return x * backend.astype(ranks >= parameter[0], backend.dtype_name(x))
>>> bk = resolve_backend("numpy")
>>> x, cams = np.ones((1, 2, 2, 1)), np.array([[0.1, 0.9], [0.5, 0.9]])[None, ..., None]
>>> perturbation = RemoveMostSalient()
>>> prepared = perturbation.prepare(bk, x, cams)
>>> perturbation.apply(bk, x, prepared, perturbation.parameters(4)[0])[0, ..., 0].tolist()
[[1.0, 0.0], [1.0, 0.0]]
"""
from __future__ import annotations

import math
from typing import Any, Hashable, Protocol, runtime_checkable

import numpy as np

from camavg_core import validation
from camavg_core.backends import Backend, resolve_backend, work_dtype


# --------------------------------------------------------------------------- deletion and insertion curves
# Deletion and insertion curves: the pixel counts of their steps, their baselines, and the
# per-sample area under a curve.
#
# For an input of :math:`P = H \times W` pixels, ``steps`` = :math:`K` and ``max_fraction`` =
# :math:`f`, step :math:`i = 0, \dots, K` perturbs the
#
# .. math::
#
#     k_i = \left\lfloor \frac{i \, \lfloor P f \rfloor}{K} \right\rfloor
#
# most salient pixels (the CAM's order, highest first, ties by row-major index). A sample's curve
# is its scores :math:`s_0, \dots, s_K` at these steps; its area is the trapezoid rule over the
# fraction axis scaled to [0, 1] (:func:`auc_terms`). The perturbations themselves are
# :class:`camavg_core.perturbations.Deletion` and :class:`camavg_core.perturbations.Insertion`.

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


# --------------------------------------------------------------------------- perturbations
@runtime_checkable
class Perturbation(Protocol):
    """A K-step schedule of perturbed inputs (see the module's docstring).

    Attributes:
        key: what a compiled pass is keyed by (e.g. ``("cam_mask",)``); never the step values.
            Equal keys promise the same ``prepare`` and ``apply``.
        steps: K >= 1.

    Optionally ``per_sample(indices, x_shape) -> (N, ...) | None``: host data drawn from each
    sample's global index (e.g. :class:`camavg_core.mufidelity.MuFidelity`'s masks), batched
    with the inputs and given to ``prepare(backend, x, cams, extra)`` as the batch's rows.

    Optionally, steps computed together (e.g. ROAD's MoRF at f and LeRF at 1 - f, which impute
    disjoint pixels in one solve), both or neither:

    - ``groups(parameters) -> (G, S) | None``: host side, given the (K, P) step parameters,
      a (G, S) integer array of step indices holding each of 0..K-1 exactly once: the steps
      that ``apply_group`` computes together; None for one step at a time.
    - ``apply_group(backend, x, prepared, rows) -> list``: traced; ``rows`` is (S, P), S
      static; returns the S perturbed batches, in the order of the rows.

    An adapter reaches them through :func:`step_groups` and :func:`apply_group`; the model
    still runs once per step, and the outputs come back in step order.
    """

    key: Hashable
    steps: int

    def parameters(self, n_pixels: int) -> np.ndarray:
        """(K, P) float32 host array of the steps' parameters (P >= 1), passed into the
        compiled pass as a tensor: changing them never re-traces. ``n_pixels`` is H * W of the
        (first) model input."""

    def prepare(self, backend: Backend, x: Any, cams: Any) -> Any:
        """Per batch, traced: whatever the steps share (e.g. a pixel ranking). ``x``: one model
        input's batch in its layout and dtype; ``cams``: that input's CAMs from
        :func:`camavg_core.masking.cam_maps`: at ``x``'s spatial size, normalised when asked,
        float32 (float64 for float64 inputs), with a channel axis of 1 where ``x`` has its
        channels ((B, H, W, 1) or (B, 1, H, W)), so they broadcast against ``x``. Returns a
        pytree of arrays."""

    def apply(self, backend: Backend, x: Any, prepared: Any, parameter: Any) -> Any:
        """Traced: the perturbed batch for one step, the shape and dtype of ``x``.
        ``parameter``: one row of :meth:`parameters`, shape (P,)."""


class CamMask:
    """The one-step perturbation of the three averages: ``x * cam``, the CAM broadcast over
    the channels (the numbers of :func:`camavg_core.masking.mask_inputs`).

    >>> import numpy as np
    >>> from camavg_core.backends import resolve_backend
    >>> bk = resolve_backend("numpy")
    >>> x = np.full((1, 2, 2, 3), 2.0)
    >>> cams = np.array([[[0.0, 0.5], [1.0, 0.25]]])[..., None]
    >>> CAM_MASK.apply(bk, x, CAM_MASK.prepare(bk, x, cams), CAM_MASK.parameters(4)[0])[0, ..., 0].tolist()
    [[0.0, 1.0], [2.0, 0.5]]
    """

    key = ("cam_mask",)
    steps = 1

    def parameters(self, n_pixels: int) -> np.ndarray:
        return np.zeros((1, 1), np.float32)  # the mask has no parameter; P >= 1 all the same

    def prepare(self, backend: Backend, x: Any, cams: Any) -> Any:
        return backend.astype(cams, backend.dtype_name(x))

    def apply(self, backend: Backend, x: Any, prepared: Any, parameter: Any) -> Any:
        return x * prepared

    def __repr__(self) -> str:
        return "CAM_MASK"


#: The perturbation of Average Drop, Increase and Gain.
CAM_MASK = CamMask()


def salience_ranks(backend: Backend, cams: Any) -> Any:
    """Each pixel's place in its sample's order of decreasing CAM value, ties broken by the
    row-major index (a stable sort): 0 for the most salient pixel. Same shape as ``cams``,
    float32 (exact up to 2**24 pixels), so a step compares it with a traced parameter.

    >>> import numpy as np
    >>> from camavg_core.backends import resolve_backend
    >>> salience_ranks(resolve_backend("numpy"), np.array([[[0.2, 0.9], [0.2, 0.5]]])).tolist()
    [[[2.0, 0.0], [3.0, 1.0]]]
    """
    shape = backend.shape(cams)
    flat = backend.reshape(cams, (shape[0], -1))
    order = backend.argsort(flat, axis=-1, descending=True)
    ranks = backend.invert_permutation(order)  # each pixel's place in the order
    return backend.reshape(backend.astype(ranks, "float32"), shape)


def pixel_count(shape: tuple, data_format: str) -> int:
    """H * W (the product of the spatial axes) of a batch of shape ``shape``."""
    spatial = shape[1:-1] if data_format == "channels_last" else shape[2:]
    return int(math.prod(int(s) for s in spatial))


def step_parameters(perturbation: Perturbation, n_pixels: int) -> np.ndarray:
    """``perturbation.parameters(n_pixels)``, checked: a (K, P) float32 array of finite values
    with K == ``perturbation.steps`` >= 1 and P >= 1."""
    steps = getattr(perturbation, "steps", None)
    if not validation.is_integer(steps) or steps < 1:
        raise ValueError(validation.bad_perturbation_steps(perturbation, steps))
    parameters = np.asarray(perturbation.parameters(n_pixels), dtype=np.float32)
    if parameters.ndim != 2 or parameters.shape[0] != steps or parameters.shape[1] < 1 or not np.isfinite(parameters).all():
        raise ValueError(validation.bad_perturbation_parameters(perturbation, steps, parameters))
    return parameters


def step_groups(perturbation: Perturbation, parameters: np.ndarray) -> np.ndarray:
    """(G, S) int64 step indices: ``perturbation.groups(parameters)`` checked (a 2-D integer
    array holding each of 0..K-1 exactly once), or one step per group, ``arange(K)[:, None]``,
    when the perturbation has no ``groups`` or it returns None.

    >>> class Paired(CamMask):
    ...     def groups(self, parameters):
    ...         return np.array([[3, 0], [1, 2]])
    >>> step_groups(Paired(), np.zeros((4, 1), np.float32)).tolist()
    [[3, 0], [1, 2]]
    >>> step_groups(CAM_MASK, np.zeros((2, 1), np.float32)).tolist()
    [[0], [1]]
    """
    steps = len(parameters)
    chosen = getattr(perturbation, "groups", None)
    groups = None if chosen is None else chosen(parameters)
    if groups is None:
        return np.arange(steps, dtype=np.int64)[:, None]
    try:
        seen = np.asarray(groups)
    except (TypeError, ValueError):  # ragged lists
        raise ValueError(validation.bad_perturbation_groups(perturbation, steps, groups)) from None
    if (seen.ndim != 2 or seen.shape[1] < 1 or not np.issubdtype(seen.dtype, np.integer)
            or not np.array_equal(np.sort(seen, axis=None), np.arange(steps))):
        raise ValueError(validation.bad_perturbation_groups(perturbation, steps, groups))
    return seen.astype(np.int64)


def drawn_per_sample(seed: int, indices: Any, shape: tuple, dtype: Any, draw: Any) -> np.ndarray:
    """(N, *shape) ``dtype``: row n is ``draw(np.random.default_rng([seed, indices[n]]))``,
    written into the result as it is drawn (one row's draw alive at a time). The rule a
    perturbation's ``per_sample`` follows, so that a sample gets the same data in memory, in a
    stream and in any batch size.

    >>> a = drawn_per_sample(3, [5, 6], (2,), np.float32, lambda rng: rng.random(2))
    >>> bool((a[1] == drawn_per_sample(3, [6], (2,), np.float32, lambda rng: rng.random(2))[0]).all())
    True
    """
    out = np.empty((len(indices), *shape), dtype)
    for row, index in enumerate(indices):
        out[row] = draw(np.random.default_rng([seed, int(index)]))
    return out


def step_order(groups: np.ndarray) -> np.ndarray:
    """Where each step's output lands in a pass that runs ``groups`` (:func:`step_groups`) one
    after the other, its S steps in row order: step k at place ``step_order(groups)[k]``, so
    ``outputs[step_order(groups)]`` puts them back in step order.

    >>> step_order(np.array([[3, 0], [1, 2]])).tolist()
    [1, 2, 3, 0]
    """
    return np.argsort(groups.reshape(-1))


def apply_group(perturbation: Perturbation, backend: Backend, x: Any, prepared: Any, rows: Any) -> list:
    """The S perturbed batches of the (S, P) parameter ``rows`` (S static), in their order:
    ``perturbation.apply_group`` when it has one and S > 1, else one ``apply`` per row."""
    size = int(backend.shape(rows)[0])
    together = getattr(perturbation, "apply_group", None)
    if size == 1 or together is None:
        return [perturbation.apply(backend, x, prepared, rows[i]) for i in range(size)]
    batches = list(together(backend, x, prepared, rows))
    if len(batches) != size:
        raise ValueError(validation.bad_group_batches(perturbation, size, len(batches)))
    return batches


# --------------------------------------------------------------------------- deletion, insertion
class _PixelCurve:
    """What Deletion and Insertion share: the pixel counts of the steps, the baseline, the
    ranking. ``steps`` is the number of rows the compiled pass runs; ``curve_steps`` the
    curve's K (it has K + 1 points); the point of ``reuses_plain`` ("first", "last" or None) is
    the plain input, whose score Y_c the caller already has (:func:`camavg_core.perturbations.full_curve`
    puts it in place)."""

    name = "curve"

    def __init__(self, steps: int = 10, baseline: float | str | Any = 0.0, max_fraction: float = 1.0) -> None:
        if not validation.is_integer(steps) or steps < 1:
            raise ValueError(validation.bad_curve_steps(self.name, steps))
        if not validation.is_number(max_fraction) or not 0.0 < float(max_fraction) <= 1.0:
            raise ValueError(validation.bad_curve_max_fraction(self.name, max_fraction))
        if isinstance(baseline, str):
            if baseline != "blur":
                raise ValueError(validation.bad_curve_baseline(self.name, baseline))
            kind: Hashable = "blur"
        elif callable(baseline):
            kind = baseline
        elif validation.is_number(baseline) and math.isfinite(baseline):
            kind, baseline = "number", float(baseline)
        else:
            raise TypeError(validation.bad_curve_baseline(self.name, baseline))
        self.curve_steps = int(steps)
        self.baseline = baseline
        self.max_fraction = float(max_fraction)
        self.reuses_plain = self._reused_point()
        self.steps = self.curve_steps + (self.reuses_plain is None)
        # a number travels as a parameter: one trace for every value, steps and max_fraction
        self.key = (self.name, kind)

    def _reused_point(self) -> str | None:
        raise NotImplementedError

    @property
    def fractions(self) -> np.ndarray:
        """(K + 1,) the share of the pixels perturbed at each point of the curve, 0 to
        ``max_fraction`` (before :meth:`counts` floors it to whole pixels): the curve's x, as
        ROAD's ``fractions`` are its curves'."""
        return np.linspace(0.0, self.max_fraction, self.curve_steps + 1)

    def counts(self, n_pixels: int) -> np.ndarray:
        """(K + 1,) pixel counts :math:`k_i` of the whole curve (:func:`camavg_core.perturbations.pixel_counts`)."""
        return pixel_counts(n_pixels, self.curve_steps, self.max_fraction)

    def parameters(self, n_pixels: int) -> np.ndarray:
        """One row per step run: (k_i, the baseline number or 0), float32 (exact to 2**24 pixels)."""
        counts = self.counts(n_pixels)
        counts = counts[1:] if self.reuses_plain == "first" else counts[:-1] if self.reuses_plain == "last" else counts
        number = self.baseline if isinstance(self.baseline, float) else 0.0
        return np.stack([counts, np.full(len(counts), number)], axis=1).astype(np.float32)

    def prepare(self, backend: Backend, x: Any, cams: Any) -> Any:
        ranks = salience_ranks(backend, cams)
        if isinstance(self.baseline, float):
            return (ranks,)
        if self.baseline == "blur":
            # the spatial axes are those where the maps are not 1 (the maps' channel axis is 1)
            shape = backend.shape(cams)
            return ranks, gaussian_blur(backend, x, tuple(a for a in range(1, len(shape)) if shape[a] != 1))
        return ranks, backend.astype(backend.asarray(self.baseline(x)), backend.dtype_name(x))

    def _baseline(self, backend: Backend, x: Any, prepared: Any, parameter: Any) -> Any:
        return backend.astype(parameter[1], backend.dtype_name(x)) if len(prepared) == 1 else prepared[1]

    def curve(self, y_c: Any, step_scores: Any, *, backend: str | Backend | None = None) -> Any:
        """(N, K + 1) curves: the (rows, N) scores of the steps with ``y_c`` put in the reused
        point's place (:func:`camavg_core.perturbations.full_curve`)."""
        return full_curve(y_c, step_scores, self.reuses_plain, backend=backend)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(steps={self.curve_steps}, baseline={self.baseline!r}, "
                f"max_fraction={self.max_fraction})")


class Deletion(_PixelCurve):
    r"""RISE's deletion curve: step :math:`i` sets the :math:`k_i` most salient pixels (all
    their channels) to the baseline, :math:`k_i = \lfloor i \lfloor P f \rfloor / K \rfloor`
    for :math:`i = 0..K` (:mod:`camavg_core.perturbations`). Its first point (:math:`k_0 = 0`) is the
    plain input: the pass runs the K others (``reuses_plain = "first"``) and
    :meth:`curve` puts Y_c first.

    Args:
        steps: K, the curve's intervals (K + 1 points).
        baseline: a finite number; ``"blur"`` (the inputs blurred per channel by a Gaussian of
            11 taps and sigma 5 with the reflect border, :func:`camavg_core.perturbations.gaussian_blur`);
            or a callable of the batch (the framework's array, in its layout) returning the
            baseline batch, traced with the pass. A number is rounded to float32.
        max_fraction: f, the share of the P = H x W pixels the last step reaches.

    >>> from camavg_core.backends import resolve_backend
    >>> bk, deletion = resolve_backend("numpy"), Deletion(steps=2, baseline=-1.0)
    >>> x, cams = np.ones((1, 2, 2, 1)), np.array([[[0.1, 0.9], [0.5, 0.7]]])[..., None]
    >>> deletion.parameters(4).tolist()
    [[2.0, -1.0], [4.0, -1.0]]
    >>> prepared = deletion.prepare(bk, x, cams)
    >>> deletion.apply(bk, x, prepared, deletion.parameters(4)[0])[0, ..., 0].tolist()
    [[1.0, -1.0], [1.0, -1.0]]
    """

    name = "deletion"

    def _reused_point(self) -> str | None:
        return "first"

    def apply(self, backend: Backend, x: Any, prepared: Any, parameter: Any) -> Any:
        return backend.where(prepared[0] >= parameter[0], x, self._baseline(backend, x, prepared, parameter))


class Insertion(_PixelCurve):
    r"""RISE's insertion curve: step :math:`i` starts from the baseline everywhere and restores
    the :math:`k_i` most salient pixels of the input (see :class:`Deletion` for the counts and
    the arguments). With ``max_fraction=1`` its last point (:math:`k_K = P`) is the plain input:
    the pass runs the K others (``reuses_plain = "last"``) and :meth:`curve` puts Y_c last;
    otherwise it runs all K + 1 (``reuses_plain = None``, ``steps = K + 1``).

    >>> from camavg_core.backends import resolve_backend
    >>> bk, insertion = resolve_backend("numpy"), Insertion(steps=2)
    >>> x, cams = np.ones((1, 2, 2, 1)), np.array([[[0.1, 0.9], [0.5, 0.7]]])[..., None]
    >>> insertion.parameters(4).tolist()
    [[0.0, 0.0], [2.0, 0.0]]
    >>> prepared = insertion.prepare(bk, x, cams)
    >>> insertion.apply(bk, x, prepared, insertion.parameters(4)[1])[0, ..., 0].tolist()
    [[0.0, 1.0], [0.0, 1.0]]
    """

    name = "insertion"

    def _reused_point(self) -> str | None:
        return "last" if self.max_fraction == 1.0 else None

    def apply(self, backend: Backend, x: Any, prepared: Any, parameter: Any) -> Any:
        return backend.where(prepared[0] < parameter[0], x, self._baseline(backend, x, prepared, parameter))
