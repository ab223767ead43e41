r"""MuFidelity (Bhatt, Weller and Moura 2020, definition 3), seeded per sample.

For sample :math:`i`, :math:`K` random subsets :math:`S_1 .. S_K` of a ``grid_size`` x
``grid_size`` grid of cells (each cell in a subset independently with probability
``subset_fraction``), upsampled to the input by nearest neighbour; the pixels of a subset are set
to the baseline (all channels). The sample's term is the correlation over the K subsets

.. math:: \rho_i = \operatorname{corr}_k\Big(\sum_{p \in S_k} L_i(p),\; Y_i - f(x_i^{S_k})\Big)

between the CAM :math:`L_i` (resized to the input and clipped to [0, 1], as for Average Drop)
summed over the removed pixels and the score drop. MuFidelity is the mean of the terms, in
[-1, 1], higher is better. Spearman's rank correlation by default (average ranks for ties, as
``scipy.stats.spearmanr``), Pearson's on request. A term is undefined (NaN, left out of the mean
and counted by :func:`undefined_terms`) when the K drops or the K CAM sums are all equal.

The masks of sample ``i`` come from ``np.random.default_rng([seed, i])`` with ``i`` its global
index (its place in memory, or in the stream), so they do not depend on the batch size, on the
other samples, or on the framework. Pixel row ``r`` of ``H`` belongs to cell row
``floor((r + 1/2) g / H)`` (nearest neighbour with half-pixel centres, the rule of
``tf.image.resize(method="nearest")`` that xplique uses); so do columns.

Who computes what: the K perturbed scores come from the adapter's compiled pass (the masks go to
the device as the per-sample extra, (N, K, g, g) bytes, one row per sample, and each step picks its
subset with a one-hot parameter row); the CAM sums per subset come from
:func:`subset_cam_sums`: each sample's CAM summed over each grid cell on the device, then the
(N, g, g) cell sums combined with the same masks on the host, in float64.

>>> import numpy as np
>>> mufidelity_terms(np.array([1.0, 1.0]), np.array([[0.9, 0.5], [0.5, 0.5], [0.7, 0.5]]),
...                  np.array([[1.0, 1.0], [3.0, 2.0], [2.0, 3.0]])).tolist()
[1.0, nan]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from camavg_core import validation
from camavg_core.backends import Backend
from camavg_core.masking import cam_maps
from camavg_core.perturbations import drawn_per_sample

CORRELATIONS = ("spearman", "pearson")


def nearest_cells(size: int, grid_size: int) -> np.ndarray:
    """(size,) the grid cell of each pixel along one axis: ``floor((r + 1/2) g / size)``,
    computed in integers (no rounding at the boundaries).

    >>> nearest_cells(10, 3).tolist()   # 10 rows over 3 cells: 3, 4, 3 rows
    [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    """
    return ((2 * np.arange(size) + 1) * grid_size) // (2 * size)


def _one_hot(backend: Backend, cells: np.ndarray, grid_size: int, like: Any, *, cells_first: bool = False) -> Any:
    """(1, size, g) float32 one-hot of ``cells`` ((1, g, size) with ``cells_first``) on the
    device of ``like``, a (1, 1) array of ones: ``where`` puts its result there."""
    hits = cells[:, None] == np.arange(grid_size)[None, :]
    hits = hits.T if cells_first else hits
    return backend.reshape(backend.where(hits, like, 0.0), (1, *hits.shape))


def _spatial(backend: Backend, x: Any, cams: Any) -> tuple[int, int]:
    """(H, W) of CAM maps shaped (B, H, W, 1) or (B, 1, H, W) beside inputs ``x``."""
    shape, x_shape = backend.shape(cams)[1:], backend.shape(x)[1:]
    if len(shape) != 3:
        raise ValueError(validation.mufidelity_spatial(tuple(backend.shape(cams))))
    if shape[-1] == 1 and tuple(shape[:-1]) == tuple(x_shape[:-1]):
        return int(shape[0]), int(shape[1])  # channels last
    return int(shape[1]), int(shape[2])


class MuFidelity:
    """The perturbation of MuFidelity: ``n_samples`` steps, step k setting sample i's k-th
    random subset of grid cells to ``baseline`` (see the module's docstring).

    >>> import numpy as np
    >>> from camavg_core.backends import resolve_backend
    >>> bk, mu = resolve_backend("numpy"), MuFidelity(grid_size=2, n_samples=3, subset_fraction=0.5, seed=1)
    >>> x, cams = np.ones((1, 4, 4, 1), np.float32), np.zeros((1, 4, 4, 1), np.float32)
    >>> masks = mu.per_sample(np.array([0]), x.shape)
    >>> masks.shape, masks[0, 1].tolist()            # (N, K, g, g); 1 = the cell is removed
    ((1, 3, 2, 2), [[1, 1], [0, 1]])
    >>> prepared = mu.prepare(bk, x, cams, masks)
    >>> mu.apply(bk, x, prepared, mu.parameters(16)[1])[0, ..., 0].tolist()
    [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]
    """

    def __init__(self, grid_size: int = 9, subset_fraction: float = 0.2, n_samples: int = 200,
                 baseline: float = 0.0, seed: int = 0) -> None:
        _check_integer("grid_size", grid_size, 1)
        _check_integer("n_samples", n_samples, 2)
        _check_integer("seed", seed, 0)
        if not validation.is_number(subset_fraction) or not 0.0 < float(subset_fraction) < 1.0:
            raise ValueError(validation.mufidelity_argument("subset_fraction", subset_fraction, "a number in (0, 1)"))
        if not validation.is_number(baseline) or not np.isfinite(baseline):
            raise ValueError(validation.mufidelity_argument("baseline", baseline, "a finite number"))
        self.grid_size, self.n_samples, self.seed = int(grid_size), int(n_samples), int(seed)
        self.subset_fraction, self.baseline = float(subset_fraction), float(baseline)
        self.steps = self.n_samples
        # what apply's code depends on; the seed and the fraction only change the per-sample data
        self.key = ("mufidelity", self.grid_size, self.baseline)

    def parameters(self, n_pixels: int) -> np.ndarray:
        """Step k's row is one-hot at k: it picks the k-th subset of the per-sample masks."""
        return np.eye(self.n_samples, dtype=np.float32)

    def per_sample(self, indices: np.ndarray, x_shape: tuple) -> np.ndarray:
        """(N, K, g, g) uint8: 1 where sample ``indices[n]``'s k-th subset removes the cell."""
        shape = (self.n_samples, self.grid_size, self.grid_size)
        return drawn_per_sample(self.seed, indices, shape, np.uint8, lambda rng: rng.random(shape) < self.subset_fraction)

    def prepare(self, backend: Backend, x: Any, cams: Any, extra: Any) -> tuple:
        """The batch's masks as float32, the one-hot upsampling matrices (1, H, g) and
        (1, g, W), and the CAMs (their shape says where the channel axis is)."""
        height, width = _spatial(backend, x, cams)
        masks = backend.astype(extra, "float32")
        one = backend.reshape(masks[:1, :1, :1, :1] * 0.0 + 1.0, (1, 1))  # a 1 on the batch's device
        rows = _one_hot(backend, nearest_cells(height, self.grid_size), self.grid_size, one)  # (1, H, g)
        cols = _one_hot(backend, nearest_cells(width, self.grid_size), self.grid_size, one, cells_first=True)  # (1, g, W)
        return masks, rows, cols, cams

    def apply(self, backend: Backend, x: Any, prepared: tuple, parameter: Any) -> Any:
        """The step's subset removed: ``x (1 - R) + baseline R`` with R the upsampled mask."""
        masks, rows, cols, cams = prepared
        chosen = backend.sum(masks * backend.reshape(parameter, (1, -1, 1, 1)), axis=1)  # (B, g, g)
        removed = backend.reshape(rows @ chosen @ cols, (-1, *backend.shape(cams)[1:]))  # exact: one-hot sums
        removed = backend.astype(removed, backend.dtype_name(x))
        perturbed = x * (1.0 - removed)
        return perturbed + self.baseline * removed if self.baseline != 0.0 else perturbed

    def __repr__(self) -> str:
        return (f"MuFidelity(grid_size={self.grid_size}, subset_fraction={self.subset_fraction}, "
                f"n_samples={self.n_samples}, baseline={self.baseline}, seed={self.seed})")


def _check_integer(name: str, value: Any, low: int) -> None:
    if not validation.is_integer(value) or value < low:
        raise ValueError(validation.mufidelity_argument(name, value, f"an integer >= {low}"))


# --------------------------------------------------------------------------- CAM sums per subset
def cell_sums(backend: Backend, maps: Any, grid_size: int, data_format: str) -> np.ndarray:
    """(B, g, g) float64 on the host: each sample's CAM map (from
    :func:`~camavg_core.masking.cam_maps`) summed over each grid cell, on the device."""
    shape = backend.shape(maps)
    height, width = (shape[1], shape[2]) if data_format == "channels_last" else (shape[2], shape[3])
    maps = backend.reshape(maps, (-1, height, width))
    one = backend.reshape(maps[:1, :1, :1] * 0.0 + 1.0, (1, 1))
    rows = _one_hot(backend, nearest_cells(height, grid_size), grid_size, one, cells_first=True)  # (1, g, H)
    cols = _one_hot(backend, nearest_cells(width, grid_size), grid_size, one)  # (1, W, g)
    summed = rows @ maps @ cols  # (B, g, g)
    return np.asarray(backend.to_numpy(summed), dtype=np.float64)


def subset_cam_sums(engine: Any, cam_set: Any, perturbation: MuFidelity) -> np.ndarray:
    """(K, N) float64: the CAM, resized to the input as for Average Drop, summed over the pixels
    each subset removes; the sum over the model inputs for a multi-input model.

    The cell sums are computed on the device batch by batch, (N, g, g) reach the host, and the
    subsets are combined there with the masks of :meth:`MuFidelity.per_sample` (the same ones
    the compiled pass received): ``sum over cells of mask[n, k] * cells[n]``.
    """
    masks = engine.per_sample(perturbation)
    bk, n, size = engine.backend, engine.n, engine.batch_size
    cells = np.zeros((n, perturbation.grid_size, perturbation.grid_size))
    data_format = engine.options.data_format
    for x, cams in zip(engine.inputs, cam_set.arrays):
        for start in range(0, n, size):
            maps = cam_maps(x[start : start + size], cams[start : start + size], data_format=data_format,
                            normalize=cam_set.normalize, backend=bk)
            cells[start : start + size] += cell_sums(bk, maps, perturbation.grid_size, data_format)
    return np.einsum("nkij,nij->kn", masks.astype(np.float64), cells)


# --------------------------------------------------------------------------- the terms
def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..K down each column of (K, N) values, ties given their average rank (scipy's
    ``rankdata(method="average")``).

    >>> average_ranks(np.array([[3.0], [1.0], [3.0], [2.0]])).ravel().tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    k, n = values.shape
    order = np.argsort(values, axis=0, kind="stable")
    ordered = np.take_along_axis(values, order, axis=0)
    starts = np.ones((k, n), bool)
    starts[1:] = ordered[1:] != ordered[:-1]  # where a run of equal values begins
    ends = np.ones((k, n), bool)
    ends[:-1] = starts[1:]
    places = np.broadcast_to(np.arange(k)[:, None], (k, n))
    first = np.maximum.accumulate(np.where(starts, places, 0), axis=0)
    last = np.minimum.accumulate(np.where(ends, places, k - 1)[::-1], axis=0)[::-1]
    ranks = np.empty((k, n))
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=0)
    return ranks


def undefined_terms(y: Any, curve: Any, cam_sums: Any) -> np.ndarray:
    """(N,) True where a sample's scores are finite but its correlation is undefined: its K
    score drops, or its K CAM sums, are all equal (e.g. a model the subsets do not move, or a
    CAM that is zero wherever the subsets fall). Such a sample's term is NaN, never 0."""
    y, curve, cam_sums = _as_arrays(y, curve, cam_sums)
    drops = y[None, :] - curve
    finite = np.isfinite(drops).all(axis=0) & np.isfinite(cam_sums).all(axis=0)
    constant = (np.ptp(np.where(np.isfinite(drops), drops, 0.0), axis=0) == 0) | (
        np.ptp(np.where(np.isfinite(cam_sums), cam_sums, 0.0), axis=0) == 0)
    return finite & constant


def mufidelity_terms(y: Any, curve: Any, cam_sums: Any, correlation: str = "spearman") -> np.ndarray:
    """(N,) float64 per-sample correlations between ``cam_sums`` (K, N) and the drops
    ``y[None] - curve`` (K, N); NaN where undefined (:func:`undefined_terms`) or where a
    score or a sum is not finite (a sample skipped under ``nan_policy='omit'``).

    >>> import numpy as np
    >>> y = np.array([1.0])
    >>> curve = np.array([[0.9], [0.8], [0.4]])          # drops 0.1, 0.2, 0.6
    >>> sums = np.array([[1.0], [2.0], [3.0]])
    >>> float(mufidelity_terms(y, curve, sums)[0]), round(float(mufidelity_terms(y, curve, sums, "pearson")[0]), 4)
    (1.0, 0.9449)
    """
    if correlation not in CORRELATIONS:
        raise ValueError(validation.mufidelity_argument("correlation", correlation, "'spearman' or 'pearson'"))
    y, curve, cam_sums = _as_arrays(y, curve, cam_sums)
    drops = y[None, :] - curve
    bad = ~(np.isfinite(drops).all(axis=0) & np.isfinite(cam_sums).all(axis=0)) | undefined_terms(y, curve, cam_sums)
    drops, sums = np.where(bad[None], 0.0, drops), np.where(bad[None], 0.0, cam_sums)
    if correlation == "spearman":
        drops, sums = average_ranks(drops), average_ranks(sums)
    drops = drops - drops.mean(axis=0)
    sums = sums - sums.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = (drops * sums).sum(axis=0) / np.sqrt((drops * drops).sum(axis=0) * (sums * sums).sum(axis=0))
    return np.where(bad, np.nan, np.clip(terms, -1.0, 1.0))


def _as_arrays(y: Any, curve: Any, cam_sums: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    curve = np.asarray(curve, dtype=np.float64)
    cam_sums = np.asarray(cam_sums, dtype=np.float64)
    if y.ndim != 1 or curve.ndim != 2 or curve.shape != cam_sums.shape or curve.shape[1] != y.shape[0]:
        raise ValueError(
            f"mufidelity_terms takes y (N,), curve (K, N) and cam_sums (K, N), got shapes {y.shape}, "
            f"{curve.shape} and {cam_sums.shape}."
        )
    return y, curve, cam_sums
