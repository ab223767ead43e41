"""ROAD's cost, timed the way ``AveragesCam.road`` runs it: the engine's one compiled pass
(camavg_tf/passes.py: a ``tf.function`` looping over the batches, and per batch over the 18
steps in 9 pairs, MoRF at f beside LeRF at 1 - f, each pair ``Road.apply_group``, i.e. one
batched device solve for both, then the model on each). Reported:

- the whole metric, ``AveragesCam(model, x).road(cams, score)``, as a ratio to the 18 bare
  forward passes it needs (MobileNetV2, weights=None, the default 9 fractions, MoRF and LeRF),
  timed two ways: one ``tf.function`` call per batch and step (as ``bench_deletion`` times
  them), and all of them in one graph loop, as the engine runs its own passes (TF's executor
  then runs two passes at once where one leaves a core idle: 11-18% faster here, so the harder
  baseline, which the goal is judged against);
- the solver's share: the same ``road`` call on a model that costs next to nothing (global
  average pooling and a dense layer), so its time is the imputation's;
- a host ``scipy.sparse.linalg.spsolve`` per image of the same masks (the original's cost).

Each timing is the best of ``--repeats`` calls after one that traces, wall and CPU (process) time
taken apart (on this 2-core VM one call's wall time moved by 10-20% between runs). The three
figures take turns, one call each a round, so a slow spell falls on all of them; the two
``road`` timings alternate between two sets of CAMs, so that no call follows one on the same
CAMs (the engine keeps a call's outputs). On a shared machine compare the ratios of one run.

The batch is the library's default, 32, as in ``bench_deletion`` (until 2026-12-06 this
benchmark used 64; ``--batch 64`` gives those rows).

    python -m benchmarks.bench_road --n 64 --batch 16
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import forward_graph_loop, interleaved


def smooth_cams(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, size, size, 1) float32 CAMs: one Gaussian blob each, as a 3x3 CAM upsampled is."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cams = [np.exp(-((yy - rng.uniform(0, size)) ** 2 + (xx - rng.uniform(0, size)) ** 2) / (rng.uniform(0.05, 0.3) * size * size))
            for _ in range(n)]
    return np.asarray(cams, np.float32)[..., None]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--spsolve-images", type=int, default=32, help="images for the host solver (scaled to n)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per figure (the best is kept)")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from camavg_core.backends import resolve_backend
    from camavg_core.imputation import Road, impute_pair
    from camavg_core.scoring import CategoricalScore
    from camavg_tf import AveragesCam

    size = args.size
    model = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3))
    inputs = keras.Input((size, size, 3))
    cheap = keras.Model(inputs, keras.layers.Dense(1000, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs)))
    rng = np.random.default_rng(0)
    x = rng.random((args.n, size, size, 3)).astype(np.float32)
    cams = smooth_cams(args.n, size)
    score = CategoricalScore([0] * args.n)
    road = Road()
    k = road.steps

    forward = tf.function(lambda xb: model(xb, training=False), input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)])
    batches = [x[s:s + args.batch] for s in range(0, args.n, args.batch)]
    whole_x = tf.constant(x)
    forward_loop = forward_graph_loop(model, args.batch, repeats=k)
    metrics = AveragesCam(model, x, batch_size=args.batch)
    solver_only = AveragesCam(cheap, x, batch_size=args.batch)
    # two sets of CAMs, taken in turn: the engine keeps a call's outputs
    cam_sets = [cams, smooth_cams(args.n, size, seed=1)]

    def alternating(engine):
        sets = itertools.cycle(cam_sets)
        return lambda: engine.road(next(sets), score)

    figures = {"forward": lambda: [forward(b).numpy() for b in batches for _ in range(k)],
               "graph": lambda: forward_loop(whole_x),
               "whole": alternating(metrics), "solver": alternating(solver_only)}
    for run in figures.values():  # traces
        run()
    times = interleaved(figures, args.repeats)
    t_forward, t_graph, t_whole, t_solver = ((min(w for w, _ in times[name]), min(c for _, c in times[name]))
                                             for name in ("forward", "graph", "whole", "solver"))

    backend = resolve_backend("tensorflow")
    spec = [tf.TensorSpec((None, size, size, 3), tf.float32)] + [tf.TensorSpec((None, size, size, 1), tf.float32)] * 2
    iterations = tf.function(lambda xb, first, second: impute_pair(backend, xb, first, second, tol=road.tol,
                                                                   max_iter=road.max_iter, return_iterations=True)[2],
                             input_signature=spec)
    prepared = road.prepare(resolve_backend("numpy"), x, cams)
    rows = road.parameters(size * size)
    masks = [road.removed(resolve_backend("numpy"), prepared, row) for row in rows]
    groups = road.groups(rows)  # MoRF at f beside LeRF at 1 - f: one solve each
    its = [int(iterations(batches[0], masks[a][:args.batch], masks[b][:args.batch])) for a, b in groups]

    # the host solver: the same masks (rank selection), one spsolve per image, fraction and order;
    # the tests' reference builds the original's system (vectorised, as road/imputations.py does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from reference import reference_road_impute

    m = min(args.spsolve_images, args.n)
    wall, cpu = time.perf_counter(), time.process_time()
    for mask in masks:
        for i in range(m):
            reference_road_impute(x[i], mask[i, ..., 0] > 0.5)
    t_spsolve = ((time.perf_counter() - wall) * args.n / m, (time.process_time() - cpu) * args.n / m)

    print(f"ROAD, MobileNetV2 (weights=None) at {size} px, N = {args.n}, batch {args.batch}, {k} steps "
          f"(9 fractions x MoRF/LeRF), TF {tf.__version__}, devices {[d.device_type for d in tf.config.list_logical_devices()]}")
    print(f"  CG iterations per solve (first batch; MoRF at f and LeRF at 1 - f in one solve, f = 0.1..0.9): {its}")
    print(f"  best of {args.repeats} calls              wall s    CPU s")
    print(f"  {k} bare passes, a call each:       {t_forward[0]:8.2f} {t_forward[1]:8.2f}")
    print(f"  {k} bare passes, one graph loop:    {t_graph[0]:8.2f} {t_graph[1]:8.2f}")
    print(f"  AveragesCam.road, MobileNetV2:      {t_whole[0]:8.2f} {t_whole[1]:8.2f}   "
          f"= {t_whole[0] / t_graph[0]:.2f}x (wall), {t_whole[1] / t_graph[1]:.2f}x (CPU) the bare passes in one loop; "
          f"{t_whole[0] / t_forward[0]:.2f}x, {t_whole[1] / t_forward[1]:.2f}x those called one by one")
    print(f"  AveragesCam.road, a trivial model:  {t_solver[0]:8.2f} {t_solver[1]:8.2f}   "
          f"(the solver: {t_solver[1] / t_whole[1]:.0%} of the whole, CPU)")
    print(f"  host spsolve per image ({m} timed):  {t_spsolve[0]:8.2f} {t_spsolve[1]:8.2f}   "
          f"= {t_spsolve[0] / t_solver[0]:.2f}x (wall), {t_spsolve[1] / t_solver[1]:.2f}x (CPU) the device solver's time")


if __name__ == "__main__":
    main()
