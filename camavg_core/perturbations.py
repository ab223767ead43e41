"""Perturbations: what a metric does to the inputs before the model sees them again.

A perturbation is a schedule of K steps. An adapter's compiled pass runs it: for each batch
(outer loop) it calls :meth:`Perturbation.prepare` once, then for each step (inner loop)
:meth:`Perturbation.apply` with that step's row of :meth:`Perturbation.parameters`, then
``preprocess``, the model and the activation; the outputs have shape (K, N, ...). The
parameters enter the pass as a tensor, so neither K nor their values re-trace it: one trace per
``(perturbation.key, options, per-sample shapes)``. One perturbed batch exists at a time, never
K copies of the inputs.

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
from camavg_core.backends import Backend


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
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise ValueError(validation.bad_perturbation_steps(perturbation, steps))
    parameters = np.asarray(perturbation.parameters(n_pixels), dtype=np.float32)
    if parameters.ndim != 2 or parameters.shape[0] != steps or parameters.shape[1] < 1 or not np.isfinite(parameters).all():
        raise ValueError(validation.bad_perturbation_parameters(perturbation, steps, parameters))
    return parameters
