"""``AveragesCam`` for Keras models and tf-keras-vis score functions.

The model's outputs on the inputs are computed once, at construction. Each CAM set then costs
one masked forward pass: masking, the model and the activation run in one compiled
``tf.function`` that loops over the batches of a prefetched ``tf.data`` pipeline inside the
graph, so no batch ever goes back to the host. The outputs stay on the device until the score
function has reduced them to the (N,) target scores, which are the only values copied back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from camavg_core import buffers, validation
from camavg_core.backends import resolve_backend
from camavg_core.batching import DEFAULT_BATCH_SIZE, as_list, cams_per_input, check_same_count, input_name
from camavg_core.bridge import AveragesCamBase
from camavg_core.masking import check_masking_args, finite_rows
from camavg_core.scoring import as_score_list, summed_scores
from camavg_tf.distribute import current_strategy
from camavg_tf.passes import PassOptions, passes_for

_BACKEND = resolve_backend("tensorflow")


def _as_numeric_tensor(array: Any, name: str) -> tf.Tensor:
    """A tensor of numbers, or a TypeError naming the argument (checked before TensorFlow
    sees the array, whose own errors name nothing)."""
    if not isinstance(array, (tf.Tensor, tf.Variable)):
        try:
            array = np.asarray(array)
        except (ValueError, TypeError) as error:  # ragged lists
            raise ValueError(f"{name} could not be read as an array: {error}") from None
        if not validation.is_real_dtype(array.dtype):
            raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}.")
        if array.dtype.name in validation.EXTENSION_FLOATS:
            array = array.astype(np.float32)
    tensor = tf.convert_to_tensor(array)
    if not (tensor.dtype.is_floating or tensor.dtype.is_integer or tensor.dtype == tf.bool):
        raise TypeError(f"{name} must hold numbers, got dtype {tensor.dtype.name}.")
    return tensor


#: The dtypes TensorFlow borrows from a NumPy buffer (DLPack has no bfloat16 for NumPy).
_BORROWABLE = ("float16", "float32", "float64")


def _borrowed(array: np.ndarray) -> tf.Tensor | None:
    """A tensor that reads camavg's own aligned buffer without copying it (DLPack), or None
    where TensorFlow cannot take it (a dtype DLPack lacks, an unaligned or empty array)."""
    if not (array.size and buffers.is_aligned(array) and array.dtype.name in _BORROWABLE):
        return None
    try:
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    except (AttributeError, BufferError, TypeError, ValueError, tf.errors.OpError):
        return None  # a copy is always right


def _private_tensor(array: Any, dtype: str, name: str) -> tf.Tensor:
    """``array`` as a tensor of ``dtype`` that no later change to ``array`` can reach.

    A NumPy array of that dtype is copied once, into an aligned buffer the tensor borrows
    (from :data:`~camavg_core.buffers.INPUT_POOL`: the buffer of an ``AveragesCam`` that is
    gone is reused); anything else goes through TensorFlow's conversion (a copy too) and a
    cast.
    """
    if isinstance(array, np.ndarray) and array.dtype.name == dtype and array.ndim >= 2:
        tensor = _borrowed(buffers.copy_into(array, buffers.INPUT_POOL.take(array.shape, array.dtype)))
        if tensor is not None:
            return tensor
    return tf.cast(_as_numeric_tensor(array, name), dtype)


def _model_input_dtypes(model: Any, count: int) -> list[str]:
    """The dtype each model input expects (float32 where the model does not say)."""
    dtypes = []
    for tensor in list(getattr(model, "inputs", None) or [])[:count]:
        dtype = tf.as_dtype(getattr(tensor, "dtype", "float32") or "float32")
        dtypes.append(dtype.name if dtype.is_floating else "float32")
    return dtypes + ["float32"] * (count - len(dtypes))


class AveragesCam(AveragesCamBase):
    """Set of metrics that measure how a CAM's mask moves a Keras model's score.

    Args:
        model: an already trained Keras model (functional, Sequential or subclassed).
        inputs: the instances, ``tf.Tensor`` or NumPy array (N, H, W, C); a list of them for a
            multi-input model.
        batch_size: samples per forward pass (default 32).
        activation: ``'softmax'`` or ``'sigmoid'`` for a model that returns logits; None when
            its outputs are already probabilities.
        nan_policy: ``'raise'`` (default) names the first non-finite input, CAM or score;
            ``'omit'`` skips such samples and counts them in ``Result.skipped``.
        normalize: min-max normalise each CAM to [0, 1] before masking.
        data_format: ``'channels_last'`` (default) or ``'channels_first'``.
        level: confidence level of the intervals in ``Result.ci``.
        strategy: a ``tf.distribute.Strategy`` to spread the batches over its replicas (and
            hosts); by default the one whose ``scope()`` is open, if any. ``batch_size`` is
            then the global batch. The per-sample outputs come back in order, so the numbers
            equal the single-device ones.

    Example::

        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.utils.scores import CategoricalScore
        score = CategoricalScore(labels)
        cams = Gradcam(model)(score, images)
        metrics = AveragesCam(model, images)
        result = metrics.evaluate(cams, score)   # one masked forward pass
        print(result.average_drop, result.average_increase, result.ci)
    """

    def __init__(
        self,
        model: Any,
        inputs: Any,
        *,
        batch_size: int | None = None,
        activation: str | None = None,
        nan_policy: str = "raise",
        normalize: bool = False,
        data_format: str = "channels_last",
        level: float = 0.95,
        strategy: Any = None,
    ) -> None:
        self._init_options(
            batch_size=batch_size,
            activation=activation,
            nan_policy=nan_policy,
            normalize=normalize,
            data_format=data_format,
            level=level,
        )
        if not callable(model):
            raise TypeError(f"model must be a Keras model (callable), got {type(model).__name__}.")
        self.model = model
        self.inputs = inputs
        self._multi_input = isinstance(inputs, (list, tuple))
        self._check_model_arity()
        self._inputs = self._convert_inputs(inputs)
        self.n = int(self._inputs[0].shape[0])
        self._batch = int(batch_size or DEFAULT_BATCH_SIZE)
        self.strategy = current_strategy(strategy)
        options = PassOptions(activation, data_format, bool(normalize), self._multi_input)
        self._passes = passes_for(model, options, self._inputs, self.strategy)
        self._outputs = self._passes.plain(self._inputs, self._batch)

    @property
    def trace_count(self) -> int:
        """Traces of the compiled passes (shared by every AveragesCam of this model)."""
        return self._passes.trace_count

    # ----------------------------------------------------------------- set-up checks
    def _check_model_arity(self) -> None:
        model_inputs = getattr(self.model, "inputs", None)
        if not model_inputs:
            return
        expected = len(model_inputs)
        given = len(self.inputs) if self._multi_input else 1
        if expected != given:
            raise ValueError(
                f"The model takes {expected} input(s) but inputs holds {given}"
                + (" (a list)" if self._multi_input else " (a single array)")
                + ": pass a list with one array per model input for a multi-input model, a "
                "single array otherwise."
            )

    def _convert_inputs(self, inputs: Any) -> list[tf.Tensor]:
        arrays = as_list(inputs)
        if not arrays:
            raise ValueError("inputs is an empty list: pass one array per model input.")
        dtypes = _model_input_dtypes(self.model, len(arrays))
        tensors = []
        for index, (array, dtype) in enumerate(zip(arrays, dtypes)):
            name = input_name(index, self._multi_input)
            if isinstance(array, (str, bytes)) or array is None:
                raise TypeError(f"{name} must be an array of shape (N, H, W, C), got {type(array).__name__}.")
            # a private copy (the cached plain outputs must stay true to these inputs), in the
            # model's input dtype (uint8 and integer images become float32)
            tensor = _private_tensor(array, dtype, name)
            if tensor.shape.rank is None or tensor.shape.rank < 2:
                raise ValueError(f"{name} must have a batch axis, shape (N, ...), got shape {tuple(tensor.shape)}.")
            validation.check_nonempty(int(tensor.shape[0]), name)
            tensors.append(tensor)
        check_same_count([int(t.shape[0]) for t in tensors])
        self._bad_inputs = np.logical_or.reduce(
            [self._nonfinite_inputs(t, input_name(i, self._multi_input)) for i, t in enumerate(tensors)]
        )
        return tensors

    def _nonfinite_inputs(self, tensor: tf.Tensor, name: str) -> np.ndarray:
        rows, _ = finite_rows(tensor, _BACKEND)
        return validation.check_finite_samples(rows, name, self.nan_policy)

    # ----------------------------------------------------------------- scores
    def _score_functions(self, score_function: Any) -> list:
        return as_score_list(score_function, len(self._outputs))

    def _plain_scores(self, score_function: Any) -> np.ndarray:
        scores = summed_scores(self._score_functions(score_function), self._outputs, self.n, _BACKEND)
        y_c = scores.numpy().astype(np.float64)
        validation.check_scores_finite(y_c, "score_function on the model's outputs", self.nan_policy)
        return y_c

    def _prepare_cams(self, cams: Any) -> tuple[list[tf.Tensor], np.ndarray, bool]:
        """Checked CAM tensors, one per input; which samples have a non-finite CAM; and whether
        the pass must clip the CAMs to [0, 1] (not when the checks found them inside it)."""
        cam_list = cams_per_input(cams, len(self._inputs), self._multi_input)
        tensors, bad, clip = [], np.zeros(self.n, dtype=bool), False
        for cam, x in zip(cam_list, self._inputs):
            # NumPy CAMs here are the cache's own copy (``private``): borrowed, not copied again
            tensor = _borrowed(cam) if isinstance(cam, np.ndarray) else None
            if tensor is None:
                tensor = _as_numeric_tensor(cam, "cams")
            check = check_masking_args(
                x, tensor, self.data_format, _BACKEND, normalize=self.normalize, nan_policy=self.nan_policy
            )
            clip = clip or not check.in_unit_range
            tensor = tf.cast(tensor, "float64" if x.dtype == tf.float64 else "float32")
            if check.nonfinite.any():  # only under nan_policy='omit': zero them, skip their samples
                bad |= check.nonfinite
                tensor = tf.where(tf.math.is_finite(tensor), tensor, tf.zeros_like(tensor))
            tensors.append(tensor)
        return tensors, bad, clip

    def _masked_scores(self, cams: Any, score_function: Any) -> np.ndarray:
        functions = self._score_functions(score_function)
        cam_tensors, bad, clip = self._prepare_cams(cams)
        outputs = self._passes.masked(self._inputs, cam_tensors, self._batch, clip=clip)
        o_c = summed_scores(functions, outputs, self.n, _BACKEND).numpy().astype(np.float64)
        o_c[bad] = np.nan
        validation.check_scores_finite(o_c, "score_function on the masked inputs", self.nan_policy)
        return o_c
