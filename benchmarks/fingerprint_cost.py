"""The cost of watching the model: ``AveragesCam``'s model version (the structure walk and the
weight sums on the device) as a ratio to one ``evaluate`` of the same AveragesCam.

Every call of ``evaluate`` (and of ``average_drop`` ...) takes the version once, so the ratio
is what the watch adds to a call; a stream takes it twice per batch.

    python -m benchmarks.fingerprint_cost [--n 64] [--size 96] [--rounds 7]

MobileNetV2 with ``weights=None`` (nothing downloaded), interleaved rounds, medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    import keras
    from tf_keras_vis.utils.scores import CategoricalScore

    from camavg_tf import AveragesCam

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(args.size, args.size, 3))
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (args.n, args.size, args.size, 3)).astype(np.float32)
    score = CategoricalScore([int(c) for c in rng.integers(0, 1000, args.n)])
    metrics = AveragesCam(model, images, batch_size=args.batch)
    watch = metrics.engine.adapter.watch
    metrics.evaluate(rng.uniform(0, 1, (args.n, args.size, args.size)).astype(np.float32), score)  # trace

    evaluate, version, structure = [], [], []
    for _ in range(args.rounds):
        cams = rng.uniform(0, 1, (args.n, args.size, args.size)).astype(np.float32)  # no cache hit
        start = time.perf_counter()
        metrics.evaluate(cams, score)
        evaluate.append(time.perf_counter() - start)
        for _ in range(5):
            start = time.perf_counter()
            watch.structure()
            structure.append(time.perf_counter() - start)
            start = time.perf_counter()
            watch.version()
            version.append(time.perf_counter() - start)

    n_variables = len(watch._sums[1].variables)
    n_weights = sum(int(np.prod(v.shape)) for v in watch._sums[1].variables)
    median_evaluate, median_version = statistics.median(evaluate), statistics.median(version)
    print(f"MobileNetV2 weights=None, {args.size} px, N = {args.n}, batch {args.batch}: "
          f"{n_variables} float variables, {n_weights:,} weights")
    print(f"evaluate (one masked pass + the version): median {median_evaluate * 1e3:.1f} ms")
    print(f"model version (structure + weight sums):   median {median_version * 1e3:.2f} ms "
          f"(structure walk alone {statistics.median(structure) * 1e3:.2f} ms)")
    print(f"ratio version / evaluate: {median_version / median_evaluate:.4f}")


if __name__ == "__main__":
    main()
