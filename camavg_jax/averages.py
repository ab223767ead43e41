"""``AveragesCam`` for models that live in JAX: Flax, Equinox, or any function of a batch.

The model's outputs on the inputs are computed once, at construction, and stay on the device.
Each CAM set then costs one masked forward pass: masking, ``apply_fn`` and the activation run in
one ``jax.jit`` function, compiled once per batch shape. The last batch is padded to the batch
size (and its padding dropped from the outputs), so N need not be a multiple of the batch size
and no call compiles a second shape. The outputs stay on the device until the score function
has reduced them to the (N,) target scores, the only values copied back to the host. With
several local devices every batch is split over them (see :mod:`camavg_jax.sharding`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from camavg_core import validation
from camavg_core.backends import resolve_backend
from camavg_core.batching import (
    BatchPlan,
    as_list,
    batch_plan,
    cams_per_input,
    check_same_count,
    input_name,
)
from camavg_core.bridge import AveragesCamBase
from camavg_core.masking import check_cam_maps, check_cam_shapes, finite_rows, mask_inputs
from camavg_core.scoring import as_score_list, summed_scores
from camavg_jax.sharding import DataPlacement

_BACKEND = resolve_backend("jax")
_HOST = resolve_backend("numpy")


def _score_dtype(dtype: Any) -> Any:
    """Outputs are scored in float32 (float64 stays): never in float16 or bfloat16."""
    return jnp.float64 if jnp.dtype(dtype) == jnp.float64 else jnp.float32


def apply_activation(outputs: list, activation: str | None) -> list:
    """Each output cast to its score dtype, then softmax or sigmoid if asked."""
    outputs = [jnp.asarray(out) for out in outputs]
    outputs = [out.astype(_score_dtype(out.dtype)) for out in outputs]
    if activation == "softmax":
        return [jax.nn.softmax(out, axis=-1) for out in outputs]
    if activation == "sigmoid":
        return [jax.nn.sigmoid(out) for out in outputs]
    return outputs


def _model_dtype(dtype: Any) -> Any:
    """Float inputs keep their dtype (float64 only under x64); others become float32."""
    if jnp.issubdtype(dtype, jnp.floating):
        return jax.dtypes.canonicalize_dtype(dtype)
    return jnp.dtype("float32")


def _padded_batches(array: Any, plan: BatchPlan, placement: DataPlacement) -> list:
    """``array`` split into ``plan.n_batches`` device batches of ``plan.batch_size`` rows;
    the last one padded with zeros. NumPy arrays are split on the host, so each batch is
    copied to its device(s) once; device arrays are sliced where they are."""
    xp = jnp if isinstance(array, jax.Array) else np
    batches = []
    for index in range(plan.n_batches):
        start, stop = plan.bounds(index)
        batch = array[start:stop]
        if stop - start < plan.batch_size:
            padding = xp.zeros((plan.batch_size - (stop - start), *array.shape[1:]), array.dtype)
            batch = xp.concatenate([batch, padding])
        batches.append(placement.put(batch))
    return batches


def _concatenate_outputs(batch_outputs: list[list], n: int) -> list:
    """One array per model output over all batches, padding rows dropped; on the device."""
    merged = []
    for per_batch in zip(*batch_outputs):
        whole = per_batch[0] if len(per_batch) == 1 else jnp.concatenate(per_batch)
        merged.append(whole if whole.shape[0] == n else whole[:n])
    return merged


def _scores_to_host(scores: Any) -> np.ndarray:
    scores = jnp.asarray(scores)
    if scores.dtype != jnp.float64:
        scores = scores.astype(jnp.float32)
    return np.asarray(jax.device_get(scores), dtype=np.float64)


class AveragesCam(AveragesCamBase):
    """Set of metrics that measure how a CAM's mask moves a JAX model's score.

    Args:
        apply_fn: maps a batch to the model's outputs, e.g. ``lambda x: model.apply(params, x)``
            for Flax or an Equinox module vmapped over the batch. It receives one array, or a
            list with one array per input when ``inputs`` is a list, and returns one array or a
            list/tuple of arrays (a multi-output model). It must be jittable.
        inputs: the instances, ``jax.Array`` or NumPy array (N, H, W, C); a list of them for a
            multi-input model. Integer images are passed to ``apply_fn`` as float32.
        batch_size: samples per forward pass (default 32); rounded up to a multiple of the
            local device count when batches are sharded.
        activation: ``'softmax'`` or ``'sigmoid'`` for a model that returns logits; None when
            its outputs are already probabilities.
        nan_policy: ``'raise'`` (default) names the first non-finite input, CAM or score;
            ``'omit'`` skips such samples and counts them in ``Result.skipped``.
        normalize: min-max normalise each CAM to [0, 1] before masking.
        data_format: ``'channels_last'`` (default) or ``'channels_first'``.
        level: confidence level of the intervals in ``Result.ci``.

    ``score_function`` (of ``evaluate`` and the ``average_*`` methods) maps the outputs of all
    N samples to N scores, as with tf-keras-vis; ``CategoricalScore`` and ``BinaryScore`` are
    read without tf-keras-vis being imported. A list of them scores a multi-output model.

    >>> import jax.numpy as jnp, numpy as np
    >>> images = np.ones((3, 4, 4, 1), np.float32)
    >>> def apply_fn(x):  # one "class" score: the mean pixel of the image
    ...     return jnp.mean(x, axis=(1, 2))
    >>> metrics = AveragesCam(apply_fn, images, batch_size=2)
    >>> cams = np.stack([np.full((4, 4), v, np.float32) for v in (1.0, 0.5, 0.25)])
    >>> result = metrics.evaluate(cams, lambda outputs: outputs[:, 0])
    >>> result.o_c.round(4).tolist()  # Y_c = 1 for all three images
    [1.0, 0.5, 0.25]
    >>> round(result.average_drop, 4)  # (0 + 0.5 + 0.75) / 3
    41.6667
    """

    def __init__(
        self,
        apply_fn: Callable,
        inputs: Any,
        *,
        batch_size: int | None = None,
        activation: str | None = None,
        nan_policy: str = "raise",
        normalize: bool = False,
        data_format: str = "channels_last",
        level: float = 0.95,
    ) -> None:
        self._init_options(
            batch_size=batch_size,
            activation=activation,
            nan_policy=nan_policy,
            normalize=normalize,
            data_format=data_format,
            level=level,
        )
        if not callable(apply_fn):
            raise TypeError(
                f"apply_fn must be a function from a batch to the model's outputs (e.g. "
                f"lambda x: model.apply(params, x)), got {type(apply_fn).__name__}."
            )
        self.model = self.apply_fn = apply_fn
        self.inputs = inputs
        self._multi_input = isinstance(inputs, (list, tuple))
        arrays = self._convert_inputs(inputs)
        self.n = int(arrays[0].shape[0])
        self._input_shapes = [tuple(a.shape) for a in arrays]
        self._input_dtypes = [a.dtype for a in arrays]
        self.placement = DataPlacement.local()
        self.plan = batch_plan(self.n, batch_size, multiple_of=self.placement.n_devices)
        self._input_batches = [_padded_batches(a, self.plan, self.placement) for a in arrays]
        self.trace_count = 0  # traces of the compiled passes, for tests and curious users
        self._plain_pass = jax.jit(self._plain_step)
        self._masked_pass = jax.jit(self._masked_step)
        self._outputs = self._run(self._plain_pass, self._input_batches)

    # ----------------------------------------------------------------- set-up checks
    def _convert_inputs(self, inputs: Any) -> list:
        """The inputs as arrays of the dtype ``apply_fn`` gets, checked; not yet batched."""
        arrays = as_list(inputs)
        if not arrays:
            raise ValueError("inputs is an empty list: pass one array per model input.")
        converted = []
        for index, array in enumerate(arrays):
            name = input_name(index, self._multi_input)
            if isinstance(array, (str, bytes)) or array is None:
                raise TypeError(
                    f"{name} must be an array of shape (N, H, W, C), got {type(array).__name__}."
                )
            if not isinstance(array, jax.Array):
                array = np.asarray(array)
            if not validation.is_real_dtype(array.dtype):
                raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}.")
            if array.ndim < 2:
                raise ValueError(
                    f"{name} must have a batch axis, shape (N, ...), got shape {tuple(array.shape)}."
                )
            validation.check_nonempty(int(array.shape[0]), name)
            array = array.astype(_model_dtype(array.dtype))
            converted.append(array)
        check_same_count([int(a.shape[0]) for a in converted])
        self._bad_inputs = np.logical_or.reduce(
            [self._nonfinite_inputs(a, input_name(i, self._multi_input)) for i, a in enumerate(converted)]
        )
        return converted

    def _nonfinite_inputs(self, array: Any, name: str) -> np.ndarray:
        rows, _ = finite_rows(array, _BACKEND)
        return validation.check_finite_samples(rows, name, self.nan_policy)

    # ----------------------------------------------------------------- compiled passes
    def _forward(self, batch_inputs: list) -> list:
        outputs = self.apply_fn(batch_inputs if self._multi_input else batch_inputs[0])
        return apply_activation(as_list(outputs), self.activation)

    def _plain_step(self, batch_inputs: tuple) -> list:
        self.trace_count += 1
        return self._forward(list(batch_inputs))

    def _masked_step(self, batch_inputs: tuple, batch_cams: tuple) -> list:
        self.trace_count += 1
        masked = []
        for x, cam in zip(batch_inputs, batch_cams):
            if self.nan_policy == "omit":  # those samples' O_c is set to NaN after the pass
                cam = jnp.where(jnp.isfinite(cam), cam, jnp.zeros_like(cam))
            masked.append(
                mask_inputs(
                    x,
                    cam,
                    data_format=self.data_format,
                    normalize=self.normalize,
                    dtype=x.dtype.name,
                    backend=_BACKEND,
                )
            )
        return self._forward(masked)

    def _run(self, compiled: Callable, *batched: list) -> list:
        """Call ``compiled`` on every batch (dispatched asynchronously), outputs on device."""
        batch_outputs = []
        for index in range(self.plan.n_batches):
            outputs = compiled(*(tuple(arrays[index] for arrays in group) for group in batched))
            if index == 0:
                self._check_output_rows(outputs)
            batch_outputs.append(outputs)
        return _concatenate_outputs(batch_outputs, self.n)

    def _check_output_rows(self, outputs: list) -> None:
        for out in outputs:
            if out.ndim == 0 or out.shape[0] != self.plan.batch_size:
                raise ValueError(
                    f"apply_fn returned an output of shape {tuple(out.shape)} for a batch of "
                    f"{self.plan.batch_size} samples: it must return one row per sample, "
                    f"shape (batch, ...)."
                )

    # ----------------------------------------------------------------- scores
    def _score_functions(self, score_function: Any) -> list:
        return as_score_list(score_function, len(self._outputs))

    def _plain_scores(self, score_function: Any) -> np.ndarray:
        scores = summed_scores(self._score_functions(score_function), self._outputs, self.n, _BACKEND)
        y_c = _scores_to_host(scores)
        validation.check_scores_finite(y_c, "score_function on the model's outputs", self.nan_policy)
        return y_c

    def _prepare_cams(self, cams: Any) -> tuple[list, list]:
        """CAM arrays, one per input, in the work dtype, with their shapes checked; and their
        (N, H, W) maps with the backend that holds them, for the value checks.

        NumPy CAMs (camavg's own copy, from the cache) stay on the host: each batch goes to
        the device as the pass reads it, and the value checks reduce them on the host while
        the device computes. ``jax.Array`` CAMs are sliced and checked where they are. The
        value checks wait for the pass either way: it does not depend on them (the step clips
        the CAMs, and zeroes the non-finite ones under ``nan_policy='omit'``), and a CAM set
        they refuse raises before any score is read.
        """
        cam_list = cams_per_input(cams, len(self._input_shapes), self._multi_input)
        prepared, maps = [], []
        for cam, shape, dtype in zip(cam_list, self._input_shapes, self._input_dtypes):
            on_device = isinstance(cam, jax.Array)
            cam = cam if on_device else np.asarray(cam)
            if not validation.is_real_dtype(cam.dtype):
                raise TypeError(f"cams must hold numbers, got dtype {cam.dtype}.")
            work = "float64" if dtype == jnp.float64 else "float32"
            cam = cam.astype(work) if on_device else np.asarray(cam, dtype=work)
            backend = _BACKEND if on_device else _HOST
            # the inputs' shape is all the checks read of them: a zero-strided stand-in
            stand_in = np.broadcast_to(np.zeros((), np.float32), shape)
            maps.append((check_cam_shapes(stand_in, cam, self.data_format, backend), backend))
            prepared.append(cam)
        return prepared, maps

    def _masked_scores(self, cams: Any, score_function: Any) -> np.ndarray:
        return self._start_masked_scores(cams, score_function)()

    def _start_masked_scores(self, cams: Any, score_function: Any) -> Callable[[], np.ndarray]:
        """Dispatch the masked pass and its scores; the returned function checks the CAM
        values (their reductions queued behind the pass) and waits for the scores."""
        functions = self._score_functions(score_function)
        cam_arrays, maps = self._prepare_cams(cams)
        cam_batches = [_padded_batches(c, self.plan, self.placement) for c in cam_arrays]
        outputs = self._run(self._masked_pass, self._input_batches, cam_batches)  # dispatched
        scores = summed_scores(functions, outputs, self.n, _BACKEND)

        def finish() -> np.ndarray:
            bad = np.zeros(self.n, dtype=bool)
            for cam_maps, backend in maps:
                check = check_cam_maps(cam_maps, backend, normalize=self.normalize, nan_policy=self.nan_policy)
                bad |= check.nonfinite
            o_c = _scores_to_host(scores)
            o_c[bad] = np.nan
            validation.check_scores_finite(o_c, "score_function on the masked inputs", self.nan_policy)
            return o_c

        return finish
