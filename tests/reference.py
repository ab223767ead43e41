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


# --------------------------------------------------------------------------- MuFidelity
def reference_average_ranks(values) -> np.ndarray:
    """1-based ranks of a 1-D array, ties given the mean of the ranks they share, by counting:
    rank_j = 1 + #{v < v_j} + (#{v == v_j} - 1) / 2."""
    v = np.asarray(values, dtype=np.float64)
    less = (v[None, :] < v[:, None]).sum(axis=1)
    equal = (v[None, :] == v[:, None]).sum(axis=1)
    return 1.0 + less + (equal - 1) / 2.0


def reference_correlation(a, b, correlation: str) -> float:
    """Pearson's r (of the ranks for Spearman's rho) of two 1-D arrays; NaN when either is constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    if correlation == "spearman":
        a, b = reference_average_ranks(a), reference_average_ranks(b)
    return float(np.corrcoef(a, b)[0, 1])


def reference_mufidelity(images, cams, score, *, grid_size=9, subset_fraction=0.2, n_samples=200,
                         baseline=0.0, seed=0, correlation="spearman", first_index=0) -> dict:
    """MuFidelity from its definition (Bhatt et al. 2020, def. 3), one sample at a time, in float64.

    images: (N, H, W, C) channels last; cams: (N, H, W) already at the input's size in [0, 1];
    score: a function of a (M, H, W, C) batch -> (M,) scores. Sample i's subsets come from
    ``np.random.default_rng([seed, first_index + i])``: a (K, g, g) array of uniforms, a cell
    removed where its uniform is below ``subset_fraction``; pixel row r lies in cell row
    floor((r + 0.5) * g / H) (nearest neighbour, half-pixel centres), columns alike. Returns the
    (N,) terms (NaN when undefined), the (K, N) perturbed scores and the (K, N) CAM sums."""
    images = np.asarray(images, dtype=np.float64)
    n, height, width = images.shape[:3]
    row_cells = np.floor((np.arange(height) + 0.5) * grid_size / height).astype(int)
    col_cells = np.floor((np.arange(width) + 0.5) * grid_size / width).astype(int)
    terms, curve, sums = [], [], []
    for i in range(n):
        cells = np.random.default_rng([seed, first_index + i]).random((n_samples, grid_size, grid_size)) < subset_fraction
        removed = cells[:, row_cells][:, :, col_cells]  # (K, H, W)
        perturbed = np.where(removed[..., None], baseline, images[i][None])
        scores = np.asarray(score(perturbed), dtype=np.float64)
        drops = float(score(images[i][None])[0]) - scores
        cam_sums = (np.asarray(cams[i], dtype=np.float64)[None] * removed).sum(axis=(1, 2))
        terms.append(reference_correlation(cam_sums, drops, correlation))
        curve.append(scores)
        sums.append(cam_sums)
    return {"terms": np.array(terms), "curve": np.stack(curve, axis=1), "cam_sums": np.stack(sums, axis=1)}


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
