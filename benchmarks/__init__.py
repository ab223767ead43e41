"""asv benchmarks of camavg (run ``asv run --python=same --quick`` from the repository root).

Helpers shared by the ``bench_*`` modules: which backends exist here, and arrays for them. A
backend whose framework is not installed raises ``NotImplementedError`` in ``setup``, which
asv reports as a skipped benchmark (SciPy's convention).
"""

from __future__ import annotations

import importlib
import itertools
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BACKENDS = ["numpy", "tensorflow", "jax"]
#: what each backend needs importable: the framework, then camavg's backend module
_REQUIREMENTS = {
    "numpy": ("numpy", "camavg_core.backends"),
    "tensorflow": ("tensorflow", "camavg_tf.backend"),
    "jax": ("jax", "camavg_jax.backend"),
}


def require_backend(name: str):
    """The camavg ``Backend`` called ``name``; ``NotImplementedError`` when it is missing."""
    for module_name in _REQUIREMENTS[name]:
        try:
            importlib.import_module(module_name)
        except ImportError as exc:
            raise NotImplementedError(f"{name} is not available here: {exc}") from exc
    from camavg_core import resolve_backend

    return resolve_backend(name)


def to_backend(name: str, array):
    """A NumPy array as the backend's array type (on its default device)."""
    if name == "tensorflow":
        import tensorflow as tf

        return tf.constant(array)
    if name == "jax":
        import jax.numpy as jnp

        return jnp.asarray(array)
    if name == "torch":
        import torch

        return torch.from_numpy(array)
    return array


def compiled(name: str, function):
    """``function`` compiled the backend's way (``tf.function``, ``jax.jit``); NumPy as is."""
    if name == "tensorflow":
        import tensorflow as tf

        return tf.function(function)
    if name == "jax":
        import jax

        return jax.jit(function)
    return function


def block(value):
    """Wait for an asynchronous result (JAX dispatches asynchronously)."""
    ready = getattr(value, "block_until_ready", None)
    if ready is not None:
        ready()
    elif type(value).__module__.startswith("tensorflow"):  # GPU kernels run asynchronously too
        import tensorflow as tf

        tf.test.experimental.sync_devices()
    return value


def interleaved(figures: dict, repeats: int) -> dict:
    """Wall and CPU (process) times of ``repeats`` calls of each figure's function, the figures
    taking turns call by call, so that a slower spell of a shared machine falls on all of them
    rather than on one: {name: [(wall s, CPU s), ...]}. Trace and warm up before."""
    times = {name: [] for name in figures}
    for _ in range(repeats):
        for name, run in figures.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return times



def forward_graph_loop(model, batch_size: int, repeats: int = 1):
    """The bare forward passes as one compiled call, as camavg's passes loop: a
    ``tf.while_loop`` over the batches of its (N, ...) input, each batch run ``repeats`` times
    in a row (a perturbation's steps), the outputs concatenated. TF's executor runs two
    iterations at once where one pass leaves a core idle, so on a CPU this beats a
    ``tf.function`` called per batch (by 11-27% on 2 cores, 2026-12-06): the harder baseline."""
    import tensorflow as tf

    @tf.function
    def run(images):
        count = ((int(images.shape[0]) + batch_size - 1) // batch_size) * repeats

        def body(i, outputs):
            start = (i // repeats) * batch_size
            return i + 1, outputs.write(i, model(images[start:start + batch_size], training=False))

        _, outputs = tf.while_loop(lambda i, _: i < count, body,
                                   (tf.constant(0), tf.TensorArray(tf.float32, size=count, infer_shape=False)))
        return outputs.concat()

    return lambda images: run(images).numpy()


def alternating_cam_sets(engine, cams, other):
    """The engine's own copies of two CAM sets, taken in turn without end. The engine answers a
    call on the CAM values of the call before from its cache, so a timed call must never follow
    one on the same CAMs: alternating, every call runs its pass, as a new CAM method's would."""
    return itertools.cycle([engine.own_cams(cams, False), engine.own_cams(other, False)])
