"""How much camavg costs beside the bare forward pass it cannot avoid, in one run.

    python benchmarks/compare.py                 # MobileNetV2 (weights=None), 96 px and 224 px
    python benchmarks/compare.py --sizes 96      # one input size
    python benchmarks/compare.py --quick         # a smoke run of a few seconds

Every row is timed as a ratio to the bare forward pass over the same masked inputs: the fastest
of ``model.predict(masked, batch_size=B)``, a compiled ``tf.function`` called per batch of the
same size, and one ``tf.function`` looping over the batches in the graph, as camavg's passes do
(its iterations may overlap; until 2026-12-06 it was a reference row outside the baseline).
The repetitions of the rows are interleaved (repeat r times every row, in a rotated order) so
that the drift of a shared machine hits every row alike; the table gives the ratio of the best
times and of the median times.

The floor: construction, ``evaluate`` and ``average_drop`` then ``average_increase`` each cost
one forward pass (bound <= 1.10x, goal 1.05x); ``evaluate_many`` with K CAM sets
costs K (bound <= 1.10 K x). The original behaviour predicts again for each metric.

Construction is the one row measured against a *new* bare loop, traced and run: every
``AveragesCam`` traces its own passes (a trace fixes the model's Python code as it is, so none
may be borrowed from an earlier object that saw the model as it was), and a bare forward pass
over a model it has not run yet pays the same trace. Its ratio to the warm bare pass is shown
too, in the note under the table.

When ``camavg_jax.averages`` is importable, a JAX section compares ``camavg_jax.AveragesCam
.evaluate`` with the bare jitted forward pass of a small CNN.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

# run as a script (`python benchmarks/compare.py`): the helpers of the benchmarks package beside it
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import forward_graph_loop  # noqa: E402

TOLERANCE = 1.10  # the bound: at most 10% over the floor (the goal is 5%)


@dataclass
class Row:
    """One timed line of the table: what it runs and how many forward passes it may cost."""

    name: str
    run: Callable[[], object]
    passes: float | None  # the floor in forward passes; None for rows without a target
    before: Callable[[], object] | None = None  # untimed set-up before each repetition
    baseline: str | None = None  # the row this one is a ratio to; None: the faster bare pass


# --------------------------------------------------------------------------- the machine
def machine_description() -> str:
    """CPU model, cores, accelerators and library versions: what the numbers depend on."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    libraries = [f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    accelerators = []
    if importlib.util.find_spec("tensorflow") is not None:
        import tensorflow as tf

        libraries.append(f"TensorFlow {tf.__version__}")
        accelerators += [
            "TF: " + tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")
        ]
    if importlib.util.find_spec("jax") is not None:
        import jax

        libraries.append(f"JAX {jax.__version__}")
        accelerators += [f"JAX: {device.device_kind}" for device in jax.devices() if device.platform != "cpu"]
    return (
        f"CPU: {cpu}, {os.cpu_count()} cores; accelerator: {', '.join(accelerators) or 'none (CPU only)'}; "
        f"{', '.join(libraries)}; {platform.system()} {platform.release()}"
    )


# --------------------------------------------------------------------------- data
def grad_cam_like(rng: np.random.Generator, n: int, size: int, coarse: int) -> np.ndarray:
    """(n, size, size) maps in [0, 1]: coarse random maps upsampled bilinearly and min-max
    normalised, the way Grad-CAM's last-layer maps are brought to the input size; C-ordered,
    as CAM methods return them."""
    from camavg_core.backends import resize_bilinear_numpy  # tf.image.resize's arithmetic

    coarse_maps = rng.random((n, coarse, coarse, 1)).astype(np.float32)
    maps = resize_bilinear_numpy(coarse_maps, (size, size))[..., 0]
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return np.ascontiguousarray((maps - low) / np.maximum(high - low, 1e-12), dtype=np.float32)


