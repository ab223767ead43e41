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


# ROAD's noisy linear imputation without the noise, as tleemann/road_evaluation's
# road/imputations.py sets it up: each removed pixel is the weighted mean of its in-image
# neighbours (1/6 edges, 1/12 diagonals, renormalised), one sparse system per image solved by
# scipy.sparse.linalg.spsolve with one right-hand side per channel.
ROAD_NEIGHBOURS = [((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
                   ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6)]


def reference_road_impute(image, removed) -> np.ndarray:
    """One image (H, W, C) with the pixels where ``removed`` (H, W) is true imputed, float64."""
    from scipy.sparse import lil_matrix
    from scipy.sparse.linalg import spsolve

    image = np.asarray(image, dtype=np.float64)
    removed = np.asarray(removed, dtype=bool)
    height, width, channels = image.shape
    unknown = np.argwhere(removed)
    index = -np.ones((height, width), dtype=np.int64)
    index[removed] = np.arange(len(unknown))
    a = lil_matrix((len(unknown), len(unknown)))
    b = np.zeros((len(unknown), channels))
    for row, (i, j) in enumerate(unknown):
        total = 0.0
        for (di, dj), weight in ROAD_NEIGHBOURS:
            ni, nj = i + di, j + dj
            if not (0 <= ni < height and 0 <= nj < width):
                continue
            total += weight
            if removed[ni, nj]:
                a[row, index[ni, nj]] = -weight
            else:
                b[row] += weight * image[ni, nj]
        a[row, row] = total
    out = image.copy()
    if len(unknown):
        solution = spsolve(a.tocsc(), b)
        out[removed] = np.asarray(solution).reshape(len(unknown), channels)
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
