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


def reference_misread_layout(x_shape, map_shape) -> bool:
    """Whether channels-last inputs of ``x_shape`` with maps of ``map_shape`` are refused before
    their values are read: maps that a resize would misread, at the size of axes 2 and 3 (NCHW
    read as NHWC) or the inputs' spatial shape transposed (docs/tensorflow.md)."""
    height, width, channels = x_shape[1:4]
    return tuple(map_shape) != (height, width) and tuple(map_shape) in ((width, channels), (width, height))


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


# ROAD's noisy linear imputation without the noise, as tleemann/road_evaluation's
# road/imputations.py sets it up: each removed pixel is the weighted mean of its in-image
# neighbours (1/6 edges, 1/12 diagonals, renormalised), one sparse system per image solved by
# scipy.sparse.linalg.spsolve with one right-hand side per channel.
ROAD_NEIGHBOURS = [((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
                   ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6)]


def reference_road_impute(image, removed) -> np.ndarray:
    """One image (H, W, C) with the pixels where ``removed`` (H, W) is true imputed, float64:
    the original's sparse system, row by row of the removed pixels (row-major), each row its
    pixel's in-image neighbours' weights, the removed ones in the matrix and the known ones in
    the right-hand side, solved by ``scipy.sparse.linalg.spsolve``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    image = np.asarray(image, dtype=np.float64)
    removed = np.asarray(removed, dtype=bool)
    height, width, channels = image.shape
    i, j = np.nonzero(removed)  # the unknowns, row-major
    index = -np.ones((height, width), dtype=np.int64)
    index[i, j] = np.arange(len(i))
    total = np.zeros(len(i))
    b = np.zeros((len(i), channels))
    rows, columns, values = [np.arange(len(i))], [np.arange(len(i))], [total]
    for (di, dj), weight in ROAD_NEIGHBOURS:
        ni, nj = i + di, j + dj
        inside = (ni >= 0) & (ni < height) & (nj >= 0) & (nj < width)
        total += weight * inside  # the weights of the neighbours in the image, renormalised by this sum
        unknown = np.zeros(len(i), dtype=bool)
        unknown[inside] = removed[ni[inside], nj[inside]]
        rows.append(np.flatnonzero(unknown))
        columns.append(index[ni[unknown], nj[unknown]])
        values.append(np.full(unknown.sum(), -weight))
        known = inside & ~unknown
        b[known] += weight * image[ni[known], nj[known]]
    out = image.copy()
    if len(i):
        a = coo_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
                       shape=(len(i), len(i))).tocsc()
        out[i, j] = np.asarray(spsolve(a, b)).reshape(len(i), channels)
    return out


def reference_road_removed(cam, fraction: float, lerf: bool, selection: str = "rank") -> np.ndarray:
    """(H, W) bool: the pixels ROAD removes at ``fraction``. ``rank``: the floor(f * P) first
    (MoRF) or last (LeRF) in the order of decreasing CAM, ties by row-major index;
    ``percentile``: pytorch-grad-cam 1.5's ``np.percentile`` rule at p = 100 (1 - f)."""
    cam = np.asarray(cam)
    if selection == "percentile":
        values = (1 - cam) if lerf else cam
        p = round(100 * (1 - fraction))
        return ~(values < np.percentile(values, p))
    flat = cam.reshape(-1)
    order = sorted(range(flat.size), key=lambda k: (-flat[k], k))
    count = int(np.floor(fraction * flat.size + 1e-9))
    chosen = order[flat.size - count:] if lerf else order[:count]
    out = np.zeros(flat.size, dtype=bool)
    out[chosen] = True
    return out.reshape(cam.shape)


def reference_road_curves(images, cams, score, fractions, noise: float = 0.0, seed: int = 0):
    """ROAD's (N, F) MoRF and LeRF curves, one sample and one step at a time: the removed pixels
    (rank selection) imputed by spsolve, plus sample i's noise field ``noise`` *
    ``default_rng([seed, i]).standard_normal`` at them; ``score(i, image (H, W, C)) -> float``."""
    morf, lerf = (np.empty((len(images), len(fractions))) for _ in range(2))
    for i, image in enumerate(images):
        field = noise * np.random.default_rng([seed, i]).standard_normal(np.shape(image)) if noise else 0.0
        for curve, is_lerf in ((morf, False), (lerf, True)):
            for k, fraction in enumerate(fractions):
                removed = reference_road_removed(cams[i], fraction, is_lerf)
                curve[i, k] = score(i, reference_road_impute(image, removed) + np.where(removed[..., None], field, 0.0))
    return morf, lerf


def reference_road_value(predict, images, cams, labels, fractions, noise: float = 0.0, seed: int = 0) -> float:
    """The mean ROAD, (mean LeRF - mean MoRF) / 2 over the samples, of :func:`reference_road_curves`'
    images scored in one call: ``predict`` maps a stack of images to (M, K) probabilities,
    sample i's score is column ``labels[i]``."""
    perturbed = []
    reference_road_curves(images, cams, lambda i, image: perturbed.append(image) or 0.0, fractions, noise, seed)
    outputs = np.asarray(predict(np.stack(perturbed).astype(np.float32)), np.float64)
    scores = outputs[np.arange(len(perturbed)), np.repeat(np.asarray(labels), 2 * len(fractions))]
    morf, lerf = scores.reshape(len(images), 2, len(fractions)).transpose(1, 0, 2)
    return float(np.mean((lerf.mean(axis=1) - morf.mean(axis=1)) / 2))

