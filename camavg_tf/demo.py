"""The embedded demo: a tiny CNN on seeded synthetic images, its CAMs, and reference maps.

The images come from :func:`camavg_core.synthetic.make_images`: the class is the colour of one
blob whose location is known, so the true object mask is a ground-truth explanation. The demo
trains a small functional CNN on them (seconds on two CPU cores), caches it as a ``.keras`` file,
makes CAMs with tf-keras-vis (Grad-CAM, Grad-CAM++, Score-CAM, Layer-CAM) and adds reference
maps whose faithfulness is known in advance:

- ``reference:true-mask``: the object mask. Keeps the evidence: a low Average Drop.
- ``reference:inverse-mask``: ``1 - mask``. Removes the evidence: a high Average Drop.
- ``reference:ones``: keeps the whole image, so O_c = Y_c: drop 0, increase 0, gain 0.
- ``reference:random``: seeded uniform noise, a floor any CAM method should beat.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from camavg_core.synthetic import SyntheticImages, make_images

CAM_METHODS = ("gradcam", "gradcam++", "scorecam", "layercam")
REFERENCE_MAPS = (
    "reference:true-mask",
    "reference:inverse-mask",
    "reference:ones",
    "reference:random",
)
DEFAULT_LAYER = "conv_last"
IMAGE_SIZE = 32
N_CLASSES = 3
TRAIN_SIZE = 1200
TRAIN_SEED = 0
# The evaluation images use another seed than the training images, so the demo's numbers are
# about images the model never saw.
EVAL_SEED = 1
# Bump when the model or its training changes, so an old cached model is not reused.
MODEL_VERSION = 1
LABEL_SMOOTHING = 0.2
# Score-CAM runs one forward pass per channel of the layer; capping the channels at this number
# keeps it a few seconds on CPU (tf-keras-vis picks the channels with the largest activations).
SCORECAM_MAX_N = 8


def _keras():
    import keras

    return keras


def build_model(size: int = IMAGE_SIZE, n_classes: int = N_CLASSES):
    """A small functional CNN ending in a softmax Dense layer, with named conv layers.

    Functional rather than Sequential because tf-keras-vis' ``ReplaceToLinear`` clones the model
    and needs its graph of layers.

    Args:
        size: height and width of the (size, size, 3) inputs.
        n_classes: number of softmax outputs.

    Returns:
        An uncompiled ``keras.Model`` with conv layers ``conv_1``, ``conv_2`` and ``conv_last``
        (the layer the demo's CAMs are taken at) and a softmax output ``predictions``.
    """
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=(size, size, 3), name="image")
    features = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_1")(inputs)
    features = layers.MaxPooling2D(2, name="pool_1")(features)
    features = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_2")(features)
    features = layers.MaxPooling2D(2, name="pool_2")(features)
    # The last conv keeps an 8x8 map for a 32x32 input: coarse enough to train fast, fine
    # enough that a CAM can point at the blob.
    features = layers.Conv2D(16, 3, padding="same", activation="relu", name=DEFAULT_LAYER)(features)
    pooled = layers.GlobalAveragePooling2D(name="gap")(features)
    outputs = layers.Dense(n_classes, activation="softmax", name="predictions")(pooled)
    return keras.Model(inputs, outputs, name="camavg_demo_cnn")


def train_model(data: SyntheticImages, *, epochs: int = 6, seed: int = TRAIN_SEED, verbose: int = 0):
    """Build and train :func:`build_model` on ``data`` (Adam, cross-entropy with label smoothing).

    Args:
        data: images and labels, e.g. ``make_images(1200)``.
        epochs: passes over the data.
        seed: seeds Keras' weight initialisation and shuffling.
        verbose: Keras' ``fit`` verbosity.

    Returns:
        The trained, compiled model (its accuracy metric is ``accuracy``).
    """
    keras = _keras()
    keras.utils.set_random_seed(seed)
    size = data.images.shape[1]
    n_classes = int(data.labels.max()) + 1
    model = build_model(size=size, n_classes=max(n_classes, N_CLASSES))
    # Label smoothing keeps the softmax off 1.0 on this easy task: with a saturated Y_c no mask
    # can raise the score, and Average Increase and Gain would be 0 for every method.
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=3e-3),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING),
        metrics=["accuracy"],
    )
    targets = keras.utils.to_categorical(data.labels, num_classes=model.output_shape[-1])
    model.fit(data.images, targets, epochs=epochs, batch_size=32, shuffle=True, verbose=verbose)
    return model


def default_cache_dir() -> Path:
    """``$CAMAVG_CACHE`` if set, else ``~/.cache/camavg``."""
    configured = os.environ.get("CAMAVG_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "camavg"


def load_or_train(cache_dir: str | os.PathLike | None = None, *, verbose: int = 0):
    """The demo's trained model: loaded from the cache, or trained and cached on first use.

    Args:
        cache_dir: where the ``.keras`` file lives; default :func:`default_cache_dir`.
        verbose: Keras' ``fit`` verbosity when training.

    Returns:
        ``(model, trained)``: the model, and whether it was trained in this call.
    """
    keras = _keras()
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = directory / f"demo_cnn_v{MODEL_VERSION}.keras"
    if path.exists():
        try:
            return keras.models.load_model(path), False
        except Exception:  # noqa: BLE001 - a corrupt or foreign cache file: retrain over it
            pass
    model = train_model(make_images(TRAIN_SIZE, size=IMAGE_SIZE, n_classes=N_CLASSES, seed=TRAIN_SEED), verbose=verbose)
    directory.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a second demo running at the same time never reads half a file.
    partial = directory / f".{path.name}.{os.getpid()}.partial.keras"
    model.save(partial)
    os.replace(partial, path)
    return model, True


def demo_data(n: int = 64) -> SyntheticImages:
    """The demo's evaluation images: unseen by the model (another seed than training)."""
    return make_images(n, size=IMAGE_SIZE, n_classes=N_CLASSES, seed=EVAL_SEED)


def _to_unit_range(cams: Any) -> np.ndarray:
    """(N, H, W) float32 in [0, 1]; tf-keras-vis already normalises, this clips its rounding."""
    array = np.asarray(cams, dtype=np.float32)
    return np.clip(np.nan_to_num(array, nan=0.0), 0.0, 1.0)


@contextlib.contextmanager
def _quiet_keras():
    """Silence what tf-keras-vis makes Keras print: Score-CAM's ``predict`` progress bar and
    Keras' warning that a one-input model was given its input as a list."""
    keras = _keras()
    was_interactive = keras.utils.is_interactive_logging_enabled()
    keras.utils.disable_interactive_logging()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The structure of `inputs`")
            yield
    finally:
        if was_interactive:
            keras.utils.enable_interactive_logging()


def _visualizer(method: str, model):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

    classes = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus, "scorecam": Scorecam, "layercam": Layercam}
    # Every method sees the pre-softmax score. For the gradient methods that is tf-keras-vis'
    # advice; Score-CAM 0.8.7 applies a softmax to the model's outputs itself, so on a softmax
    # model it would take a softmax of probabilities and get nearly equal channel weights.
    return classes[method](model, model_modifier=ReplaceToLinear(), clone=True)


