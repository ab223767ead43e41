"""How the command line makes each CAM with tf-keras-vis, stated so that a reader can redo it.

A :class:`Recipe` holds every choice that changes the maps: the tf-keras-vis class, whether the
model's last activation is replaced by a linear one (``ReplaceToLinear``), Score-CAM's ``max_N``,
the penultimate layer, and the normalisation. ``Recipe.describe()`` is the text printed in
``--help``, in the table and in ``results.json``; the docs show the same call in Python.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from typing import Any

import numpy as np

CAM_METHODS = ("gradcam", "gradcam++", "scorecam", "layercam")
CLASS_NAMES = {
    "gradcam": "tf_keras_vis.gradcam.Gradcam",
    "gradcam++": "tf_keras_vis.gradcam_plus_plus.GradcamPlusPlus",
    "scorecam": "tf_keras_vis.scorecam.Scorecam",
    "layercam": "tf_keras_vis.layercam.Layercam",
}
# Score-CAM runs one forward pass per channel it keeps; 8 keeps it a few seconds on a CPU
# (tf-keras-vis keeps the channels with the largest activations).
SCORECAM_MAX_N = 8


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One CAM method's recipe.

    Attributes:
        method: one of :data:`CAM_METHODS`.
        layer: the penultimate (conv) layer the CAM is taken at; None lets tf-keras-vis pick.
        replace_to_linear: apply ``ReplaceToLinear`` (score the pre-softmax output).
        scorecam_max_n: Score-CAM's ``max_N``; None keeps every channel.
    """

    method: str
    layer: str | None
    replace_to_linear: bool = True
    scorecam_max_n: int | None = SCORECAM_MAX_N

    def describe(self) -> str:
        """One line, e.g. ``Gradcam, ReplaceToLinear, penultimate_layer=conv, min-max per map``.

        >>> Recipe("scorecam", "conv_last").describe()
        'tf_keras_vis.scorecam.Scorecam, model_modifier=ReplaceToLinear(), max_N=8, penultimate_layer=conv_last, normalize_cam=True (min-max per map)'
        """
        parts = [CLASS_NAMES[self.method]]
        parts.append("model_modifier=ReplaceToLinear()" if self.replace_to_linear else "no model_modifier (scores the model's own output)")
        if self.method == "scorecam":
            parts.append(f"max_N={self.scorecam_max_n if self.scorecam_max_n is not None else 'None (all channels)'}")
        parts.append(f"penultimate_layer={self.layer if self.layer is not None else 'None (the last conv layer)'}")
        parts.append("normalize_cam=True (min-max per map)")
        return ", ".join(parts)


def all_layers(model) -> list:
    """The model's layers, with those of nested models (tf-keras-vis finds those too)."""
    found = []
    for model_layer in model.layers:
        found.append(model_layer)
        if hasattr(model_layer, "layers"):
            found.extend(all_layers(model_layer))
    return found


def _spatial_output(model_layer) -> bool:
    try:
        return len(model_layer.output.shape) == 4
    except (AttributeError, ValueError):  # several outputs, or not built
        return False


def conv_layer_names(model) -> list[str]:
    """Names of the layers a CAM can be taken at: convolutions, else any 4-D output."""
    layers = [layer for layer in all_layers(model) if type(layer).__name__ != "InputLayer"]
    convolutions = [layer.name for layer in layers if "Conv" in type(layer).__name__ and _spatial_output(layer)]
    return convolutions or [layer.name for layer in layers if _spatial_output(layer)]


def check_layer(model, layer: str) -> None:
    """ValueError naming the conv layers when ``layer`` is not a spatial layer of ``model``."""
    named = [model_layer for model_layer in all_layers(model) if model_layer.name == layer]
    if not named or not _spatial_output(named[0]):
        candidates = ", ".join(conv_layer_names(model)) or "none found"
        problem = "is not a layer of" if not named else "has no (N, H, W, C) output in"
        raise ValueError(f"--layer {layer!r} {problem} model {model.name!r}; layers to take a CAM at: {candidates}.")


def target_score(model, targets: np.ndarray):
    """``CategoricalScore`` of one target per sample; ``BinaryScore`` for a one-unit model."""
    from tf_keras_vis.utils.scores import BinaryScore, CategoricalScore

    targets = np.asarray(targets).reshape(-1)
    if model.output_shape[-1] == 1:
        return BinaryScore([bool(target) for target in targets])
    return CategoricalScore([int(target) for target in targets])


@contextlib.contextmanager
def quiet_keras():
    """Silence Score-CAM's ``predict`` progress bar and Keras' warning about a one-input model
    given its input as a list (tf-keras-vis does that, not the user)."""
    import keras

    was_interactive = keras.utils.is_interactive_logging_enabled()
    keras.utils.disable_interactive_logging()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The structure of `inputs`")
            yield
    finally:
        if was_interactive:
            keras.utils.enable_interactive_logging()


def _channels(model, layer: str | None) -> int | None:
    if layer is None:
        return None
    named = [model_layer for model_layer in all_layers(model) if model_layer.name == layer]
    return int(named[0].output.shape[-1])


def make_cams(recipe: Recipe, model, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The (N, H, W) float32 maps in [0, 1] that ``recipe`` gives for ``images`` and ``targets``."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

    classes = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus, "scorecam": Scorecam, "layercam": Layercam}
    if recipe.layer is not None:
        check_layer(model, recipe.layer)
    modifier = ReplaceToLinear() if recipe.replace_to_linear else None
    visualizer = classes[recipe.method](model, model_modifier=modifier, clone=True)
    kwargs: dict[str, Any] = {"penultimate_layer": recipe.layer}
    if recipe.method == "scorecam":
        channels = _channels(model, recipe.layer)
        max_n = recipe.scorecam_max_n
        # tf-keras-vis fails when max_N exceeds the layer's channels; all of them is the same maps.
        kwargs["max_N"] = None if max_n is None or (channels is not None and max_n >= channels) else max_n
    with quiet_keras():
        cams = visualizer(target_score(model, targets), np.asarray(images, dtype=np.float32), **kwargs)
    # tf-keras-vis normalises each map to [0, 1]; clip its float rounding, and a flat map's NaN.
    return np.clip(np.nan_to_num(np.asarray(cams, dtype=np.float32), nan=0.0), 0.0, 1.0)