def make_data(n: int, size: int, k: int, classes: int, seed: int):
    """Seeded inputs in [-1, 1] (MobileNetV2's range), ``k`` CAM sets and target classes."""
    rng = np.random.default_rng(seed)
    inputs = rng.uniform(-1.0, 1.0, (n, size, size, 3)).astype(np.float32)
    coarse = max(1, size // 32)  # the spatial size of MobileNetV2's last feature map
    cam_sets = [grad_cam_like(rng, n, size, coarse) for _ in range(max(k, 2))]
    labels = rng.integers(0, classes, n)
    return inputs, cam_sets, labels


# --------------------------------------------------------------------------- the original
class SeedAveragesCam:
    """The original behaviour, written out: the outputs on the inputs are computed once, at
    construction (as DESIGN.md says the seed did), and every metric predicts on the masked
    inputs again; the score function is applied to the outputs of all N samples."""

    def __init__(self, model, inputs, batch_size: int) -> None:
        self.model = model
        self.inputs = inputs
        self.batch_size = batch_size
        self.outputs = model.predict(inputs, batch_size=batch_size, verbose=0)

    def _get_scores(self, cams, score_function):
        masked = self.model.predict(self.inputs * cams[..., None], batch_size=self.batch_size, verbose=0)
        return np.asarray(score_function(self.outputs)), np.asarray(score_function(masked))

    def average_drop(self, cams, score_function) -> float:
        y_c, o_c = self._get_scores(cams, score_function)
        return float(100 * np.mean(np.maximum(0, y_c - o_c) / y_c))

    def average_increase(self, cams, score_function) -> float:
        y_c, o_c = self._get_scores(cams, score_function)
        return float(100 * np.mean(y_c < o_c))


# --------------------------------------------------------------------------- TensorFlow rows
def compiled_forward_loop(model, batch_size: int):
    """The bare forward pass as a compiled loop: one traced step, called per batch."""
    import tensorflow as tf

    step = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)],
    )

    def run(masked):
        outputs = [step(masked[start : start + batch_size]) for start in range(0, int(masked.shape[0]), batch_size)]
        return np.concatenate([out.numpy() for out in outputs])

    return run


def alternating(cam_sets: list) -> Callable[[], np.ndarray]:
    """Each call gives the next of two different CAM sets, so no call hits the cache of the
    one before: every repetition pays its masked pass, as a new CAM method would."""
    state = {"next": 0}

    def following() -> np.ndarray:
        cams = cam_sets[state["next"] % 2]
        state["next"] += 1
        return cams

    return following


def load_class(spec: str):
    """``module:Class`` or ``path/to/file.py:Class``: an AveragesCam variant to measure
    instead of ``camavg_tf.AveragesCam`` (to try a prototype before it lands)."""
    import importlib

    location, _, name = spec.rpartition(":")
    if location.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location("camavg_prototype", location)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(location)
    return getattr(module, name)


def tensorflow_rows(model, inputs, cam_sets, labels, batch: int, k: int, averages_cam=None) -> list[Row]:
    import tensorflow as tf
    from tf_keras_vis.utils.scores import CategoricalScore

    from camavg_tf import AveragesCam

    AveragesCam = averages_cam or AveragesCam  # noqa: N806 (a class, named as one)

    score = CategoricalScore(list(int(label) for label in labels))
    masked = inputs * cam_sets[0][..., None]
    masked_tensor = tf.constant(masked)
    loop = compiled_forward_loop(model, batch)
    in_graph = forward_graph_loop(model, batch)
    seed = SeedAveragesCam(model, inputs, batch)
    evaluator = AveragesCam(model, inputs, batch_size=batch)
    drop_increase = AveragesCam(model, inputs, batch_size=batch)
    many = AveragesCam(model, inputs, batch_size=batch)
    next_for_evaluate, next_for_metrics = alternating(cam_sets), alternating(cam_sets)

    def seed_drop_then_increase():
        cams = cam_sets[0]
        seed.average_drop(cams, score)
        seed.average_increase(cams, score)

    def camavg_drop_then_increase():
        cams = next_for_metrics()
        drop_increase.average_drop(cams, score)
        drop_increase.average_increase(cams, score)

    return [
        Row("bare: model.predict", lambda: model.predict(masked, batch_size=batch, verbose=0), None),
        Row("bare: tf.function loop", lambda: loop(masked_tensor), None),
        Row("bare: a new tf.function loop, traced and run",
            lambda: compiled_forward_loop(model, batch)(tf.constant(inputs)), None),
        Row("bare: in-graph while loop", lambda: in_graph(masked_tensor), None),
        Row("original: drop then increase", seed_drop_then_increase, None),
        Row("AveragesCam construction", lambda: AveragesCam(model, inputs, batch_size=batch), 1,
            baseline="bare: a new tf.function loop, traced and run"),
        Row("evaluate", lambda: evaluator.evaluate(next_for_evaluate(), score), 1),
        Row("average_drop then average_increase", camavg_drop_then_increase, 1),
        Row(f"evaluate_many (K={k})", lambda: many.evaluate_many(cam_sets[:k], score), k),
    ]


