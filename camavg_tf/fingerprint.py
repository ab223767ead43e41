"""What a Keras model is now, cheaply: the version an ``AveragesCam`` compares at each call.

Two parts. The *structure*: the identities of the model's layers, their activations and its
variables, and the layers' plain settings, read in Python (a swapped activation, rebuilt
variables or a changed ``Rescaling`` scale change it, and a compiled pass traced before it no
longer runs the model as it is). The *weights*: per float variable,
three float64 sums reduced on the device (the values, their squares, and the values times a
fixed pseudo-random projection, which a permutation of the values does not keep), so that
``set_weights`` or a training step changes it; only (variables, 3) numbers reach the host.

>>> import keras, numpy as np
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> watch = ModelWatch(model)
>>> before = watch.version()
>>> before == watch.version()
True
>>> model.set_weights([np.ones((2, 1)), np.zeros(1)])
>>> before == watch.version()
False
"""

from __future__ import annotations

import functools
import threading
import weakref
from typing import Any

import numpy as np
import tensorflow as tf

from camavg_core.watch import SettingsReader


def model_layers(model: Any) -> list:
    """Every layer of a Keras model, nested models' layers included; [] for a plain function."""
    flatten = getattr(model, "_flatten_layers", None)
    if callable(flatten):
        try:
            return list(flatten(include_self=True, recursive=True))
        except TypeError:  # a _flatten_layers of another signature: the top-level layers
            pass
    return [model, *getattr(model, "layers", ())] if hasattr(model, "layers") else []


#: a Keras model's attributes that are no setting of the function it computes: the training
#: loop's state, which ``compile``, ``fit``, ``evaluate`` and ``predict`` set (Keras 3's Trainer),
#: and whether a layer is built
_NOT_SETTINGS = frozenset({
    "built", "compiled", "history", "jit_compile", "loss", "predict_function", "run_eagerly",
    "steps_per_execution", "stop_evaluating", "stop_predicting", "stop_training", "test_function",
    "train_function", "unrolled_steps_per_execution",
})


class WeightSums:
    """The (variables, 3) float64 sums of a fixed list of variables, in one ``tf.function``."""

    def __init__(self, variables: list) -> None:
        self.variables = [v for v in variables if tf.as_dtype(v.dtype).is_floating]
        # a partial, not a closure: TensorFlow counts traces per code object
        self._sums = tf.function(functools.partial(self._reduce))

    def __call__(self) -> np.ndarray:
        if not self.variables:
            return np.zeros((0, 3))
        return self._sums().numpy()

    def _reduce(self) -> tf.Tensor:
        rows = []
        for index, variable in enumerate(self.variables):
            values = tf.reshape(tf.cast(tf.convert_to_tensor(variable), tf.float64), [-1])
            projection = tf.random.stateless_uniform(tf.shape(values), seed=[index, 20], dtype=tf.float64)
            rows.append(tf.stack([
                tf.reduce_sum(values), tf.reduce_sum(values * values), tf.reduce_sum(values * projection),
            ]))
        return tf.stack(rows)


#: per model, the sums of its variables as they were last listed: a ``WeightSums`` is a pure
#: function of the variable objects it holds (it reads their values live, and no model code is
#: in its trace), so every watch of one model may share it; its trace (a few thousand ops for
#: an ImageNet model) is then paid once per model, not once per ``AveragesCam``. Weak keys: the
#: entry goes with the model.
_SHARED_SUMS: "weakref.WeakKeyDictionary[Any, tuple[tuple, WeightSums]]" = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def weight_sums(model: Any, variables: list, key: tuple) -> "WeightSums":
    """The :class:`WeightSums` of ``variables`` (whose ids are ``key``), shared per model."""
    with _SHARED_LOCK:
        try:
            shared = _SHARED_SUMS.get(model)
        except TypeError:  # a model that cannot be weakly referenced: sums of its own
            return WeightSums(variables)
        if shared is None or shared[0] != key:
            shared = (key, WeightSums(variables))
            _SHARED_SUMS[model] = shared
        return shared[1]


class ModelWatch:
    """A Keras model's structure and weight sums (see the module's docstring)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._lock = threading.Lock()
        self._kept: tuple = ()  # the objects of the last structure, so that no id is reused
        self._sums: tuple[tuple, WeightSums] | None = None
        self._settings = SettingsReader(_NOT_SETTINGS)

    def structure(self) -> tuple | None:
        """Ids of the layers, their activations and the variables, and the layers' plain
        settings (:class:`camavg_core.watch.SettingsReader`: a ``Rescaling``'s scale, a subclassed
        layer's temperature); None for a plain function."""
        layers = model_layers(self.model)
        if not layers:
            return None
        activations = [getattr(layer, "activation", None) for layer in layers]
        variables = list(getattr(self.model, "variables", ()))
        with self._lock:
            self._kept = (layers, activations, variables)
        return (tuple(map(id, layers)), tuple(map(id, activations)), tuple(map(id, variables)),
                self._settings(layers))

    def version(self) -> Any:
        """``(structure, weight sums as bytes)``; None when the model is a plain function."""
        structure = self.structure()
        if structure is None:
            return None
        with self._lock:
            if self._sums is None or self._sums[0] != structure[2]:
                self._sums = (structure[2], weight_sums(self.model, list(self.model.variables), structure[2]))
            sums = self._sums[1]
        return structure, sums().tobytes()
