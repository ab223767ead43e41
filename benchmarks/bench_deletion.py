"""Deletion (steps = 10) through camavg's engine against a bare forward loop over the same
10 x N perturbed inputs prepared beforehand, and xplique 2.0.2's Deletion in the same run.

    python -m benchmarks.bench_deletion                 # MobileNetV2 (weights=None), 96 px, N = 256
    CAMAVG_XPLIQUE_DIR=/tmp/xplique_dir python -m benchmarks.bench_deletion   # with xplique
    python -m benchmarks.bench_deletion --quick         # a smoke run

Rows (TensorFlow, batch 32):

- bare: a ``tf.function`` forward loop over the 10 x N inputs of deletion's steps k_1..k_10
  (NumPy made them beforehand, so the bare loop pays for no ranking, no masking, no scores),
  one call per batch;
- bare, one graph loop: the same passes in one ``tf.function``'s while loop, as the engine
  runs its own (TF's executor then runs two passes at once where one leaves a core idle): the
  harder baseline, which the ratios are of;
- camavg: ``engine.perturbed_outputs(cams, Deletion())``, the scores of the 10 steps, the curves
  with Y_c as their first point (from the plain pass every ``AveragesCam`` runs once, shared with
  the averages) and the per-sample AUCs;
- camavg, all 11 points: the same with k_0 = 0 run in the pass too (what reusing Y_c saves);
- xplique 2.0.2's ``Deletion(...).evaluate``: 11 x N forward passes from NumPy copies, run once.

The camavg and bare rows are timed alternately (``--repeats`` times after a run that traces);
ratios are of the best times to the graph loop's (goal 1.05x, bound 1.10x; until 2026-12-06
they were to the loop of calls, 17-27% slower here). The mean AUCs are printed side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks import alternating_cam_sets, forward_graph_loop, interleaved  # noqa: E402
from camavg_core.perturbations import Deletion, auc_terms, pixel_counts  # noqa: E402
from camavg_core.scoring import CategoricalScore, as_score_list  # noqa: E402


class DeletionAllPoints(Deletion):
    """Deletion running its plain first point in the pass too (no reuse of Y_c)."""

    name = "deletion_all_points"

    def _reused_point(self):
        return None


def deleted_inputs(images: np.ndarray, cams: np.ndarray, steps: int) -> np.ndarray:
    """(steps * N, H, W, C): deletion's steps k_1..k_K with the baseline 0, made with NumPy."""
    flat = cams.reshape(len(cams), -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(flat.shape[1]), flat.shape), axis=1)
    ranks = ranks.reshape(cams.shape)[..., None]
    counts = pixel_counts(flat.shape[1], steps)[1:]
    return np.concatenate([np.where(ranks >= k, images, 0.0) for k in counts]).astype(np.float32)


def camavg_deletion(engine, cam_set, functions, perturbation):
    y_c = engine.score(functions, engine.plain_outputs().outputs, "plain")
    steps = engine.step_scores(functions, engine.perturbed_outputs(cam_set, perturbation))
    return auc_terms(perturbation.curve(y_c, steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="N = 16, 32 px, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.n, args.size, args.repeats = 16, 32, 1

    import keras
    import tensorflow as tf

    from camavg_tf import AveragesCam

    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (args.n, args.size, args.size, 3)).astype(np.float32)
    cams = rng.random((args.n, args.size, args.size)).astype(np.float32)  # no ties
    other_cams = rng.random((args.n, args.size, args.size)).astype(np.float32)
    labels = rng.integers(0, 10, args.n)
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=images.shape[1:], classes=10)
    metrics = AveragesCam(model, images, batch_size=args.batch)
    engine = metrics.engine
    def alternating(perturbation_type):
        sets = alternating_cam_sets(engine, cams, other_cams)
        return lambda: camavg_deletion(engine, next(sets), functions, perturbation_type())
    functions = as_score_list(CategoricalScore(labels), 1)
    prepared = tf.constant(deleted_inputs(images, cams, 10))
    forward = tf.function(lambda x: model(x, training=False))

    def bare():
        return [forward(prepared[start : start + args.batch]).numpy() for start in range(0, len(prepared), args.batch)]

    bare_loop = forward_graph_loop(model, args.batch)

    rows = {
        "bare, one graph loop over 10 x N": lambda: bare_loop(prepared),
        "bare: tf.function forward loop over 10 x N": bare,
        "camavg Deletion(steps=10), Y_c reused": alternating(Deletion),
        "camavg, all 11 points in the pass": alternating(DeletionAllPoints),
    }
    for run in rows.values():  # traces and warms up
        run()
    times = {name: [wall for wall, _ in pairs] for name, pairs in interleaved(rows, args.repeats).items()}

    ours = float(np.mean(camavg_deletion(engine, engine.own_cams(cams, False), functions, Deletion())))
    print(f"TensorFlow MobileNetV2 (weights=None), N = {args.n}, {args.size} px, batch {args.batch}, "
          f"{args.repeats} alternating repeats, {os.cpu_count()} CPUs")
    bare_best, bare_median = min(times[next(iter(rows))]), np.median(times[next(iter(rows))])
    for name, values in times.items():
        print(f"  {name:<42} best {min(values):7.3f} s  median {np.median(values):7.3f} s  "
              f"ratio best {min(values) / bare_best:.3f}x  median {np.median(values) / bare_median:.3f}x")
    print(f"  camavg deletion AUC (mean of per-sample AUCs): {ours:.6f}")

    directory = os.environ.get("CAMAVG_XPLIQUE_DIR")
    if directory:
        sys.path.append(directory)  # after site-packages: never the project's TF or SciPy
    try:
        from xplique.metrics import Deletion as XpliqueDeletion
    except ImportError:
        print("  xplique: not importable (set CAMAVG_XPLIQUE_DIR); skipped")
        return
    one_hot = np.eye(10, dtype=np.float32)[labels]
    start = time.perf_counter()
    theirs = float(XpliqueDeletion(model, images, one_hot, batch_size=args.batch, steps=10).evaluate(cams))
    elapsed = time.perf_counter() - start
    print(f"  {'xplique 2.0.2 Deletion(steps=10), once':<42} {elapsed:7.3f} s        "
          f"ratio {elapsed / bare_best:.3f}x   AUC {theirs:.6f} (|diff| {abs(theirs - ours):.1e})")


if __name__ == "__main__":
    main()
