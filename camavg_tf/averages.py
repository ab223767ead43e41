"""``AveragesCam`` for Keras models and tf-keras-vis score functions: the TensorFlow adapter.

The engine (:mod:`camavg_core.engine`) owns the steps and the checks; this module supplies
TensorFlow's part: copies into tensors, the compiled passes (:mod:`camavg_tf.passes`: masking,
``preprocess``, the model and the activation in one ``tf.function`` that loops over the batches
inside the graph), and the (N,) scores back to the host.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from camavg_core import validation
from camavg_core.engine import AveragesCamBase, Engine, Options, as_list
from camavg_core.backends import resolve_backend
from camavg_core.perturbations import CAM_MASK, Perturbation, pixel_count, step_parameters
from camavg_core.watch import digest_of_sums
from camavg_tf.distribute import current_strategy
from camavg_tf.fingerprint import ModelWatch
from camavg_tf.passes import BatchStep, CompiledPasses, DistributedPasses

_BACKEND = resolve_backend("tensorflow")

#: Keras activations after which a model's outputs are probabilities
_PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")


def output_layers(model: Any) -> list[tuple[Any, str | None]]:
    """Each output of a Keras model's graph: the layer that makes it and that layer's
    activation by name (``'softmax'`` for a ``Softmax`` layer; None when it has none or
    the model has no graph: a subclassed model, a plain function)."""
    found = []
    for tensor in as_list(getattr(model, "outputs", None) or []):
        layer = getattr(getattr(tensor, "_keras_history", None), "operation", None)
        activation = getattr(layer, "activation", None)
        name = getattr(activation, "__name__", None) if activation is not None else None
        if name is None and type(layer).__name__ == "Softmax":
            name = "softmax"
        found.append((layer, name))
    return found


def output_kind(model: Any) -> str | None:
    """What a Keras model's own output layers say its outputs are: ``'logits'`` when some
    output comes from a layer with a linear activation (a ``Dense`` head without softmax),
    ``'probabilities'`` when every output comes from a softmax or sigmoid, None when the model
    does not say (a subclassed model, a plain function, another layer kind)."""
    kinds = [
        "probabilities" if name in _PROBABILITY_ACTIVATIONS else "logits" if name == "linear" else None
        for _, name in output_layers(model)
    ]
    if not kinds:
        return None
    if "logits" in kinds:
        return "logits"
    return "probabilities" if all(kind == "probabilities" for kind in kinds) else None


def check_activation(model: Any, activation: str | None) -> None:
    """A softmax or sigmoid ``activation`` on an output that already is one would apply it
    twice (the numbers stay in [0, 1], so no later check sees it): refuse, naming the layer."""
    if activation not in _PROBABILITY_ACTIVATIONS:
        return
    for layer, name in output_layers(model):
        if name in _PROBABILITY_ACTIVATIONS:
            raise ValueError(validation.activation_applied_twice(activation, getattr(layer, "name", "?"), name))


class TensorFlowAdapter:
    """TensorFlow's part of the engine (see :class:`camavg_core.engine.Adapter`)."""

    backend = _BACKEND

    def __init__(self, model: Any, strategy: Any = None) -> None:
        self.model = model
        self.strategy = strategy
        # the compiled passes belong to this adapter (and the distributed ones to its
        # strategy): a trace fixes the model's Python code as it was, so no other caller may
        # be served a pass traced for it
        self._passes: dict[Options, CompiledPasses | DistributedPasses] = {}
        self._lock = threading.Lock()
        self.watch = ModelWatch(model)
        self._structure = self.watch.structure()  # what self._passes were traced for
        symbolic = list(getattr(model, "inputs", None) or [])
        self._input_dtypes = [tf.as_dtype(getattr(t, "dtype", "float32") or "float32") for t in symbolic]

    def own(self, array: Any, dtype: str, name: str) -> tf.Tensor:
        if isinstance(array, (tf.Tensor, tf.Variable)):
            # a tensor may share memory with a NumPy array the caller still writes to (and a
            # cast to its own dtype is no copy): take a copy that is ours alone
            return tf.raw_ops.DeepCopy(x=tf.cast(tf.convert_to_tensor(array), dtype))
        # TensorFlow copies a NumPy array into memory of its own (tests/test_engine.py checks
        # that a later write to the array does not reach the tensor): one copy, not two
        return tf.convert_to_tensor(np.asarray(array, dtype=dtype))

    def input_dtype(self, index: int, dtype: np.dtype) -> str:
        """The model input's float dtype (float32 where it does not say or is not a float)."""
        if index < len(self._input_dtypes) and self._input_dtypes[index].is_floating:
            return self._input_dtypes[index].name
        return "float32"

    def run(self, inputs: list, cams: list | None, options: Options, batch_size: int,
            perturbation: Perturbation | None = None, extra: Any = None) -> list:
        check_activation(self.model, options.activation)  # here: the structure may change
        passes = self.passes(options, inputs)
        if cams is None:
            return passes.plain(inputs, batch_size)
        if extra is None and (perturbation is None or perturbation.key == CAM_MASK.key):
            # the averages' mask: one step, so a pass with no step loop in its graph
            return [out[None] for out in passes.masked(inputs, cams, batch_size)]
        parameters = step_parameters(perturbation, pixel_count(tuple(inputs[0].shape), options.data_format))
        return passes.perturbed(inputs, cams, batch_size, perturbation, parameters, extra)

    def passes(self, options: Options, inputs: list) -> CompiledPasses | DistributedPasses:
        """This adapter's compiled passes for ``options`` and the model's structure as it is
        now (another activation or other layers: traced afresh), traced at their first call."""
        structure = self.watch.structure()
        with self._lock:
            if self._structure != structure:  # the old traces will not run again
                self._structure, self._passes = structure, {}
            if options not in self._passes:
                steps = BatchStep(self.model, options)
                self._passes[options] = (
                    CompiledPasses(steps, steps.output_dtypes(inputs)) if self.strategy is None
                    else DistributedPasses(steps, self.strategy)
                )
            return self._passes[options]

    def to_host(self, scores: Any) -> np.ndarray:
        return np.asarray(tf.convert_to_tensor(scores).numpy(), dtype=np.float64)

    def output_kind(self) -> str | None:
        return output_kind(self.model)

    def model_version(self) -> Any:
        return self.watch.version()

    def model_digest(self) -> str | None:
        """The weights' sums (:meth:`ModelWatch.version`), to 9 significant digits, as text:
        the same in another process (the layers' identities are not), for a stream's resume."""
        version = self.watch.version()
        return None if version is None else digest_of_sums(np.frombuffer(version[1], np.float64))