def _all_layers(model) -> list:
    """The model's layers, with those of nested models (tf-keras-vis finds those too)."""
    found = []
    for model_layer in model.layers:
        found.append(model_layer)
        if hasattr(model_layer, "layers"):
            found.extend(_all_layers(model_layer))
    return found


def _spatial_output(model_layer) -> bool:
    try:
        return len(model_layer.output.shape) == 4
    except (AttributeError, ValueError):  # several outputs, or not built
        return False


def conv_layer_names(model) -> list[str]:
    """Names of the convolutional layers a CAM can be taken at, in model order.

    Layers whose type is a convolution; when there are none, every layer with a 4-D
    (N, H, W, C) output except the input.
    """
    layers = [layer for layer in _all_layers(model) if type(layer).__name__ != "InputLayer"]
    convolutions = [layer.name for layer in layers if "Conv" in type(layer).__name__ and _spatial_output(layer)]
    return convolutions or [layer.name for layer in layers if _spatial_output(layer)]


def check_layer(model, layer: str) -> None:
    """Raise ValueError naming the conv layers when ``layer`` is not a layer of ``model``."""
    if layer not in {model_layer.name for model_layer in _all_layers(model)}:
        candidates = ", ".join(conv_layer_names(model)) or "none found"
        raise ValueError(
            f"layer {layer!r} is not a layer of model {model.name!r}; "
            f"convolutional layers to take a CAM at: {candidates}."
        )


