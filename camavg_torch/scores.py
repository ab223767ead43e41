"""Score functions as PyTorch users hold them, turned into what the engine reads.

- any ``outputs -> (N,)`` callable, applied to the outputs of all N samples;
- a list with one target per sample, as pytorch-grad-cam takes them
  (``[ClassifierOutputTarget(c) for c in labels]``): each target is a callable of *one*
  sample's output. They are recognised by behaviour (a list of N callables for a one-output
  model), never by importing pytorch-grad-cam; targets that only pick a class
  (``ClassifierOutputTarget``: a ``category`` integer) are read as one gather;
- class labels through :class:`CategoricalScore` (camavg's own, the one the engine reads).

>>> import torch
>>> class ClassifierOutputTarget:  # pytorch-grad-cam's, as it is written there
...     def __init__(self, category):
...         self.category = category
...     def __call__(self, model_output):
...         return model_output[self.category] if model_output.ndim == 1 else model_output[:, self.category]
>>> outputs = torch.tensor([[0.25, 0.75], [0.5, 0.125]])
>>> as_score_function([ClassifierOutputTarget(1), ClassifierOutputTarget(0)], n=2, n_outputs=1, activation=None).indices
[1, 0]
>>> as_score_function([ClassifierOutputTarget(1), lambda out: out[1]], n=2, n_outputs=1, activation=None)(outputs).tolist()
[0.75, 0.125]
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from camavg_core import validation
from camavg_core.scoring import CategoricalScore

__all__ = ["CategoricalScore", "as_score_function"]

_NUMBERS = (int, float, bool, np.number, np.bool_)


def _type_name(target: Any) -> str:
    return type(target).__name__


def _picks_a_class(target: Any) -> bool:
    """pytorch-grad-cam's ``ClassifierOutputTarget``: its score is ``output[category]``."""
    category = getattr(target, "category", None)
    return _type_name(target) == "ClassifierOutputTarget" and validation.is_integer(category)


class PerSampleTargets:
    """One target per sample, each applied to its own sample's output (pytorch-grad-cam's
    way); the N scores are stacked on the outputs' device."""

    def __init__(self, targets: list[Callable]) -> None:
        self.targets = targets

    def __call__(self, outputs: Any) -> Any:
        import torch

        scores = []
        for index, (target, output) in enumerate(zip(self.targets, outputs)):
            score = torch.as_tensor(target(output), device=outputs.device)
            if score.numel() != 1:
                raise ValueError(validation.torch_target_shape(index, tuple(score.shape)))
            scores.append(score.reshape(()))
        return torch.stack(scores)


def as_score_function(score_function: Any, *, n: int, n_outputs: int, activation: str | None) -> Any:
    """The score function the engine takes, from any of the forms above."""
    if not isinstance(score_function, (list, tuple)):
        return score_function
    targets = list(score_function)
    if targets and all(isinstance(t, _NUMBERS) for t in targets):
        raise TypeError(validation.torch_labels_as_score(len(targets)))
    per_sample = n_outputs == 1 and len(targets) == n and all(callable(t) for t in targets)
    if not per_sample:
        return score_function  # one score function per model output: the engine reads them
    if activation == "softmax" and any(_type_name(t) == "ClassifierOutputSoftmaxTarget" for t in targets):
        raise ValueError(validation.torch_double_softmax())
    if all(_picks_a_class(t) for t in targets):
        return CategoricalScore([int(t.category) for t in targets])
    return PerSampleTargets(targets)
