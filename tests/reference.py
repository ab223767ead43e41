"""The tests' one NumPy reference of the equations, written out independently of camavg's code,
with the one eps. Test files import it instead of each writing its own.

The equations are those of README.md ("What it measures"), for N samples with scores Y_i on the
images and O_i on the masked images, and eps = 1e-7::

    drop_i     = max(0, Y_i - O_i) / (Y_i + eps)        Average Drop     = 100 * mean(drop_i)
    increase_i = 1 if Y_i < O_i else 0                  Average Increase = 100 * mean(increase_i)
    gain_i     = max(0, O_i - Y_i) / (1 - Y_i + eps)    Average Gain     = 100 * mean(gain_i)
"""

from __future__ import annotations

import numpy as np

#: the README's eps (Keras' epsilon)
EPS = 1e-7


def reference_terms(y_c, o_c) -> dict[str, np.ndarray]:
    """Per-sample terms in float64: drop, increase, gain."""
    y = np.asarray(y_c, dtype=np.float64)
    o = np.asarray(o_c, dtype=np.float64)
    return {
        "average_drop": np.maximum(y - o, 0.0) / (y + EPS),
        "average_increase": (y < o).astype(np.float64),
        "average_gain": np.maximum(o - y, 0.0) / (1.0 - y + EPS),
    }


def reference_metrics(y_c, o_c) -> dict[str, float]:
    """The three averages in percent."""
    return {name: 100.0 * float(np.mean(terms)) for name, terms in reference_terms(y_c, o_c).items()}


# --------------------------------------------------------------------------- deletion, insertion
def reference_curves(score, images, cams, kind, *, steps=10, baseline=0.0, max_fraction=1.0):
    """(N, steps + 1) float64 deletion or insertion curves, written from RISE's definition one
    sample and one step at a time, the model called directly on each perturbed image.

    score(i, image) -> float: the target score of sample i on one (H, W, C) image.
    images: (N, H, W, C); cams: (N, H, W), already at the images' size.
    kind: "deletion" sets the k most salient pixels (all channels) to the baseline; "insertion"
    starts from the baseline and puts the k most salient pixels of the image back, with
    k = floor(i * floor(P * max_fraction) / steps), i = 0..steps, P = H * W; the most salient
    first, equal CAM values in row-major order. baseline: a number, "blur" (SciPy's
    gaussian_filter, sigma 5, radius 5, reflect border, over H and W) or a callable of the
    (N, H, W, C) images.
    """
    from scipy.ndimage import gaussian_filter

    images = np.asarray(images, dtype=np.float64)
    n, height, width, channels = images.shape
    pixels = height * width
    if baseline == "blur":
        base = gaussian_filter(images, sigma=(0, 5, 5, 0), radius=(0, 5, 5, 0), mode="reflect")
    elif callable(baseline):
        base = np.asarray(baseline(images), dtype=np.float64)
    else:
        base = np.full_like(images, float(np.float32(baseline)))
    reach = int(np.floor(pixels * max_fraction))
    curves = np.empty((n, steps + 1))
    for sample in range(n):
        salience = np.asarray(cams[sample], dtype=np.float64).reshape(pixels)
        order = sorted(range(pixels), key=lambda p: (-salience[p], p))  # stable: ties by index
        image = images[sample].reshape(pixels, channels)
        fill = base[sample].reshape(pixels, channels)
        for step in range(steps + 1):
            chosen = order[: step * reach // steps]
            if kind == "deletion":
                perturbed = image.copy()
                perturbed[chosen] = fill[chosen]
            else:
                perturbed = fill.copy()
                perturbed[chosen] = image[chosen]
            curves[sample, step] = score(sample, perturbed.reshape(height, width, channels))
    return curves


def reference_auc(curves):
    """(N,) trapezoid areas of (N, K + 1) curves over fractions 0, 1/K, ..., 1 (NumPy's rule)."""
    curves = np.asarray(curves, dtype=np.float64)
    return np.trapezoid(curves, dx=1.0 / (curves.shape[1] - 1), axis=1)
