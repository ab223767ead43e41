"""Score functions: from a model's outputs on all N samples to the (N,) target scores.

tf-keras-vis score functions are recognised by their type name and read directly, without
importing tf-keras-vis (camavg never imports a framework for the user):

- ``CategoricalScore(indices)``: one index, or one per sample; read with one gather instead of
  tf-keras-vis' per-sample Python loop.
- ``BinaryScore(target_values)``: tf-keras-vis returns ``-p`` for a False target, a sign for the
  gradients. For the metrics camavg uses the confidence in the target, ``p`` for True and
  ``1 - p`` for False.
- Any other callable ``outputs -> (N,)``, and a list of score functions for a multi-output
  model, whose score is then the sum over outputs (what tf-keras-vis differentiates).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from camavg_core import validation
from camavg_core.backends import Backend


def _type_name(score_function: Any) -> str:
    return type(score_function).__name__


def is_categorical_score(score_function: Any) -> bool:
    return _type_name(score_function) == "CategoricalScore" and hasattr(score_function, "indices")


def is_inactive_score(score_function: Any) -> bool:
    """tf-keras-vis' ``InactiveScore``: an output of a multi-output model that does not count."""
    return _type_name(score_function) == "InactiveScore"


def is_binary_score(score_function: Any) -> bool:
    return _type_name(score_function) == "BinaryScore" and hasattr(score_function, "target_values")


def as_score_list(score_function: Any, n_outputs: int) -> list[Callable]:
    """One score function per model output, checked against the number of outputs."""
    if isinstance(score_function, (list, tuple, np.ndarray)):
        functions = list(score_function)
        if functions and all(isinstance(f, (int, float, np.number, bool, np.bool_)) for f in functions):
            raise TypeError(validation.numbers_as_score(len(functions)))
        if len(functions) != n_outputs:
            raise ValueError(validation.score_count(len(functions), n_outputs))
    else:
        if n_outputs != 1:
            raise ValueError(validation.one_score_for_outputs(n_outputs))
        functions = [score_function]
    for function in functions:
        if not callable(function):
            raise TypeError(validation.score_not_callable(function))
    return functions


def _per_sample(values: Sequence, n: int, what: str, argument: str) -> np.ndarray:
    values = list(values)
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise ValueError(validation.per_sample_count(argument, len(values), what, n))
    return np.asarray(values)


def class_indices(indices: Any, n: int, n_classes: int, argument: str = "CategoricalScore") -> np.ndarray:
    """(N,) int64 class indices, each an integer in [0, n_classes), or an error naming the
    first bad sample. Floats are refused even when integral-valued: 2.7 must not become 2."""
    values = list(indices) if isinstance(indices, (list, tuple, np.ndarray)) else [indices]
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        for index, value in enumerate(values):
            if not validation.is_integer(value):
                # a NumPy scalar shows as its plain value (2.7, not np.float64(2.7))
                shown = value.item() if isinstance(value, np.generic) else value
                raise ValueError(validation.class_index_not_integer(argument, shown, index, n_classes))
    array = _per_sample(array.astype(np.int64), n, "class indices", argument)
    bad = np.flatnonzero((array < 0) | (array >= n_classes))
    if bad.size:
        first = int(bad[0])
        raise ValueError(validation.class_index_out_of_range(argument, int(array[first]), first, n_classes))
    return array


def binary_targets(targets: np.ndarray) -> None:
    """Refuse target values other than True/False or 1/0: a -1 of -1/+1 labels, a 2 or a 0.2
    would each be read as True (as tf-keras-vis reads them), and score 1 - p where p is meant."""
    values = np.asarray(targets)
    if values.dtype.kind in "biuf":  # numbers: one vectorised test, not a Python loop per sample
        bad = np.flatnonzero((values != 0) & (values != 1))
        if bad.size:
            raise ValueError(validation.binary_target_value(values[bad[0]].item(), int(bad[0])))
        return
    for index, value in enumerate(values.tolist()):  # objects, strings: each read as Python
        value = value.item() if isinstance(value, np.generic) else value
        if not isinstance(value, (bool, int, float)) or value not in (0, 1):
            raise ValueError(validation.binary_target_value(value, index))


def target_scores(score_function: Any, output: Any, n: int, backend: Backend) -> Any:
    """(N,) scores of one score function on one model output, on the output's device."""
    if is_categorical_score(score_function):
        shape = backend.shape(output)
        if len(shape) < 2:
            raise ValueError(validation.categorical_output_shape(shape))
        indices = class_indices(score_function.indices, n, int(shape[-1]))
        return backend.select_class(output, indices)
    if is_inactive_score(score_function):  # zero for every sample, whatever the output's shape
        return backend.reshape(backend.sum(backend.reshape(output, (n, -1)), axis=1), (n,)) * 0.0
    if is_binary_score(score_function):
        shape = backend.shape(output)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise ValueError(validation.binary_output_shape(shape))
        targets = _per_sample(score_function.target_values, n, "target values", "BinaryScore")
        binary_targets(targets)
        p = backend.reshape(output, (n,))
        positive = backend.asarray(targets.astype(bool))
        return backend.where(positive, p, 1.0 - p)
    scores = score_function(output)
    if isinstance(scores, (list, tuple)):  # tf-keras-vis 0.6-style scores: a list of scalars
        scores = backend.stack(list(scores))
    scores = backend.asarray(scores)
    validation.check_scores_shape(backend.shape(scores), n)
    return backend.reshape(scores, (n,))


def summed_scores(score_functions: list[Callable], outputs: list[Any], n: int, backend: Backend) -> Any:
    """The sum over outputs of each output's scores (a single output: its scores)."""
    total = None
    for function, output in zip(score_functions, outputs):
        scores = target_scores(function, output, n, backend)
        total = scores if total is None else total + scores
    return total


class CategoricalScore:
    """camavg's own stand-in for tf-keras-vis' ``CategoricalScore``, read the same way: the
    output at one class index per sample (the streams build one per batch of targets)."""

    def __init__(self, indices: Any) -> None:
        self.indices = list(indices) if isinstance(indices, (list, tuple, np.ndarray)) else [indices]

    def __call__(self, output: Any) -> Any:  # read by target_scores, never called there
        raise TypeError(validation.read_through_target_scores("CategoricalScore"))


class BinaryScore:
    """camavg's own stand-in for tf-keras-vis' ``BinaryScore``: p for a True target, 1 - p for
    a False one (the confidence in the target)."""

    def __init__(self, target_values: Any) -> None:
        values = list(target_values) if isinstance(target_values, (list, tuple, np.ndarray)) else [target_values]
        self.target_values = values

    def __call__(self, output: Any) -> Any:
        raise TypeError(validation.read_through_target_scores("BinaryScore"))


def stream_score(score: Any, targets: Any) -> Any:
    """The score function of one stream batch: ``'categorical'`` (targets are class indices),
    ``'binary'`` (booleans for a single sigmoid output) or ``score(outputs, targets) -> (B,)``."""
    if callable(score):
        return lambda outputs: score(outputs, targets)
    host = np.asarray(targets)
    if host.ndim == 2 and host.shape[1] == 1:
        host = host[:, 0]
    if host.ndim != 1:
        raise ValueError(validation.target_shape(host.shape))
    if score == "binary":
        return BinaryScore(host)
    return CategoricalScore(host)
