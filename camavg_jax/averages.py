"""``AveragesCam`` for models that live in JAX (Flax, Equinox, any function of a batch): the
JAX adapter.

The engine (:mod:`camavg_core.engine`) owns the steps and the checks; this module supplies
JAX's part: copies onto the device, the compiled passes and the scores back to the host.
``apply_fn`` is traced once per argument shape, by the plain pass at construction, and every pass
evaluates that trace (``JaxAdapter._model``). The plain pass is one ``jax.jit`` function per
batch shape (``preprocess``, ``apply_fn``, the activation). A perturbed pass is two: the first step, which also prepares (the CAMs resized
and normalised, then the perturbation's shared work) and returns what it prepared, and the
later steps, which reuse it; each runs a group of S steps
(:func:`~camavg_core.perturbations.step_groups`, S = 1 unless the perturbation groups them):
``apply_group``, then per step ``preprocess``, ``apply_fn`` and the activation, called with the
group's (S, P) parameter rows, a traced array, so neither K nor the values re-trace (a
``lax.scan`` over the steps would fix K in the trace), and the one-step
mask of the averages stays one function per batch. The last batch is padded to the batch size (its padding dropped from the
outputs), so any N compiles one shape; batches and steps are dispatched asynchronously, and with
several local devices each batch is split over them (:mod:`camavg_jax.sharding`).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import jax
import jax.extend.core as jax_core
import jax.numpy as jnp
import numpy as np

from camavg_core import validation
from camavg_core.backends import resolve_backend
from camavg_core.engine import AveragesCamBase, Engine, Options, apply_activation, check_output_rows, model_outputs, prepare_batch
from camavg_core.perturbations import (CAM_MASK, Perturbation, apply_group, pixel_count, step_groups, step_order,
                                       step_parameters)
from camavg_jax.sharding import DataPlacement

_BACKEND = resolve_backend("jax")


class JaxAdapter:
    """JAX's part of the engine (see :class:`camavg_core.engine.Adapter`)."""

    backend = _BACKEND

    def __init__(self, apply_fn: Callable) -> None:
        self.apply_fn = apply_fn
        self.placement = DataPlacement.local()
        self.trace_count = 0  # traces of the compiled steps, for tests and curious users
        self._plain: dict[Options, Callable] = {}
        self._perturbed: dict[tuple, tuple[Callable, Callable]] = {}
        self._lock = threading.Lock()
        # apply_fn's one trace per argument signature (see _model), made inside a pass's trace
        self._frozen: dict[tuple, tuple[Callable, Any]] = {}
        self._model_lock = threading.RLock()

    def own(self, array: Any, dtype: str, name: str) -> jax.Array:
        if isinstance(array, jax.Array):
            return jnp.array(array, dtype=dtype, copy=True)
        # on the CPU, device_put may alias a NumPy buffer: hand it a copy that is ours alone
        return jax.device_put(np.array(array, dtype=dtype, copy=True))

    def input_dtype(self, index: int, dtype: np.dtype) -> str:
        """Float inputs keep their dtype (float64 only under x64); others become float32."""
        if jnp.issubdtype(dtype, jnp.floating):
            return jnp.dtype(jax.dtypes.canonicalize_dtype(dtype)).name
        return "float32"

    def run(self, inputs: list, cams: list | None, options: Options, batch_size: int,
            perturbation: Perturbation | None = None, extra: Any = None) -> list:
        n = int(inputs[0].shape[0])
        size = self.rows_per_batch(n, batch_size)
        if cams is None:
            plain = self._plain_step(options)
            batch_outputs = []
            for start in range(0, n, size):
                outputs = plain(tuple(self.batch(x, start, size) for x in inputs))
                if start == 0:
                    check_output_rows(outputs, size, "apply_fn")
                batch_outputs.append(outputs)
            return [jnp.concatenate(parts)[:n] if len(parts) > 1 else parts[0][:n] for parts in zip(*batch_outputs)]
        perturbation = CAM_MASK if perturbation is None else perturbation
        parameters = step_parameters(perturbation, pixel_count(tuple(inputs[0].shape), options.data_format))
        groups = step_groups(perturbation, parameters)
        in_step_order = step_order(groups)
        first_rows, *later_rows = [jnp.asarray(parameters[group]) for group in groups]
        first, later = self._perturbed_steps(options, perturbation)
        batch_outputs = []  # per batch: (K, B, ...) per output
        for start in range(0, n, size):
            batch_inputs = tuple(self.batch(x, start, size) for x in inputs)
            batch_extra = None if extra is None else self.batch(extra, start, size)
            outputs, prepared = first(batch_inputs, tuple(self.batch(c, start, size) for c in cams), batch_extra, first_rows)
            steps = [*outputs, *(out for rows in later_rows for out in later(batch_inputs, prepared, rows))]
            steps = [steps[place] for place in in_step_order]
            if start == 0:
                check_output_rows(steps[0], size, "apply_fn")
            batch_outputs.append([jnp.stack(parts) for parts in zip(*steps)])
        return [jnp.concatenate(parts, axis=1)[:, :n] if len(parts) > 1 else parts[0][:, :n] for parts in zip(*batch_outputs)]

    def to_host(self, scores: Any) -> np.ndarray:
        scores = jnp.asarray(scores)
        if scores.dtype != jnp.float64:
            scores = scores.astype(jnp.float32)
        return np.asarray(jax.device_get(scores), dtype=np.float64)

    def output_kind(self) -> str | None:
        return None  # a function says nothing of its outputs: the value checks decide

    def model_version(self) -> None:
        """None: a function's parameters are out of sight (closed over, or constants of a
        jitted ``apply_fn``'s first trace); a new ``AveragesCam`` is how new ones count."""
        return None

    def rows_per_batch(self, n: int, batch_size: int) -> int:
        """Rows of every batch: ``batch_size`` (never more than N needs), rounded up to a
        multiple of the local devices a batch is split over."""
        devices = self.placement.n_devices
        return -(-min(batch_size, n) // devices) * devices

    # ----------------------------------------------------------------- compiled steps
    def batch(self, array: jax.Array, start: int, size: int) -> jax.Array:
        """Rows [start, start + size), the last batch padded with zeros to ``size`` rows."""
        batch = array[start : start + size]
        if batch.shape[0] < size:
            padding = jnp.zeros((size - batch.shape[0], *array.shape[1:]), array.dtype)
            batch = jnp.concatenate([batch, padding])
        return self.placement.put(batch)

    def _forward(self, options: Options, batch_inputs: list) -> list:
        if options.preprocess is not None:
            batch_inputs = [options.preprocess(x) for x in batch_inputs]
        outputs = self._model(batch_inputs if options.multi_input else batch_inputs[0])
        return apply_activation(model_outputs(outputs, "apply_fn"), options.activation, _BACKEND)

    def _model(self, arguments: Any) -> Any:
        """``apply_fn`` as it was when first traced for these arguments' shapes and dtypes: its
        jaxpr, made once (by the construction's plain pass) and evaluated by every pass after.

        A function reads what it closes over when it is traced, and each pass is traced at its
        first call: the plain pass at construction, a masked pass at the first ``evaluate``, a
        Deletion at the first ``deletion``. With ``lambda x: model.apply(variables, x)`` and
        ``variables`` rebound in between, one result paired Y_c of the old parameters with O_c
        of the new (Average Drop 46.5, where either model alone gives 2.3 or 1.1). One trace of
        the model for all the passes makes every number of an ``AveragesCam`` the model's as it
        was at construction, as docs/jax.md says."""
        leaves, tree = jax.tree.flatten(arguments)
        key = (tree, tuple((tuple(leaf.shape), jnp.dtype(leaf.dtype)) for leaf in leaves))
        with self._model_lock:
            frozen = self._frozen.get(key)
            if frozen is None:
                def call(*flat: Any) -> Any:
                    return self.apply_fn(jax.tree.unflatten(tree, flat))

                closed, shapes = jax.make_jaxpr(call, return_shape=True)(
                    *(jax.ShapeDtypeStruct(leaf.shape, leaf.dtype) for leaf in leaves))
                frozen = self._frozen[key] = (jax_core.jaxpr_as_fun(closed), jax.tree.structure(shapes))
        function, out_tree = frozen
        return jax.tree.unflatten(out_tree, function(*leaves))

    def _plain_step(self, options: Options) -> Callable:
        with self._lock:
            if options not in self._plain:

                def plain(batch_inputs: tuple) -> list:
                    self.trace_count += 1
                    return self._forward(options, list(batch_inputs))

                self._plain[options] = jax.jit(plain)
            return self._plain[options]

    def _perturbed_steps(self, options: Options, perturbation: Perturbation) -> tuple[Callable, Callable]:
        """The first group of steps (with ``prepare``) and a later group of ``perturbation``,
        jitted once per key and options (each traced at its first call and per group size S):
        each returns its S steps' outputs in the order of its rows."""
        with self._lock:
            key = (options, perturbation.key)
            if key not in self._perturbed:

                def group(batch_inputs: tuple, prepared: list, rows: jax.Array) -> list:
                    per_input = [apply_group(perturbation, _BACKEND, x, ready, rows) for x, ready in zip(batch_inputs, prepared)]
                    return [self._forward(options, [batches[place] for batches in per_input]) for place in range(rows.shape[0])]

                def first(batch_inputs: tuple, batch_cams: tuple, batch_extra: Any, rows: jax.Array) -> tuple:
                    self.trace_count += 1
                    extra = () if batch_extra is None else (batch_extra,)  # the per-sample data's rows
                    prepared = prepare_batch(_BACKEND, perturbation, options, batch_inputs, batch_cams, extra)
                    return group(batch_inputs, prepared, rows), prepared

                def later(batch_inputs: tuple, prepared: list, rows: jax.Array) -> list:
                    self.trace_count += 1
                    return group(batch_inputs, prepared, rows)

                self._perturbed[key] = (jax.jit(first), jax.jit(later))
            return self._perturbed[key]


class AveragesCam(AveragesCamBase):
    """Set of metrics that measure how a CAM's mask moves a JAX model's score.

    Args:
        apply_fn: maps a batch to the model's outputs, e.g. ``lambda x: model.apply(params, x)``
            for Flax or an Equinox module vmapped over the batch. It receives one array, or a
            list with one array per input when ``inputs`` is a list, and returns one array or a
            list/tuple of arrays (a multi-output model). It must be jittable.
        inputs: the instances, ``jax.Array`` or NumPy array (N, H, W, C); a list of them for a
            multi-input model. Integer images are passed to ``apply_fn`` as float32.
        batch_size: samples per forward pass (default 32); rounded up to a multiple of the
            local device count when batches are sharded.
        activation, nan_policy, normalize, data_format, level, preprocess: as for
            ``camavg_tf.AveragesCam``. A function says nothing of its outputs, so the
            logits check looks at the values (scores outside [0, 1] are refused).

    ``score_function`` (of ``evaluate`` and the ``average_*`` methods) maps the outputs of all
    N samples to N scores, as with tf-keras-vis; ``CategoricalScore`` and ``BinaryScore`` are
    read without tf-keras-vis being imported. A list of them scores a multi-output model.

    >>> import jax.numpy as jnp, numpy as np
    >>> images = np.ones((3, 4, 4, 1), np.float32)
    >>> def apply_fn(x):  # one "class" score: the mean pixel of the image
    ...     return jnp.mean(x, axis=(1, 2))
    >>> metrics = AveragesCam(apply_fn, images, batch_size=2)
    >>> cams = np.stack([np.full((4, 4), v, np.float32) for v in (1.0, 0.5, 0.25)])
    >>> result = metrics.evaluate(cams, lambda outputs: outputs[:, 0])
    >>> result.o_c.round(4).tolist()  # Y_c = 1 for all three images
    [1.0, 0.5, 0.25]
    >>> round(result.average_drop, 4)  # (0 + 0.5 + 0.75) / 3
    41.6667
    """

    def __init__(
        self,
        apply_fn: Callable,
        inputs: Any,
        *,
        batch_size: int | None = None,
        activation: str | None = None,
        nan_policy: str = "raise",
        normalize: bool = False,
        data_format: str = "channels_last",
        level: float = 0.95,
        preprocess: Callable | None = None,
    ) -> None:
        if not callable(apply_fn):
            raise TypeError(
                f"apply_fn must be a function from a batch to the model's outputs (e.g. "
                f"lambda x: model.apply(params, x)), got {type(apply_fn).__name__}."
            )
        self.model = self.apply_fn = apply_fn
        self.inputs = inputs
        options = Options(activation, data_format, normalize, validation.is_array_list(inputs), preprocess)
        self.adapter = JaxAdapter(apply_fn)
        self.engine = Engine(
            self.adapter, inputs, batch_size=batch_size, nan_policy=nan_policy, level=level, options=options,
        )

    @property
    def trace_count(self) -> int:
        """Traces of the compiled steps of this ``AveragesCam``."""
        return self.adapter.trace_count
