"""An engine's framework part made of NumPy alone, for tests of the core's loops that need no
framework: the model is softmax(mean colour @ weights), float64 throughout."""

from __future__ import annotations

import numpy as np

from camavg_core.backends import NumpyBackend
from camavg_core.masking import mask_inputs


class NumpyAdapter:
    """An engine's framework part made of NumPy: the model is softmax(mean colour @ weights)."""

    backend = NumpyBackend()

    def __init__(self, weights):
        self.weights = weights
        self.runs = 0

    def own(self, array, dtype, name):
        return np.array(array, dtype=dtype, copy=True)

    def input_dtype(self, index, dtype):
        return "float64"

    def run(self, inputs, cams, options, batch_size, perturbation=None, extra=None):
        # the plain pass gives (N, C); a perturbed one (K, N, C): here the CAM mask, K = 1
        self.runs += 1
        x = inputs[0] if cams is None else mask_inputs(inputs[0], cams[0], normalize=options.normalize)
        logits = np.asarray(x, np.float64).mean(axis=(1, 2)) @ self.weights
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = exp / exp.sum(axis=1, keepdims=True)
        return [probabilities if cams is None else probabilities[None]]

    def to_host(self, scores):
        return np.asarray(scores, dtype=np.float64)

    def output_kind(self):
        return None

    def model_version(self):
        return None
