"""ROAD's imputation on each backend, images given channels last and channels first: one paired
solve (MoRF at 0.5 beside LeRF at 0.5, the benchmark's smooth CAMs) of ``--n`` images of 96 px,
each backend's default preconditioner, compiled where the backend compiles.

Every solver works channels first: TensorFlow's own XLA solver (``Backend.impute_fast``;
channels-first inputs went to the generic solver before, 4.6x slower) reads channels-last
inputs through transposes inside its loops and writes its outputs in their layout, and for
the core's generic one (JAX, PyTorch, NumPy) ``impute`` transposes them in and out. Each ratio
channels last / channels first is then about 1 (before, the generic solver broadcast the
one-channel masks over the innermost 3 values of channels-last inputs: 1.2x-1.5x). Each figure
is the best of ``--repeats`` calls, the layouts of one backend taking turns.

    python -m benchmarks.bench_road_layouts [--n 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib

import numpy as np

from benchmarks import block, compiled, interleaved, to_backend
from benchmarks.bench_road import smooth_cams


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from camavg_core.backends import resolve_backend
    from camavg_core.imputation import Road, impute_pair

    numpy_backend = resolve_backend("numpy")
    x = np.random.default_rng(0).random((args.n, args.size, args.size, 3)).astype(np.float32)
    road = Road()
    rows = road.parameters(args.size * args.size)
    prepared = road.prepare(numpy_backend, x, smooth_cams(args.n, args.size))
    pair = next((a, b) for a, b in road.groups(rows) if rows[a][1] == rows[b][1])  # 0.5 with 0.5
    first, second = (road.removed(numpy_backend, prepared, rows[k]).astype(np.float32) for k in pair)
    layouts = {"channels last": (x, first, second),
               "channels first": tuple(np.ascontiguousarray(np.moveaxis(v, -1, 1)) for v in (x, first, second))}

    print(f"ROAD's paired solve, {args.n} images of {args.size} px, best of {args.repeats} calls (wall s)")
    print(f"  {'backend':12s} {'channels last':>14s} {'channels first':>15s} {'last / first':>13s}")
    for name in ("tensorflow", "jax", "torch", "numpy"):
        try:
            importlib.import_module(name)
        except ImportError:
            print(f"  {name:12s} not installed")
            continue
        backend = resolve_backend(name)
        solve = compiled(name, lambda a, b, c: impute_pair(backend, a, b, c, tol=road.tol, max_iter=road.max_iter))
        figures = {}
        for layout, arrays in layouts.items():
            converted = tuple(to_backend(name, v) for v in arrays)
            figures[layout] = lambda solve=solve, converted=converted: [block(out) for out in solve(*converted)]
            figures[layout]()  # traces
        times = interleaved(figures, args.repeats)
        last, first_ = (min(w for w, _ in times[layout]) for layout in layouts)
        print(f"  {name:12s} {last:14.3f} {first_:15.3f} {last / first_:12.2f}x")


if __name__ == "__main__":
    main()
