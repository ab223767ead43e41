"""Apply CAMs to inputs: ``x_i * L_i``, with the CAM broadcast over channels.

``mask_inputs`` is pure and branch-free on values, for compiled functions; ``apply_cams`` checks
the arguments first (concrete values) and then calls it.

>>> import numpy as np
>>> images = np.ones((1, 2, 2, 3))
>>> cams = np.array([[[0.0, 0.5], [1.0, 0.25]]])
>>> apply_cams(images, cams)[0, :, :, 0]
array([[0.  , 0.5 ],
       [1.  , 0.25]])
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from camavg_core import validation
from camavg_core.backends import Backend, resolve_backend, work_dtype

DATA_FORMATS = validation.DATA_FORMATS


def _float_dtype(backend: Backend, x: Any, dtype: str | None) -> str:
    if dtype is not None:
        return dtype
    name = backend.dtype_name(x)
    return name if name in ("float16", "bfloat16", "float32", "float64") else "float32"


def cams_as_maps(cams: Any, n_spatial: int, data_format: str, backend: Backend) -> Any:
    """CAMs as (N, *spatial), dropping a singleton channel axis if there is one."""
    shape = tuple(backend.shape(cams))
    if len(shape) == n_spatial + 2:
        channel_axis = len(shape) - 1 if data_format == "channels_last" else 1
        if shape[channel_axis] != 1:
            other_axis = 1 if data_format == "channels_last" else len(shape) - 1
            if shape[other_axis] == 1:
                raise ValueError(validation.cam_channel_elsewhere(shape, other_axis, data_format, channel_axis))
            raise ValueError(validation.cam_channels(shape, shape[channel_axis]))
        return backend.reshape(cams, tuple(s for i, s in enumerate(shape) if i != channel_axis))
    if len(shape) == n_spatial:
        raise ValueError(validation.single_cam(shape))
    if len(shape) != n_spatial + 1:
        raise ValueError(validation.cam_rank(shape))
    return cams


def mask_inputs(
    inputs: Any,
    cams: Any,
    *,
    data_format: str = "channels_last",
    normalize: bool = False,
    dtype: str | None = None,
    backend: str | Backend | None = None,
) -> Any:
    """``inputs * cams`` broadcast over channels; no value checks, safe inside ``jit``.

    Args:
        inputs: (N, H, W, C) (``channels_last``) or (N, C, H, W) (``channels_first``).
        cams: (N, h, w) or (N, h, w, 1); resized bilinearly to (H, W) when (h, w) differs.
        normalize: rescale each CAM to [0, 1] by its own minimum and maximum first (a constant
            CAM becomes all zeros).
        dtype: the dtype of the masked inputs; by default the inputs' float dtype (float32
            for integer images).
    """
    bk = resolve_backend(backend, inputs, cams)
    x = bk.asarray(inputs)
    out_dtype = _float_dtype(bk, x, dtype)
    x = bk.astype(x, out_dtype)
    maps = cam_maps(x, bk.asarray(cams), data_format=data_format, normalize=normalize, backend=bk)
    return x * bk.astype(maps, out_dtype)


def cam_maps(x: Any, cams: Any, *, data_format: str, normalize: bool, backend: Backend) -> Any:
    """The CAMs as a perturbation receives them: resized to ``x``'s spatial size, normalised
    when asked, clipped to [0, 1], in float32 (float64 for float64 inputs), with a channel axis
    of 1 where ``x`` has its channels, so that they broadcast against ``x``: (N, H, W, 1) for
    ``channels_last``, (N, 1, H, W) for ``channels_first``. Flattening a sample's map reads its
    pixels in row-major order in both layouts.

    >>> import numpy as np
    >>> from camavg_core.backends import resolve_backend
    >>> maps = cam_maps(np.ones((1, 3, 2, 2)), np.array([[[0.0, 2.0], [1.0, 4.0]]]),
    ...                 data_format="channels_first", normalize=True, backend=resolve_backend("numpy"))
    >>> maps.shape, maps.ravel().tolist()
    ((1, 1, 2, 2), [0.0, 0.5, 0.25, 1.0])
    """
    bk = backend
    x_shape = bk.shape(x)
    spatial = x_shape[1:-1] if data_format == "channels_last" else x_shape[2:]
    maps = cams_as_maps(cams, len(spatial), data_format, bk)
    # CAM arithmetic in at least float32, so resizing and normalising do not round in float16
    maps = bk.astype(maps, work_dtype(bk.dtype_name(x)))
    if normalize:
        axes = tuple(range(1, len(spatial) + 1))
        # scale-free, so divide by the largest magnitude first: max - min cannot overflow
        magnitude = bk.max(bk.maximum(maps, -maps), axis=axes, keepdims=True)
        maps = maps / bk.maximum(magnitude, 1e-30)
        low = bk.min(maps, axis=axes, keepdims=True)
        span = bk.max(maps, axis=axes, keepdims=True) - low
        maps = (maps - low) / bk.maximum(span, 1e-12)
    # the checks allow float rounding a hair outside [0, 1]; the mask itself never leaves it
    maps = bk.minimum(bk.maximum(maps, 0.0), 1.0)
    map_spatial = bk.shape(maps)[1:]
    if tuple(map_spatial) != tuple(spatial):
        maps = bk.resize_bilinear(bk.reshape(maps, (*bk.shape(maps), 1)), tuple(spatial))
        maps = bk.reshape(maps, bk.shape(maps)[:-1])
    if data_format == "channels_last":
        return bk.reshape(maps, (*bk.shape(maps), 1))
    return bk.reshape(maps, (bk.shape(maps)[0], 1, *bk.shape(maps)[1:]))


_NUMERIC_DTYPES = {"bool", "float16", "bfloat16", "float32", "float64"} | {
    f"{kind}{bits}" for kind in ("int", "uint") for bits in (8, 16, 32, 64)
}


def finite_rows(array: Any, backend: Backend) -> tuple[np.ndarray, Any]:
    """(N,) True where a sample holds only finite values, and the (N, -1) float view.

    The common case is one reduction: a finite sum means every value is finite (NaN and
    infinity propagate through addition). Only otherwise are the samples looked at one by one.
    """
    n = backend.shape(array)[0]
    flat = backend.reshape(backend.astype(array, backend.compute_dtype(array)), (n, -1))
    if np.isfinite(float(backend.to_numpy(backend.sum(flat)))):
        return np.ones(n, dtype=bool), flat
    finite = backend.isfinite(flat)
    counts = backend.to_numpy(backend.sum(backend.astype(finite, "int32"), axis=1))
    return counts == backend.shape(flat)[1], flat


def cam_summary(maps: Any, backend: Backend) -> tuple[np.ndarray, float, float]:
    """(N,) all-finite flags and the extremes of the finite values, reduced where the CAMs
    live: only N booleans and two numbers come to the host, never the CAMs themselves."""
    rows, flat = finite_rows(maps, backend)
    if rows.all():  # min and max do not always propagate NaN, but there is none
        low, high = backend.min(flat), backend.max(flat)
    else:
        finite = backend.isfinite(flat)
        low = backend.min(backend.where(finite, flat, np.inf))
        high = backend.max(backend.where(finite, flat, -np.inf))
    return rows, float(backend.to_numpy(low)), float(backend.to_numpy(high))


class CamCheck(NamedTuple):
    """What :func:`check_masking_args` found: which samples' CAMs are not finite, and the
    extremes of the finite CAM values."""

    nonfinite: np.ndarray
    low: float
    high: float


def check_cam_values(
    finite_rows: Any, low: float, high: float, *, nan_policy: str, normalize: bool
) -> np.ndarray:
    """The CAM value checks, from :func:`cam_summary`'s reductions.

    Returns:
        (N,) booleans: the samples whose CAM holds NaN or infinity (allowed under
        ``nan_policy='omit'``, where the caller skips them).

    >>> check_cam_values([True, False], 0.0, 1.0, nan_policy="omit", normalize=False).tolist()
    [False, True]
    """
    nonfinite = validation.check_finite_samples(
        finite_rows, "cams", nan_policy,
        hint="A degenerate CAM (0/0 in its normalisation) gives NaN: replace them (np.nan_to_num)",
    )
    if not normalize and np.isfinite(low) and np.isfinite(high):
        validation.check_cam_range(float(low), float(high))
    return nonfinite


def check_masking_args(
    inputs: Any,
    cams: Any,
    data_format: str,
    backend: Backend,
    *,
    normalize: bool,
    nan_policy: str = "raise",
) -> CamCheck:
    """The checks made before masking: shapes on the host (:func:`check_cam_shapes`), values
    reduced on the backend (:func:`check_cam_maps`).

    Under ``nan_policy='omit'`` a non-finite CAM is allowed; the range check then looks at
    the finite values only.

    Returns:
        A :class:`CamCheck`: ``nonfinite``, (N,) True for the samples whose CAM holds NaN or
        infinity, and the range of the finite values.
    """
    maps = check_cam_shapes(inputs, cams, data_format, backend)
    return check_cam_maps(maps, backend, normalize=normalize, nan_policy=nan_policy)


def check_cam_shapes(inputs: Any, cams: Any, data_format: str, backend: Backend) -> Any:
    """The checks of shapes and dtype, which read no value: the CAMs can be masked with.

    Returns:
        The CAMs as (N, *spatial) maps (a view), for :func:`check_cam_maps`.
    """
    if data_format not in DATA_FORMATS:
        raise ValueError(validation.bad_choice("data_format", data_format, DATA_FORMATS))
    x_shape = tuple(backend.shape(inputs))
    c_shape = tuple(backend.shape(cams))
    if len(x_shape) < 3:
        raise ValueError(validation.input_rank(x_shape))
    validation.check_nonempty(x_shape[0])
    dtype = backend.dtype_name(cams)
    if dtype not in _NUMERIC_DTYPES:
        raise TypeError(validation.not_numbers("cams", dtype))
    spatial = x_shape[1:-1] if data_format == "channels_last" else x_shape[2:]
    maps = cams_as_maps(cams, len(spatial), data_format, backend)  # rank first: its message is clearer
    validation.check_count(x_shape[0], c_shape[0])
    map_spatial = tuple(backend.shape(maps)[1:])
    if map_spatial != tuple(spatial) and len(spatial) == 2:
        check_cam_layout(map_spatial, x_shape, data_format)
    if map_spatial != tuple(spatial) and (len(spatial) != 2 or 0 in map_spatial):
        raise ValueError(validation.cams_not_resizable(map_spatial, tuple(spatial)))
    return maps


#: at most this many values along an axis look like channels (grey, RGB, RGBA)
CHANNEL_LIKE = 4


def check_cam_layout(map_spatial: tuple, x_shape: tuple, data_format: str) -> None:
    """Refuse CAMs whose size another reading of the inputs explains, which a resize would
    otherwise stretch silently: maps at the size of the other ``data_format``'s spatial axes
    (NCHW inputs read as NHWC), and maps transposed.

    >>> check_cam_layout((8, 16), (2, 3, 8, 16), "channels_last")
    Traceback (most recent call last):
    ...
    ValueError: cams of spatial shape (8, 16) match axes 2 and 3 of the inputs (shape (2, 3, 8, 16)), not axes 1 and 2, ...
    >>> check_cam_layout((4, 8), (2, 8, 16, 3), "channels_last")  # a coarser map: resized

    Coarse maps (a Grad-CAM's 7 x 7) match neither reading, so the inputs' own shape decides
    too: a "spatial" axis of at most :data:`CHANNEL_LIKE` values beside a "channel" axis of more
    (NCHW images read as NHWC, or the other way round) is refused rather than resized onto.

    >>> check_cam_layout((4, 4), (6, 3, 32, 32), "channels_last")
    Traceback (most recent call last):
    ...
    ValueError: the inputs (shape (6, 3, 32, 32)) look channels-first, (N, C, H, W): ...
    """
    if data_format == "channels_last":
        spatial, other = tuple(x_shape[1:3]), tuple(x_shape[2:4])
        other_message = validation.cams_look_channels_first
    else:
        spatial, other = tuple(x_shape[2:4]), tuple(x_shape[1:3])
        other_message = validation.cams_look_channels_last
    if len(x_shape) == 4 and tuple(map_spatial) == other:
        raise ValueError(other_message(tuple(map_spatial), tuple(x_shape)))
    if len(x_shape) == 4:
        # the axis that data_format reads as the first spatial one, and the one it reads as channels
        first, channels = (x_shape[1], x_shape[3]) if data_format == "channels_last" else (x_shape[3], x_shape[1])
        if first <= CHANNEL_LIKE < channels:
            raise ValueError(validation.inputs_look_other_layout(tuple(map_spatial), tuple(x_shape), data_format))
    if tuple(map_spatial) == spatial[::-1]:
        raise ValueError(validation.cams_transposed(tuple(map_spatial), spatial))


def check_cam_maps(maps: Any, backend: Backend, *, normalize: bool, nan_policy: str = "raise") -> CamCheck:
    """The checks of the CAM values (finite, inside [0, 1] unless ``normalize``), from three
    reductions on the backend. An adapter whose pass does not depend on them may run them
    while its pass computes, and raise after it."""
    rows, low, high = cam_summary(maps, backend)
    nonfinite = check_cam_values(rows, low, high, nan_policy=nan_policy, normalize=normalize)
    return CamCheck(nonfinite, low, high)


def apply_cams(
    inputs: Any,
    cams: Any,
    *,
    data_format: str = "channels_last",
    normalize: bool = False,
    dtype: str | None = None,
    backend: str | Backend | None = None,
) -> Any:
    """Mask each input with its CAM, after checking shapes and the CAMs' range.

    Args and shapes as :func:`mask_inputs`. Raises ``ValueError`` when the counts differ, the
    CAM cannot be resized to the input, a CAM holds NaN or infinity, or a CAM strays outside
    [0, 1] (pass ``normalize=True`` to min-max normalise each one).
    """
    bk = resolve_backend(backend, inputs, cams)
    x, c = bk.asarray(inputs), bk.asarray(cams)
    check_masking_args(x, c, data_format, bk, normalize=normalize)
    return mask_inputs(x, c, data_format=data_format, normalize=normalize, dtype=dtype, backend=bk)
