"""TensorFlow's part of the ``camavg`` command (``--framework tf``): Keras models, tf-keras-vis.

:data:`FRAMEWORK` is what :mod:`camavg_cli` asks of a framework (see
:class:`camavg_cli.frameworks.Framework`). Importing this module imports neither TensorFlow nor
tf-keras-vis: :func:`import_framework` does, when the command needs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from camavg_cli.frameworks import Framework
from camavg_cli.loading import CommandError
from camavg_tf.app import demo, quiet
from camavg_tf.app.recipes import CAM_METHODS, CLASS_NAMES, SCORECAM_MAX_N, Recipe, check_layer, make_cams, target_score


def import_framework() -> None:
    """TensorFlow, Keras and tf-keras-vis, without TensorFlow's start-up log lines."""
    quiet.import_tensorflow()
    import tf_keras_vis  # noqa: F401 - every CAM recipe and score function comes from it


def load_model(file: Path, given: str):
    """The Keras model saved in ``file``; CommandError with the reason and the fix."""
    import keras

    try:
        return keras.models.load_model(file, compile=False)
    except Exception as error:  # noqa: BLE001 - any failure to read a user's model file
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise CommandError(f"--model {given} could not be loaded as a Keras model ({reason}): save it with model.save('m.keras').") from None


def check_model_and_inputs(model, inputs: np.ndarray, path: str) -> int:
    """The number of output units; CommandError when the inputs do not fit the model."""
    expected = getattr(model, "input_shape", None)
    outputs = getattr(model, "output_shape", None)
    if not isinstance(expected, tuple) or not isinstance(outputs, tuple) or isinstance(expected[0], tuple) or isinstance(outputs[0], tuple):
        raise CommandError(f"--model {path}: the command line takes a model with one input and one output; "
                           f"for others use camavg_tf.AveragesCam in Python (see docs/tensorflow.md).")
    if inputs.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], inputs.shape[1:])):
        raise CommandError(f"--inputs has shape {inputs.shape} but the model takes {tuple(expected)}: pass inputs "
                           f"shaped like the model's input, with the samples first.")
    return int(np.prod([d for d in outputs[1:] if d is not None])) if len(outputs) > 1 else 1


def predict(model, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    return np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0))


def averages_cam(model, inputs, **options):
    from camavg_tf import AveragesCam

    return AveragesCam(model, inputs, **options)


FRAMEWORK = Framework(
    name="TensorFlow",
    install="pip install 'camavg[tf,cli]'",
    model_kind="Keras model",
    model_suffix=".keras",
    cam_library="tf-keras-vis",
    cam_methods=CAM_METHODS,
    cam_classes=CLASS_NAMES,
    recipe=Recipe,
    scorecam_max_n=SCORECAM_MAX_N,
    import_framework=import_framework,
    load_model=load_model,
    check_model_and_inputs=check_model_and_inputs,
    predict=predict,
    check_layer=check_layer,
    target_score=target_score,
    make_cams=make_cams,
    averages_cam=averages_cam,
    demo=demo,
)
