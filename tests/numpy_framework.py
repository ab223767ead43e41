"""A framework for the ``camavg`` command made of NumPy alone, for the tests of the seam between
the command line (:mod:`camavg_cli`) and a framework (see :class:`camavg_cli.frameworks.Framework`).

The "model" is a ``.npz`` file holding ``weights`` (C, K): softmax of each image's per-channel
mean times the weights. The one ``--method``, ``ones``, makes a map of ones. There is no demo.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from camavg_cli.frameworks import Framework
from camavg_cli.loading import CommandError
from camavg_core import apply_cams, summarize


@dataclasses.dataclass(frozen=True)
class OnesRecipe:
    method: str
    layer: str | None
    replace_to_linear: bool = True
    scorecam_max_n: int | None = None

    def describe(self) -> str:
        return "a map of ones"


def predict(weights: np.ndarray, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    logits = np.asarray(inputs, dtype=np.float64).mean(axis=(1, 2)) @ weights
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def load_model(file: Path, given: str) -> np.ndarray:
    with np.load(file) as saved:
        return saved["weights"]


def check_model_and_inputs(weights: np.ndarray, inputs: np.ndarray, given: str) -> int:
    if inputs.ndim != 4 or inputs.shape[-1] != weights.shape[0]:
        raise CommandError(f"--inputs has shape {inputs.shape}; the model takes (N, H, W, {weights.shape[0]}).")
    return weights.shape[1]


def target_score(weights: np.ndarray, targets: np.ndarray):
    targets = np.asarray(targets).reshape(-1)
    return lambda outputs: outputs[np.arange(len(targets)), targets]


class AveragesCam:
    """What the command asks of an adapter's ``AveragesCam``: ``evaluate_many``."""

    def __init__(self, weights, inputs, *, batch_size=None, activation=None, nan_policy="raise", normalize=False):
        self.weights, self.inputs, self.nan_policy, self.normalize = weights, inputs, nan_policy, normalize

    def evaluate_many(self, cam_sets, score, metrics=None):
        y_c = score(predict(self.weights, self.inputs))
        return [summarize(y_c, score(predict(self.weights, apply_cams(self.inputs, cams, normalize=self.normalize))),
                          nan_policy=self.nan_policy, metrics=metrics) for cams in cam_sets]


FRAMEWORK = Framework(
    name="NumPy",
    install="pip install numpy",
    model_kind="weights file",
    model_suffix=".npz",
    cam_library="NumPy",
    cam_methods=("ones",),
    cam_classes={"ones": "numpy.ones"},
    recipe=OnesRecipe,
    scorecam_max_n=None,
    import_framework=lambda: None,
    load_model=load_model,
    check_model_and_inputs=check_model_and_inputs,
    predict=predict,
    check_layer=lambda weights, layer: None,
    target_score=target_score,
    make_cams=lambda recipe, weights, images, targets: np.ones(np.shape(images)[:3], np.float32),
    averages_cam=AveragesCam,
)
