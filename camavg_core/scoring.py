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


def is_binary_score(score_function: Any) -> bool:
    return _type_name(score_function) == "BinaryScore" and hasattr(score_function, "target_values")


def as_score_list(score_function: Any, n_outputs: int) -> list[Callable]:
    """One score function per model output, checked against the number of outputs."""
    if isinstance(score_function, (list, tuple)):
        functions = list(score_function)
        if len(functions) != n_outputs:
            raise ValueError(
                f"score_function is a list of {len(functions)} functions but the model has "
                f"{n_outputs} outputs: pass one score function per output."
            )
    else:
        if n_outputs != 1:
            raise ValueError(
                f"The model has {n_outputs} outputs but score_function is a single function: "
                f"pass a list with one score function per output, as with tf-keras-vis."
            )
        functions = [score_function]
    for function in functions:
        if not callable(function):
            raise TypeError(
                f"score_function must be callable (a tf-keras-vis Score or outputs -> (N,) "
                f"scores), got {type(function).__name__}."
            )
    return functions


def _per_sample(values: Sequence, n: int, what: str, argument: str) -> np.ndarray:
    values = list(values)
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise ValueError(
            f"{argument} holds {len(values)} {what} for {n} samples: give one for all samples, "
            f"or one per sample."
        )
    return np.asarray(values)


def score_key(score_function: Any) -> tuple:
    """What identifies a score function's result, for the masked-pass cache."""
    if isinstance(score_function, (list, tuple)):
        return tuple(score_key(function) for function in score_function)
    if is_categorical_score(score_function):
        return ("categorical", tuple(int(i) for i in score_function.indices))
    if is_binary_score(score_function):
        return ("binary", tuple(bool(v) for v in score_function.target_values))
    return ("callable", id(score_function))


def target_scores(score_function: Any, output: Any, n: int, backend: Backend) -> Any:
    """(N,) scores of one score function on one model output, on the output's device."""
    if is_categorical_score(score_function):
        shape = backend.shape(output)
        if len(shape) < 2:
            raise ValueError(
                f"CategoricalScore needs outputs of shape (N, classes), got shape {shape}."
            )
        indices = _per_sample(score_function.indices, n, "class indices", "CategoricalScore")
        if indices.min() < -shape[-1] or indices.max() >= shape[-1]:
            raise ValueError(
                f"CategoricalScore index {int(indices.max())} is out of range for outputs with "
                f"{shape[-1]} classes."
            )
        return backend.select_class(output, indices % shape[-1])
    if is_binary_score(score_function):
        shape = backend.shape(output)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise ValueError(
                f"BinaryScore needs outputs of shape (N, 1), got shape {shape}: one sigmoid "
                f"output per sample."
            )
        targets = _per_sample(score_function.target_values, n, "target values", "BinaryScore")
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
