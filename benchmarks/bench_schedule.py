"""A K-step perturbation schedule in the compiled pass against a bare forward loop over the same
K x N perturbed inputs, prepared beforehand (what the schedule saves is memory: it never holds
K copies of the inputs; what it may cost is the ranking and the step loop).

    python -m benchmarks.bench_schedule              # TF MobileNetV2 (weights=None) 96 px, JAX CNN, torch
    python -m benchmarks.bench_schedule --quick      # a smoke run (from the repository root)

The schedule removes the 10%, 20%, ..., 100% most salient pixels of each sample (K = 10, the
stable ranking computed once per batch). Each framework's two rows are timed alternately
(``--repeats`` times, after one untimed run that traces); the ratio is of the best times.
Goal: within 1.10x.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks import alternating_cam_sets  # noqa: E402
from camavg_core.perturbations import salience_ranks  # noqa: E402


class RemoveMostSalient:
    """Step k zeroes the ``fractions[k]`` most salient pixels of each sample."""

    key = ("bench_remove_most_salient",)

    def __init__(self, fractions):
        self.fractions = tuple(fractions)
        self.steps = len(self.fractions)

    def parameters(self, n_pixels):
        return np.array([[round(f * n_pixels)] for f in self.fractions], np.float32)

    def prepare(self, backend, x, cams):
        return salience_ranks(backend, cams)

    def apply(self, backend, x, ranks, parameter):
        return x * backend.astype(ranks >= parameter[0], backend.dtype_name(x))


def perturbed_inputs(images: np.ndarray, cams: np.ndarray, fractions) -> np.ndarray:
    """(K * N, H, W, C): every step's perturbed inputs, made with NumPy."""
    flat = cams.reshape(len(cams), -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(flat.shape[1]), flat.shape), axis=1)
    ranks = ranks.reshape(cams.shape)[..., None]
    n_pixels = flat.shape[1]
    return np.concatenate([images * (ranks >= round(f * n_pixels)) for f in fractions]).astype(np.float32)


def mirrored_cam_sets(engine, cams: np.ndarray):
    """``cams`` and their mirror image, taken in turn (:func:`benchmarks.alternating_cam_sets`)."""
    return alternating_cam_sets(engine, cams, np.ascontiguousarray(cams[:, ::-1]))


def timed(rows: dict, repeats: int) -> dict:
    for run in rows.values():
        run()  # traces and warms up
    times = {name: [] for name in rows}
    for _ in range(repeats):
        for name, run in rows.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def report(title: str, times: dict) -> None:
    (bare_name, bare), (name, schedule) = times.items()
    print(f"\n{title}")
    for row, values in times.items():
        print(f"  {row:<42} best {min(values):7.3f} s   median {np.median(values):7.3f} s")
    print(f"  ratio (best): {min(schedule) / min(bare):.3f}x   ratio (median): {np.median(schedule) / np.median(bare):.3f}x")


def tensorflow_rows(images, cams, fractions, batch):
    import keras
    import tensorflow as tf

    from camavg_tf import AveragesCam

    model = keras.applications.MobileNetV2(weights=None, input_shape=images.shape[1:], classes=10)
    metrics = AveragesCam(model, images, batch_size=batch)
    engine, perturbation = metrics.engine, RemoveMostSalient(fractions)
    cam_sets = mirrored_cam_sets(engine, cams)
    prepared = tf.constant(perturbed_inputs(images, cams, fractions))
    forward = tf.function(lambda x: model(x, training=False))

    def bare():
        return [forward(prepared[start : start + batch]).numpy() for start in range(0, len(prepared), batch)]

    def schedule():
        return [out.numpy() for out in engine.perturbed_outputs(next(cam_sets), perturbation)]

    return {"bare: tf.function forward loop over K x N": bare, "camavg_tf schedule (K steps in the pass)": schedule}


def jax_rows(images, cams, fractions, batch):
    import jax
    import jax.numpy as jnp

    from camavg_jax import AveragesCam

    rng = np.random.default_rng(1)
    layers = [(3, 32, 1), (32, 64, 2), (64, 128, 2), (128, 128, 2)]  # compare.py's CNN
    kernels = [(jnp.asarray(rng.normal(0, (2.0 / (9 * cin)) ** 0.5, (3, 3, cin, cout)), jnp.float32), stride)
               for cin, cout, stride in layers]
    dense = jnp.asarray(rng.normal(0, 0.1, (128, 10)), jnp.float32)

    def apply_fn(x):
        for kernel, stride in kernels:
            x = jax.nn.relu(jax.lax.conv_general_dilated(x, kernel, (stride, stride), "SAME",
                                                         dimension_numbers=("NHWC", "HWIO", "NHWC")))
        return jax.nn.softmax(jnp.mean(x, axis=(1, 2)) @ dense, axis=-1)

    metrics = AveragesCam(apply_fn, images, batch_size=batch)
    engine, perturbation = metrics.engine, RemoveMostSalient(fractions)
    cam_sets = mirrored_cam_sets(engine, cams)
    prepared = jnp.asarray(perturbed_inputs(images, cams, fractions))
    forward = jax.jit(apply_fn)

    def bare():
        return [np.asarray(forward(prepared[start : start + batch])) for start in range(0, len(prepared), batch)]

    def schedule():
        return [np.asarray(out) for out in engine.perturbed_outputs(next(cam_sets), perturbation)]

    return {"bare: jitted forward loop over K x N": bare, "camavg_jax schedule": schedule}


def torch_rows(images, cams, fractions, batch):
    import torch

    from camavg_torch import AveragesCam

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 64, 3, 2, 1), torch.nn.ReLU(),
        torch.nn.Conv2d(64, 128, 3, 2, 1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(128, 10), torch.nn.Softmax(dim=-1),
    ).eval()
    channels_first = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    metrics = AveragesCam(model, channels_first, batch_size=batch)
    engine, perturbation = metrics.engine, RemoveMostSalient(fractions)
    cam_sets = mirrored_cam_sets(engine, cams)
    prepared = torch.from_numpy(np.ascontiguousarray(perturbed_inputs(images, cams, fractions).transpose(0, 3, 1, 2)))

    def bare():
        with torch.inference_mode():
            return [model(prepared[start : start + batch]) for start in range(0, len(prepared), batch)]

    def schedule():
        return engine.perturbed_outputs(next(cam_sets), perturbation)

    return {"bare: eager forward loop over K x N": bare, "camavg_torch schedule": schedule}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frameworks", default="tensorflow,jax,torch")
    parser.add_argument("--quick", action="store_true", help="N = 8, 32 px, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.n, args.size, args.repeats = 8, 32, 1
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (args.n, args.size, args.size, 3)).astype(np.float32)
    cams = rng.random((args.n, args.size, args.size)).astype(np.float32)
    fractions = [step / 10 for step in range(1, 11)]
    makers = {"tensorflow": tensorflow_rows, "jax": jax_rows, "torch": torch_rows}
    for name in args.frameworks.split(","):
        rows = makers[name](images, cams, fractions, args.batch)
        report(f"{name}: K = {len(fractions)}, N = {args.n}, {args.size} px, batch {args.batch}, "
               f"{args.repeats} alternating repeats", timed(rows, args.repeats))


if __name__ == "__main__":
    main()