class AveragesCam(AveragesCamBase):
    """Set of metrics that measure how a CAM's mask moves a Keras model's score.

    Args:
        model: an already trained Keras model (functional, Sequential or subclassed).
        inputs: the instances, ``tf.Tensor`` or NumPy array (N, H, W, C); a list of them for a
            multi-input model. camavg keeps its own copy: later changes to them do not count.
        batch_size: samples per forward pass (default 32).
        activation: ``'softmax'`` or ``'sigmoid'`` for a model that returns logits;
            ``'identity'`` to state that the outputs already are probabilities; None (default)
            to use them as they are. A model whose output layer is linear returns logits:
            Average Drop and Gain refuse it unless an activation is given.
        nan_policy: ``'raise'`` (default) names the first non-finite input, CAM or score;
            ``'omit'`` skips such samples and counts them in ``Result.skipped``.
        normalize: min-max normalise each CAM to [0, 1] before masking (also per call).
        data_format: ``'channels_last'`` (default) or ``'channels_first'``.
        level: confidence level of the intervals in ``Result.ci``.
        preprocess: a function applied inside the compiled pass after masking (and to the
            plain inputs), for preprocessing that sits outside the model: then the raw pixels
            are masked, as in the Grad-CAM++ paper. Default: mask the inputs as given.
        strategy: a ``tf.distribute.Strategy`` to spread the batches over its replicas (and
            hosts); by default the one whose ``scope()`` is open, if any. ``batch_size`` is
            then the global batch. The per-sample outputs come back in order, so the numbers
            equal the single-device ones.

    An ``AveragesCam`` may be shared between threads. The model's outputs on the inputs are
    computed once, here; each call copies the CAMs, applies the score function afresh, and
    reuses the masked outputs only for CAM values equal to the last call's.

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
        preprocess: Callable | None = None,
        strategy: Any = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be a Keras model (callable), got {type(model).__name__}.")
        multi_input = validation.is_array_list(inputs)
        _check_model_arity(model, inputs, multi_input)
        self.model = model
        self.inputs = inputs
        self.strategy = current_strategy(strategy)
        options = Options(activation, data_format, normalize, multi_input, preprocess)
        self.engine = Engine(
            TensorFlowAdapter(model, self.strategy), inputs, batch_size=batch_size,
            nan_policy=nan_policy, level=level, options=options,
        )


def _check_model_arity(model: Any, inputs: Any, multi_input: bool) -> None:
    model_inputs = getattr(model, "inputs", None)
    if not model_inputs:
        return
    expected = len(model_inputs)
    given = len(inputs) if multi_input else 1
    if expected != given:
        raise ValueError(
            f"The model takes {expected} input(s) but inputs holds {given}"
            + (" (a list)" if multi_input else " (a single array)")
            + ": pass a list with one array per model input for a multi-input model, a "
            "single array otherwise."
        )
