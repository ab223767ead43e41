"""camavg beside xplique 2.0.2 on the same model, inputs and maps (docs/comparison.md).

    CAMAVG_XPLIQUE_DIR=/tmp/xplique_dir python -m benchmarks.peer_xplique   # from the repository root

Runs xplique's ``AverageDropMetric``, ``AverageIncreaseMetric`` and ``AverageGainMetric`` and
camavg's ``AveragesCam.evaluate``, then xplique's ``Deletion`` and ``Insertion`` beside camavg's
(docs/faithfulness-curves.md), on one small seeded Keras model (functional API, softmax head,
trained for a few seconds on synthetic images) and prints the largest differences, in percent.

The maps come in two kinds:

- maps whose values already span exactly [0, 1] in every sample (Grad-CAM and Grad-CAM++ from
  tf-keras-vis, rescaled so, and seeded random maps). xplique takes their absolute value and
  min-max rescales them, which leaves such maps as they are up to its 1e-8 epsilon, so both
  libraries mask the images with the same maps and should agree to float rounding;
- a map of ones: camavg masks with it as given (the image unchanged, a drop of 0), while
  xplique's min-max rescaling turns a constant map into zeros (the whole image masked); a map of
  zeros, which both libraries read alike, shows that this is the whole difference.

Not part of the test suite: xplique pins its own TensorFlow and SciPy, so it is installed into a
private directory, not the project's environment. Without xplique the script says so and exits 0.
"""

from __future__ import annotations

import importlib.util
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SEED = 0
IMAGE_SIZE = 16
CLASSES = 3
N_TRAIN = 192
N_EVAL = 64