def target_score(model, targets: np.ndarray):
    """The tf-keras-vis score function for one target per sample.

    ``CategoricalScore`` for a model with several output units; ``BinaryScore`` for one unit
    (a sigmoid model), whose targets are then 0 or 1.
    """
    from tf_keras_vis.utils.scores import BinaryScore, CategoricalScore

    targets = np.asarray(targets).reshape(-1)
    n_units = model.output_shape[-1] if hasattr(model, "output_shape") else None
    if n_units == 1:
        return BinaryScore([bool(target) for target in targets])
    return CategoricalScore([int(target) for target in targets])


def cam_method(method: str, model, images: np.ndarray, targets: np.ndarray, *, layer: str | None = DEFAULT_LAYER) -> np.ndarray:
    """One tf-keras-vis CAM method's maps for ``images`` and their ``targets``.

    Args:
        method: one of :data:`CAM_METHODS`.
        model: a Keras model (softmax, sigmoid or logit outputs).
        images: (N, H, W, C) inputs.
        targets: (N,) target classes (0/1 for a one-unit sigmoid model).
        layer: name of the conv layer to take the CAM at; None lets tf-keras-vis pick the last.

    Returns:
        (N, H, W) float32 in [0, 1].
    """
    if method not in CAM_METHODS:
        raise ValueError(f"method must be one of {', '.join(CAM_METHODS)}, got {method!r}.")
    if layer is not None:
        check_layer(model, layer)
    visualizer = _visualizer(method, model)
    kwargs: dict[str, Any] = {"penultimate_layer": layer}
    if method == "scorecam":
        kwargs["max_N"] = min(SCORECAM_MAX_N, _channels(model, layer))
    with _quiet_keras():
        cams = visualizer(target_score(model, targets), np.asarray(images, dtype=np.float32), **kwargs)
    return _to_unit_range(cams)


def _channels(model, layer: str | None) -> int:
    """Channels of the CAM layer (Score-CAM's max_N may not exceed them)."""
    if layer is None:
        return SCORECAM_MAX_N
    named = [model_layer for model_layer in _all_layers(model) if model_layer.name == layer]
    return int(named[0].output.shape[-1])


def reference_maps(masks: np.ndarray, *, seed: int = 0) -> dict[str, np.ndarray]:
    """The reference maps of the demo for object ``masks`` (N, H, W) in {0, 1}.

    >>> maps = reference_maps(np.array([[[0.0, 1.0], [1.0, 0.0]]]))
    >>> maps["reference:inverse-mask"].tolist(), maps["reference:ones"].tolist()
    ([[[1.0, 0.0], [0.0, 1.0]]], [[[1.0, 1.0], [1.0, 1.0]]])
    """
    masks = np.asarray(masks, dtype=np.float32)
    rng = np.random.default_rng(seed)
    return {
        "reference:true-mask": masks.copy(),
        "reference:inverse-mask": 1.0 - masks,
        "reference:ones": np.ones_like(masks),
        "reference:random": rng.random(masks.shape).astype(np.float32),
    }


def make_cams(
    model,
    images: np.ndarray,
    labels: np.ndarray,
    methods: Sequence[str] = CAM_METHODS,
    layer: str | None = DEFAULT_LAYER,
    *,
    masks: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """CAMs of every method in ``methods``, then the reference maps when ``masks`` is given.

    Args:
        model: a Keras model with a softmax output.
        images: (N, H, W, C) inputs.
        labels: (N,) target classes.
        methods: names from :data:`CAM_METHODS`, in the order wanted.
        layer: conv layer to take the CAMs at.
        masks: (N, H, W) true object masks, for the reference maps; None leaves them out.
        seed: seed of ``reference:random``.

    Returns:
        ``{method name: (N, H, W) float32 in [0, 1]}``, in order.
    """
    cams = {method: cam_method(method, model, images, labels, layer=layer) for method in methods}
    if masks is not None:
        cams.update(reference_maps(masks, seed=seed))
    return cams
