"""camavg_jax.AveragesCam.evaluate against a bare jitted forward pass of the same model.

The floor of ``evaluate`` is one forward pass over the masked inputs; this script measures how
close it gets, as a ratio, in one run on one device (the machines are shared and noisy, so
absolute times mean little). The model is a ResNet-style CNN in plain ``jax`` (no Flax needed):
a 7x7 stride-2 stem, a 3x3 max pool, four stages of one residual block each, global average
pooling and a 1000-way dense layer, with seeded He-initialised weights.

Timed, best of ``--repeats`` rounds, the variants interleaved within each round:

- ``bare_forward``: the jitted model over the pre-masked inputs, batch by batch, on the device.
- ``bare_mask_forward``: masking and the model in one jitted function, batch by batch: what
  ``evaluate`` compiles, without its checks and scoring.
- ``evaluate_device_cams``: ``AveragesCam.evaluate`` with the CAMs as a ``jax.Array``.
- ``evaluate_host_cams``: ``AveragesCam.evaluate`` with the CAMs as a NumPy array (as
  tf-keras-vis returns them): includes copying them to the device.

Construction (the pass over the plain inputs and its compilation) is timed once, separately.
Two CAM sets alternate so that ``evaluate``'s one-entry cache never answers a timed call.

With ``--road``, also ROAD (the default 9 fractions, MoRF and LeRF, on smooth one-blob CAMs as
``benchmarks/bench_road.py`` makes them), each a ratio to ``bare_road_forward``, the 18 bare
jitted passes it needs per batch:

- ``road``: ``AveragesCam.road`` (two CAM sets alternating);
- ``road_solver``: the imputation alone, ``impute_pair`` jitted, for the same batches and the 9
  pairs of masks (MoRF at f beside LeRF at 1 - f), on the device: the solver's share.

Usage::

    python benchmarks/gpu_jax_check.py            # N=1024 at 224 px, batch 128 (for a GPU)
    python benchmarks/gpu_jax_check.py --small    # seconds on a CPU
    OUT=/some/dir python benchmarks/gpu_jax_check.py   # also writes $OUT/gpu_jax.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# the repository root, so the script runs from a checkout without installing camavg
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CPU-sized: N=32 at 32 px, batch 8, narrow layers")
    parser.add_argument("--n", type=int, default=None, help="number of images (default 1024; 32 with --small)")
    parser.add_argument("--size", type=int, default=None, help="image side in px (default 224; 32 with --small)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 128; 8 with --small)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; the best is kept")
    parser.add_argument("--road", action="store_true", help="also time AveragesCam.road and its solver (see above)")
    args = parser.parse_args(argv)
    defaults = (32, 32, 8) if args.small else (1024, 224, 128)
    args.n = args.n or defaults[0]
    args.size = args.size or defaults[1]
    args.batch = args.batch or defaults[2]
    args.widths = (8, 16, 32, 64) if args.small else (64, 128, 256, 512)
    return args


# --------------------------------------------------------------------------- the model
def init_resnet(rng: np.random.Generator, widths: tuple[int, ...], classes: int = 1000) -> dict:
    """He-initialised weights of the ResNet-style CNN (float32 NumPy arrays)."""

    def conv(k, c_in, c_out):
        return (rng.normal(size=(k, k, c_in, c_out)) * np.sqrt(2.0 / (k * k * c_in))).astype(np.float32)

    params = {"stem": conv(7, 3, widths[0]), "blocks": []}
    c_in = widths[0]
    for stage, width in enumerate(widths):
        block = {"conv1": conv(3, c_in, width), "conv2": conv(3, width, width), "stride": 1 if stage == 0 else 2}
        if block["stride"] != 1 or c_in != width:
            block["shortcut"] = conv(1, c_in, width)
        params["blocks"].append(block)
        c_in = width
    params["dense"] = (rng.normal(size=(c_in, classes)) / np.sqrt(c_in)).astype(np.float32)
    return params


def make_apply_fn(params: dict):
    import jax
    import jax.numpy as jnp

    numbers = ("NHWC", "HWIO", "NHWC")
    weights = jax.tree_util.tree_map(lambda w: jnp.asarray(w) if isinstance(w, np.ndarray) else w, params)

    def conv(x, kernel, stride):
        return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "SAME", dimension_numbers=numbers)

    def apply_fn(x):
        h = jax.nn.relu(conv(x, weights["stem"], 2))
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "SAME")
        for block in weights["blocks"]:
            stride = block["stride"]
            out = jax.nn.relu(conv(h, block["conv1"], stride))
            out = conv(out, block["conv2"], 1)
            skip = conv(h, block["shortcut"], stride) if "shortcut" in block else h
            h = jax.nn.relu(out + skip)
        return jnp.mean(h, axis=(1, 2)) @ weights["dense"]  # logits

    return apply_fn


# --------------------------------------------------------------------------- timing
def best_of(functions: dict, repeats: int) -> dict:
    """Best wall time of each function, the functions interleaved within each round."""
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def road_figures(args: argparse.Namespace, metrics, forward, image_batches: list, score) -> tuple[dict, list]:
    """The ``--road`` variants (see the module's docstring) and the CG iterations of each of
    the 9 paired solves of the first batch."""
    import jax

    from benchmarks.bench_road import smooth_cams
    from camavg_core.backends import resolve_backend
    from camavg_core.imputation import Road, impute_pair

    road = Road()
    backend, host = resolve_backend("jax"), resolve_backend("numpy")
    cam_sets = [smooth_cams(args.n, args.size, seed=seed)[..., 0] for seed in (0, 1)]
    prepared = road.prepare(host, None, cam_sets[0][..., None])  # the ranks: ROAD's prepare reads the CAMs only
    rows = road.parameters(args.size * args.size)
    masks = [jax.device_put(road.removed(host, prepared, row)) for row in rows]
    pairs = [(masks[a], masks[b]) for a, b in road.groups(rows)]
    solve = jax.jit(lambda x, first, second: impute_pair(backend, x, first, second, tol=road.tol, max_iter=road.max_iter,
                                                         return_iterations=True))
    starts = range(0, args.n, image_batches[0].shape[0])
    calls = [0]

    def bare_road_forward():
        jax.block_until_ready([forward(x) for x in image_batches for _ in range(road.steps)])

    def road_metric():
        calls[0] += 1  # alternate CAM sets: the engine keeps a call's outputs
        jax.block_until_ready(metrics.road(cam_sets[calls[0] % 2], score))

    def road_solver():
        jax.block_until_ready([solve(x, first[s:s + x.shape[0]], second[s:s + x.shape[0]])
                               for s, x in zip(starts, image_batches) for first, second in pairs])

    first_batch = image_batches[0].shape[0]
    iterations = [int(solve(image_batches[0], first[:first_batch], second[:first_batch])[2]) for first, second in pairs]
    return {"bare_road_forward": bare_road_forward, "road": road_metric, "road_solver": road_solver}, iterations


def main(argv=None) -> dict:
    args = parse_args(argv)
    import jax
    import jax.numpy as jnp

    from camavg_core.masking import mask_inputs
    from camavg_jax import AveragesCam

    device = jax.devices()[0]
    rng = np.random.default_rng(0)
    apply_fn = make_apply_fn(init_resnet(rng, args.widths))
    images_host = rng.random((args.n, args.size, args.size, 3), dtype=np.float32)
    labels = rng.integers(0, 1000, args.n)
    cam_sets_host = [rng.random((args.n, args.size, args.size), dtype=np.float32) for _ in range(2)]
    images = jax.device_put(images_host)
    cam_sets = [jax.device_put(c) for c in cam_sets_host]
    label_array = jnp.asarray(labels)

    def score(outputs):
        return outputs[jnp.arange(outputs.shape[0]), label_array]

    start = time.perf_counter()
    metrics = AveragesCam(apply_fn, images, batch_size=args.batch, activation="softmax")
    jax.block_until_ready(metrics.engine.outputs)
    construction_s = time.perf_counter() - start
    devices = metrics.adapter.placement.n_devices  # a batch is rounded up for several devices
    batch = -(-min(args.batch, args.n) // devices) * devices

    # the baselines: the same batches, the same compiled model, nothing else
    forward = jax.jit(apply_fn)
    mask_forward = jax.jit(lambda x, c: apply_fn(mask_inputs(x, c)))
    starts = range(0, args.n, batch)
    masked_batches = [
        jax.block_until_ready(mask_inputs(images[s : s + batch], cam_sets[0][s : s + batch])) for s in starts
    ]
    image_batches = [images[s : s + batch] for s in starts]
    cam_batches = [cam_sets[0][s : s + batch] for s in starts]

    def bare_forward():
        jax.block_until_ready([forward(x) for x in masked_batches])

    def bare_mask_forward():
        jax.block_until_ready([mask_forward(x, c) for x, c in zip(image_batches, cam_batches)])

    calls = {"device": 0, "host": 0}

    def evaluate_device_cams():
        calls["device"] += 1  # alternate CAM sets: the one-entry cache never answers
        metrics.evaluate(cam_sets[calls["device"] % 2], score)

    def evaluate_host_cams():
        calls["host"] += 1
        metrics.evaluate(cam_sets_host[calls["host"] % 2], score)

    variants = {
        "bare_forward": bare_forward,
        "bare_mask_forward": bare_mask_forward,
        "evaluate_device_cams": evaluate_device_cams,
        "evaluate_host_cams": evaluate_host_cams,
    }
    iterations = None
    if args.road:
        road_variants, iterations = road_figures(args, metrics, forward, image_batches, score)
        variants.update(road_variants)
    for function in variants.values():  # compile everything before timing
        function()
    best = best_of(variants, args.repeats)

    figures = {
        "device": f"{device.platform}: {getattr(device, 'device_kind', str(device))}",
        "device_count": jax.local_device_count(),
        "jax_version": jax.__version__,
        "n": args.n,
        "size": args.size,
        "batch_size": batch,
        "repeats": args.repeats,
        "construction_s": construction_s,
        "trace_count": metrics.trace_count,
        "best_s": best,
        "ratio_to_bare_forward": {name: seconds / best["bare_forward"] for name, seconds in best.items()},
    }
    if args.road:
        figures["road_ratio_to_bare_road_forward"] = {
            name: best[name] / best["bare_road_forward"] for name in ("road", "road_solver")}
        figures["road_cg_iterations_first_batch"] = iterations
    print(f"device: {figures['device']} (x{figures['device_count']}), jax {jax.__version__}")
    print(f"N={args.n} at {args.size}px, batch {batch}, best of {args.repeats}")
    print(f"construction (plain pass + compile): {construction_s:.3f} s")
    for name, seconds in best.items():
        print(f"{name:>22}: {seconds * 1e3:9.2f} ms   x{figures['ratio_to_bare_forward'][name]:.3f}")
    print(f"traces of AveragesCam's compiled passes: {metrics.trace_count} (expected 2{'; ROAD adds 2, once' if args.road else ''})")
    if args.road:
        ratios = figures["road_ratio_to_bare_road_forward"]
        print(f"ROAD: road {ratios['road']:.3f}x and its solver alone {ratios['road_solver']:.3f}x the 18 bare passes; "
              f"CG iterations per pair (first batch): {iterations}")
    out_dir = os.environ.get("OUT")
    if out_dir:
        path = Path(out_dir) / "gpu_jax.json"
        path.write_text(json.dumps(figures, indent=2))
        print(f"wrote {path}")
    return figures


if __name__ == "__main__":
    main()
