"""The embedded demo: a tiny CNN on seeded synthetic images, its CAMs, and reference maps.

The images come from :func:`camavg_cli.synthetic.make_images`: the class is the colour of one
blob whose location is known, so the true object mask is a ground-truth explanation. The demo
trains a small functional CNN on them (seconds on two CPU cores), caches it as a ``.keras`` file,
makes CAMs with tf-keras-vis (Grad-CAM, Grad-CAM++, Score-CAM, Layer-CAM) and adds reference
maps whose faithfulness is known in advance (:func:`demo_metrics` says what is measured on them):

- ``reference:true-mask``: the object mask. Keeps the evidence: a low Average Drop.
- ``reference:inverse-mask``: ``1 - mask``. Removes the evidence: a high Average Drop.
- ``reference:ones``: keeps the whole image, so O_c = Y_c: drop 0, increase 0, gain 0.
- ``reference:random``: seeded uniform noise, a floor any CAM method should beat.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from camavg_cli import synthetic
from camavg_cli.synthetic import SyntheticImages, make_images
from camavg_tf.app.recipes import CAM_METHODS, Recipe

__all__ = ["CAM_METHODS", "REFERENCE_MAPS", "build_model", "demo_data", "demo_metrics", "load_or_train", "reference_maps",
           "train_model"]
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
# Bump when the model's code or its training changes; the cache key also digests every constant
# of the task and the training (see cache_key), so a changed task never reuses an old model.
MODEL_VERSION = 3
LABEL_SMOOTHING = 0.2
EPOCHS = 6
# Deletion and Insertion at the library's (and xplique's) default of 10 steps: they add about
# 2.5 s of CPU to the demo, most of it fixed (a second compiled pass, the comparisons, the
# curves' panel); 5 steps saved about 0.5 s (docs/demo.md), too little to give up the default.
CURVE_STEPS = 10


def _keras():
    import keras

    return keras


def build_model(size: int = IMAGE_SIZE, n_classes: int = N_CLASSES):
    """A small functional CNN: three conv layers, then Flatten and a softmax Dense layer.

    Functional rather than Sequential because tf-keras-vis' ``ReplaceToLinear`` clones the model
    and needs its graph of layers. The head is Flatten + Dense, as in VGG16, not global average
    pooling: behind average pooling the gradient of the score is the same at every position of
    the conv map, which makes Grad-CAM++ and Layer-CAM the same map and leaves the methods
    within a fraction of a point of each other (docs/demo.md). Behind Flatten every position
    has its own weights, and the methods differ as they were designed to.

    Args:
        size: height and width of the (size, size, 3) inputs.
        n_classes: number of softmax outputs.

    Returns:
        An uncompiled ``keras.Model`` with conv layers ``conv_1``, ``conv_2`` and ``conv_last``
        (the layer the demo's CAMs are taken at), ``flatten`` and a softmax output ``predictions``.
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
    flat = layers.Flatten(name="flatten")(features)
    outputs = layers.Dense(n_classes, activation="softmax", name="predictions")(flat)
    return keras.Model(inputs, outputs, name="camavg_demo_cnn")


def train_model(data: SyntheticImages, *, epochs: int = EPOCHS, seed: int = TRAIN_SEED, verbose: int = 0):
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


def cache_key() -> str:
    """``v<MODEL_VERSION>-<digest>``: the digest covers the task's and the training's constants.

    >>> cache_key().startswith(f"v{MODEL_VERSION}-")
    True
    """
    constants = (
        MODEL_VERSION, IMAGE_SIZE, N_CLASSES, TRAIN_SIZE, TRAIN_SEED, LABEL_SMOOTHING, EPOCHS,
        synthetic.BACKGROUND_MEAN_RANGE, synthetic.BACKGROUND_NOISE, synthetic.BLOB_NOISE,
    )
    return f"v{MODEL_VERSION}-{hashlib.sha256(repr(constants).encode()).hexdigest()[:10]}"


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
    path = directory / f"demo_cnn_{cache_key()}.keras"
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


def demo_metrics() -> tuple:
    """What the demo measures: the three averages, then Deletion and Insertion (RISE) with
    :data:`CURVE_STEPS` steps and a black (0) baseline.

    >>> [metric.name for metric in demo_metrics()]
    ['average_drop', 'average_increase', 'average_gain', 'deletion', 'insertion']
    """
    from camavg_core.metrics import AVERAGES, deletion_metric, insertion_metric

    return (*AVERAGES, deletion_metric(steps=CURVE_STEPS), insertion_metric(steps=CURVE_STEPS))


def demo_data(n: int = 64) -> SyntheticImages:
    """The demo's evaluation images: unseen by the model (another seed than training)."""
    return make_images(n, size=IMAGE_SIZE, n_classes=N_CLASSES, seed=EVAL_SEED)


REFERENCE_RECIPES = {
    "reference:true-mask": "the true object mask (1 on the object, 0 elsewhere)",
    "reference:inverse-mask": "1 - the true object mask",
    "reference:ones": "a map of ones (keeps the whole image)",
    "reference:random": "uniform random values in [0, 1), NumPy default_rng(seed=0)",
}


def demo_recipes(layer: str = DEFAULT_LAYER, *, replace_to_linear: bool = True, scorecam_max_n: int | None = 8) -> dict[str, Recipe]:
    """The recipe of each CAM method of the demo."""
    return {method: Recipe(method, layer, replace_to_linear, scorecam_max_n) for method in CAM_METHODS}


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
