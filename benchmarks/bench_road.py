"""ROAD's cost: the imputation solved on the device (camavg_core/imputation.py, batched, in a
``tf.function``) against a host ``scipy.sparse.linalg.spsolve`` per image of the same masks,
and perturbation + forward passes as a ratio to the 18 bare forward passes it needs
(MobileNetV2, weights=None, 96 px, the default 9 fractions and both orders).

Until the engine passes per-sample extras (REFACTOR.md), this times Road.prepare/apply and the
model in one ``tf.function`` per step itself, the way the TF adapter's pass runs them.

    python -m benchmarks.bench_road --n 64 --batch 64
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def smooth_cams(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, size, size, 1) float32 CAMs: one Gaussian blob each, as a 3x3 CAM upsampled is."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cams = [np.exp(-((yy - rng.uniform(0, size)) ** 2 + (xx - rng.uniform(0, size)) ** 2) / (rng.uniform(0.05, 0.3) * size * size))
            for _ in range(n)]
    return np.asarray(cams, np.float32)[..., None]


def spsolve_impute(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The original's host imputation of one (H, W, C) image, its system set up vectorised
    (as road/imputations.py's setup_sparse_system does) and solved by spsolve."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    h, w, c = image.shape
    flat_removed = removed.reshape(-1)
    unknown = np.flatnonzero(flat_removed)
    index = np.full(h * w, -1)
    index[unknown] = np.arange(unknown.size)
    rows, cols, vals = [], [], []
    b = np.zeros((unknown.size, c))
    total = np.zeros(unknown.size)
    ui, uj = np.divmod(unknown, w)
    flat = image.reshape(-1, c)
    for (di, dj), weight in [((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
                             ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6)]:
        ni, nj = ui + di, uj + dj
        inside = (ni >= 0) & (ni < h) & (nj >= 0) & (nj < w)
        total += weight * inside
        neighbour = np.where(inside, ni * w + nj, 0)
        also_unknown = inside & flat_removed[neighbour]
        rows.append(np.flatnonzero(also_unknown))
        cols.append(index[neighbour[also_unknown]])
        vals.append(np.full(also_unknown.sum(), -weight))
        known = inside & ~flat_removed[neighbour]
        b[known] += weight * flat[neighbour[known]]
    rows.append(np.arange(unknown.size))
    cols.append(np.arange(unknown.size))
    vals.append(total)
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(unknown.size,) * 2).tocsc()
    out = flat.copy()
    out[unknown] = np.asarray(spsolve(a, b)).reshape(unknown.size, c)
    return out.reshape(h, w, c)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--spsolve-images", type=int, default=None, help="images for the host solver (default: all)")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from camavg_core.backends import resolve_backend
    from camavg_core.imputation import Road, impute

    backend = resolve_backend("tensorflow")
    model = keras.applications.MobileNetV2(weights=None, input_shape=(args.size, args.size, 3))
    rng = np.random.default_rng(0)
    x = rng.random((args.n, args.size, args.size, 3)).astype(np.float32)
    cams = smooth_cams(args.n, args.size)
    road = Road()
    rows = tf.constant(road.parameters(args.size * args.size))
    extra = road.per_sample(np.arange(args.n), x.shape[1:])
    spec = [tf.TensorSpec((None, args.size, args.size, c), tf.float32) for c in (3, 1, 3)]

    @tf.function(input_signature=[*spec, tf.TensorSpec((7,), tf.float32)])
    def imputed(xb, cb, eb, row):
        return road.apply(backend, xb, road.prepare(backend, xb, cb, eb), row)

    @tf.function(input_signature=[*spec, tf.TensorSpec((7,), tf.float32)])
    def step(xb, cb, eb, row):
        return model(road.apply(backend, xb, road.prepare(backend, xb, cb, eb), row), training=False)

    @tf.function(input_signature=[*spec, tf.TensorSpec((7,), tf.float32)])
    def iterations(xb, cb, eb, row):
        removed = road.removed(backend, road.prepare(backend, xb, cb, eb), row)
        return impute(backend, xb, removed, tol=road.tol, max_iter=road.max_iter, return_iterations=True)[1]

    @tf.function(input_signature=[spec[0]])
    def forward(xb):
        return model(xb, training=False)

    batches = [(x[s:s + args.batch], cams[s:s + args.batch], extra[s:s + args.batch]) for s in range(0, args.n, args.batch)]

    def timed(fn):
        fn()  # trace / warm up
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    k = int(rows.shape[0])
    t_forward = timed(lambda: [forward(b[0]).numpy() for b in batches for _ in range(k)])
    t_impute = timed(lambda: [imputed(*b, rows[j]).numpy() for b in batches for j in range(k)])
    t_whole = timed(lambda: [step(*b, rows[j]).numpy() for b in batches for j in range(k)])
    its = [int(iterations(*batches[0], rows[j])) for j in range(k)]

    # the host solver: the same masks (rank selection), one spsolve per image, fraction and order
    m = args.spsolve_images or args.n
    prepared = road.prepare(resolve_backend("numpy"), x[:m], cams[:m])
    start = time.perf_counter()
    for j in range(k):
        removed = road.removed(resolve_backend("numpy"), prepared, rows[j].numpy())[..., 0] > 0.5
        for i in range(m):
            spsolve_impute(x[i], removed[i])
    t_spsolve = (time.perf_counter() - start) * args.n / m

    print(f"ROAD, MobileNetV2 (weights=None) at {args.size} px, N = {args.n}, batch {args.batch}, "
          f"{k} steps (9 fractions x MoRF/LeRF), TF {tf.__version__}, devices "
          f"{[d.device_type for d in tf.config.list_logical_devices()]}")
    print(f"  CG iterations per step (first batch, MoRF 0.1..0.9 then LeRF): {its}")
    print(f"  18 bare forward passes:              {t_forward:8.2f} s")
    print(f"  imputation on the device (batched):  {t_impute:8.2f} s")
    print(f"  imputation + forward, per step:      {t_whole:8.2f} s  = {t_whole / t_forward:.2f}x the bare passes")
    print(f"  host spsolve per image ({m} timed):   {t_spsolve:8.2f} s  = {t_spsolve / t_impute:.2f}x the device solver's time")


if __name__ == "__main__":
    main()