# --------------------------------------------------------------------------- JAX rows
def jax_rows(n: int, size: int, batch: int, seed: int) -> list[Row]:
    """A small seeded JAX CNN (four 3x3 convolutions, softmax head):
    ``camavg_jax.AveragesCam.evaluate`` against its bare jitted forward pass over the same
    masked inputs."""
    import jax
    import jax.numpy as jnp

    from camavg_jax.averages import AveragesCam

    rng = np.random.default_rng(seed)
    # (in, out, stride): about 0.1 GFLOP per 64 px image, so the forward pass, not the
    # fixed costs of a call, is what the ratio weighs
    layers = [(3, 32, 1), (32, 64, 2), (64, 128, 2), (128, 128, 2)]
    kernels = [
        (jnp.asarray(rng.normal(0, (2.0 / (9 * cin)) ** 0.5, (3, 3, cin, cout)), jnp.float32), stride)
        for cin, cout, stride in layers
    ]
    dense = jnp.asarray(rng.normal(0, 0.1, (128, 10)), jnp.float32)

    def apply_fn(x):
        for kernel, stride in kernels:
            x = jax.lax.conv_general_dilated(x, kernel, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            x = jax.nn.relu(x)
        return jax.nn.softmax(jnp.mean(x, axis=(1, 2)) @ dense, axis=-1)

    inputs = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
    cam_sets = [grad_cam_like(rng, n, size, max(1, size // 8)) for _ in range(2)]
    labels = [int(label) for label in rng.integers(0, 10, n)]
    masked = jnp.asarray(inputs * cam_sets[0][..., None])
    forward = jax.jit(apply_fn)

    def bare():
        outputs = [forward(masked[start : start + batch]) for start in range(0, n, batch)]
        return np.concatenate([np.asarray(out) for out in outputs])

    def score(outputs):
        return outputs[jnp.arange(outputs.shape[0]), jnp.asarray(labels)]

    evaluator = AveragesCam(apply_fn, inputs, batch_size=batch)
    next_cams = alternating(cam_sets)
    return [
        Row("bare: jitted forward loop", bare, None),
        Row("camavg_jax evaluate", lambda: evaluator.evaluate(next_cams(), score), 1),
    ]


# --------------------------------------------------------------------------- timing
def measure(rows: list[Row], repeats: int, seed: int = 0) -> dict[str, list[float]]:
    """Seconds of each repetition of each row; every row runs once untimed first (traces,
    compiles, warms caches), then the repetitions go round-robin, each round in a fresh
    seeded random order, so that no row always follows the same neighbour."""
    for row in rows:
        if row.before:
            row.before()
        row.run()
    times: dict[str, list[float]] = {row.name: [] for row in rows}
    order = np.random.default_rng(seed)
    for _ in range(repeats):
        for index in order.permutation(len(rows)):
            row = rows[index]
            if row.before:
                row.before()
            start = time.perf_counter()
            row.run()
            times[row.name].append(time.perf_counter() - start)
    return times


def table(title: str, rows: list[Row], times: dict[str, list[float]], bare_names: list[str]) -> str:
    """A Markdown table of best and median times and their ratios to the fastest bare pass."""
    best_bare = min(min(times[name]) for name in bare_names)
    median_bare = min(statistics.median(times[name]) for name in bare_names)
    lines = [
        f"#### {title}",
        "",
        f"Bare forward pass: best {best_bare:.3f} s, median {median_bare:.3f} s "
        f"(the fastest of: {', '.join(bare_names)}).",
        "",
        "| row | best (s) | median (s) | ratio (best) | ratio (median) | target | met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    notes = []
    for row in rows:
        best, median = min(times[row.name]), statistics.median(times[row.name])
        if row.baseline is None:
            ratio_best, ratio_median = best / best_bare, median / median_bare
        else:
            ratio_best = best / min(times[row.baseline])
            ratio_median = median / statistics.median(times[row.baseline])
            notes.append(
                f"{row.name}: ratios to \"{row.baseline}\"; to the warm bare pass, "
                f"{best / best_bare:.3f} (best) and {median / median_bare:.3f} (median)."
            )
        if row.passes is None:
            target, met = "—", ""
        else:
            limit = TOLERANCE * row.passes
            target, met = f"<= {limit:.2f}", "yes" if ratio_best <= limit else "**no**"
        lines.append(
            f"| {row.name} | {best:.3f} | {median:.3f} | {ratio_best:.3f} | {ratio_median:.3f} | {target} | {met} |"
        )
    lines += [""] + notes if notes else []
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 64 px, N=32, batch 16, 2 repeats, alpha 0.35")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 224], help="input sizes in pixels")
    parser.add_argument("--n", type=int, default=256, help="number of samples")
    parser.add_argument("--batch", type=int, default=64, help="batch size of every forward pass")
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions of every row")
    parser.add_argument(
        "--jax-repeats", type=int, default=25,
        help="timed repetitions of the JAX rows (a pass of 0.2 s: more repeats cost little and steady the best)",
    )
    parser.add_argument("--k", type=int, default=4, help="CAM sets for evaluate_many")
    parser.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2 width multiplier")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-jax", action="store_true", help="skip the JAX section")
    parser.add_argument("--jax-size", type=int, default=64, help="input size of the JAX section (32 with --quick)")
    parser.add_argument("--no-tf", action="store_true", help="skip the TensorFlow sections (e.g. on a machine without TensorFlow)")
    parser.add_argument(
        "--averages-cam",
        metavar="MODULE:CLASS",
        help="measure this AveragesCam variant instead of camavg_tf.AveragesCam (a module or a .py path)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.n, args.batch, args.repeats, args.alpha = [64], 32, 16, 2, 0.35
        args.jax_repeats = 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now().astimezone()
    print(f"camavg compare.py, {started:%Y-%m-%d %H:%M %Z}")
    print(machine_description())
    print(
        f"N = {args.n}, batch {args.batch}, float32, {args.repeats} interleaved repeats, "
        f"K = {args.k}, seed {args.seed}\n"
    )
    for size in [] if args.no_tf else args.sizes:
        import keras

        keras.utils.set_random_seed(args.seed)
        model = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3), alpha=args.alpha)
        inputs, cam_sets, labels = make_data(args.n, size, args.k, 1000, args.seed)
        averages_cam = load_class(args.averages_cam) if args.averages_cam else None
        rows = tensorflow_rows(model, inputs, cam_sets, labels, args.batch, args.k, averages_cam)
        times = measure(rows, args.repeats, args.seed)
        title = f"TensorFlow: MobileNetV2 (alpha {args.alpha}, weights=None), {size} px"
        if averages_cam is not None:
            title += f", {averages_cam.__module__}.{averages_cam.__name__}"
        print(table(title, rows, times, ["bare: model.predict", "bare: tf.function loop", "bare: in-graph while loop"]), "\n", flush=True)
    if not args.no_jax and importlib.util.find_spec("camavg_jax.averages") is not None:
        size = 32 if args.quick else args.jax_size
        rows = jax_rows(args.n, size, args.batch, args.seed)
        times = measure(rows, args.jax_repeats, args.seed)
        title = f"JAX: a 4-layer CNN, {size} px, {args.jax_repeats} interleaved repeats"
        print(table(title, rows, times, ["bare: jitted forward loop"]), "\n", flush=True)
    elapsed = datetime.datetime.now().astimezone() - started
    print(f"finished in {elapsed.total_seconds():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