def make_images(rng, n):
    """Grey noise with a coloured square at a random place; the square's colour is the class."""
    import numpy as np

    labels = rng.integers(0, CLASSES, size=n)
    images = rng.uniform(0.0, 0.4, size=(n, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    for image, label in zip(images, labels):
        top, left = rng.integers(0, IMAGE_SIZE - 5, size=2)
        image[top : top + 5, left : left + 5, label] += 0.6
    return np.clip(images, 0.0, 1.0), labels


def build_model():
    import keras

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_last")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def span_zero_one(maps):
    """Rescale each map so its minimum is exactly 0 and its maximum exactly 1.

    Such a map is a fixed point of xplique's |m|, min-max step (up to its 1e-8 epsilon).
    """
    import numpy as np

    maps = np.asarray(maps, dtype="float64")
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    if np.any(high - low <= 0):
        raise ValueError("a constant map cannot be rescaled to span [0, 1]; use another seed")
    return ((maps - low) / (high - low)).astype("float32")


def xplique_terms(metric_class, model, images, one_hot, maps):
    """xplique's per-sample terms (its ``detailed_evaluate``) and its average, in percent."""
    import numpy as np
    import tensorflow as tf

    metric = metric_class(model, images, one_hot, batch_size=N_EVAL)
    terms = metric.detailed_evaluate(tf.constant(images), tf.constant(one_hot), tf.constant(maps))
    return 100.0 * np.asarray(terms, dtype="float64"), 100.0 * metric.evaluate(maps)


def main() -> int:
    if os.environ.get("CAMAVG_XPLIQUE_DIR"):
        sys.path.append(os.environ["CAMAVG_XPLIQUE_DIR"])  # after site-packages: never its TF or SciPy
    if importlib.util.find_spec("xplique") is None:
        print("xplique is not installed; skipped")
        return 0

    import keras
    import numpy as np
    import xplique
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore
    from xplique.metrics import AverageDropMetric, AverageGainMetric, AverageIncreaseMetric

    from camavg_core import drop_terms, gain_terms, increase_terms
    from camavg_tf import AveragesCam

    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(SEED)
    train_images, train_labels = make_images(rng, N_TRAIN)
    images, labels = make_images(rng, N_EVAL)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(train_images, train_labels, epochs=8, batch_size=32, verbose=0)
    accuracy = float(np.mean(np.argmax(model.predict(images, verbose=0), axis=1) == labels))

    score = CategoricalScore(list(labels))
    one_hot = np.eye(CLASSES, dtype="float32")[labels]
    def cams_of(method):
        maker = method(model, model_modifier=ReplaceToLinear(), clone=True)
        return span_zero_one(maker(score, images, penultimate_layer="conv_last"))

    maps = {
        "gradcam": cams_of(Gradcam),
        "gradcam++": cams_of(GradcamPlusPlus),
        "random": span_zero_one(rng.uniform(0, 1, (N_EVAL, IMAGE_SIZE, IMAGE_SIZE))),
        "ones": np.ones((N_EVAL, IMAGE_SIZE, IMAGE_SIZE), dtype="float32"),
        # What xplique makes of any constant map, ones included: the whole image masked out.
        "zeros": np.zeros((N_EVAL, IMAGE_SIZE, IMAGE_SIZE), dtype="float32"),
    }

    print(f"xplique {xplique.__version__}, keras {keras.__version__}; {N_EVAL} images "
          f"{IMAGE_SIZE}x{IMAGE_SIZE}x3, {CLASSES} classes, test accuracy {accuracy:.2f}")
    print("percent; 'largest |term diff|' is the largest per-sample difference of the terms")
    print(f"{'maps':<10} {'metric':<17} {'xplique':>9} {'camavg':>9} {'|diff|':>9} "
          f"{'largest |term diff|':>20}")
    metrics = AveragesCam(model, images)
    peers = {
        "average_drop": (AverageDropMetric, drop_terms),
        "average_increase": (AverageIncreaseMetric, increase_terms),
        "average_gain": (AverageGainMetric, gain_terms),
    }
    largest = {}
    for name, cams in maps.items():
        result = metrics.evaluate(cams, score)
        for metric, (peer_class, camavg_terms) in peers.items():
            peer_terms, peer_average = xplique_terms(peer_class, model, images, one_hot, cams)
            ours = 100.0 * np.asarray(camavg_terms(result.y_c, result.o_c), dtype="float64")
            ours_average = getattr(result, metric)
            term_gap = float(np.max(np.abs(peer_terms - ours)))
            gap = abs(peer_average - ours_average)
            print(f"{name:<10} {metric:<17} {peer_average:9.4f} {ours_average:9.4f} {gap:9.2e} "
                  f"{term_gap:20.2e}")
            if name not in ("ones", "zeros"):
                largest[metric] = max(largest.get(metric, 0.0), gap)
    print("largest |diff| of the averages over the [0, 1]-spanning maps: "
          + ", ".join(f"{metric} {gap:.2e}" for metric, gap in largest.items()))
    curves_side_by_side(metrics, model, images, labels, one_hot, {k: maps[k] for k in ("gradcam", "gradcam++", "random")})
    return 0


def curves_side_by_side(metrics, model, images, labels, one_hot, maps):
    """xplique's Deletion and Insertion (steps 10, baseline 0) beside camavg's mean AUC. Equal
    CAM values are ranked in reversed index order by xplique, in row-major order by camavg: a
    map with ties (Grad-CAM's zeros) may differ by that alone, a map without ties should not."""
    import numpy as np
    from tf_keras_vis.utils.scores import CategoricalScore
    from xplique.metrics import Deletion as XpliqueDeletion
    from xplique.metrics import Insertion as XpliqueInsertion

    from camavg_core.perturbations import Deletion, Insertion, auc_terms
    from camavg_core.scoring import as_score_list

    engine = metrics.engine
    functions = as_score_list(CategoricalScore(list(labels)), 1)
    y_c = engine.score(functions, engine.plain_outputs().outputs, "score_function")
    print("\nDeletion and Insertion AUC (fractions in [0, 1]; steps 10, baseline 0)")
    print(f"{'maps':<10} {'tied pixels':>11} {'metric':<10} {'xplique':>9} {'camavg':>9} {'|diff|':>9}")
    for name, cams in maps.items():
        tied = sum(cam.size - np.unique(cam).size for cam in cams)
        for perturbation, peer in ((Deletion(), XpliqueDeletion), (Insertion(), XpliqueInsertion)):
            steps = engine.step_scores(functions, engine.perturbed_outputs(engine.own_cams(cams, False), perturbation))
            ours = float(auc_terms(perturbation.curve(y_c, steps)).mean())
            theirs = float(peer(model, images, one_hot, batch_size=N_EVAL, steps=10).evaluate(cams))
            print(f"{name:<10} {tied:>11} {perturbation.name:<10} {theirs:9.5f} {ours:9.5f} {abs(theirs - ours):9.2e}")


if __name__ == "__main__":
    sys.exit(main())
