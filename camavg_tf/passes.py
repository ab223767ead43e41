"""The compiled forward passes behind ``AveragesCam``: plain and perturbed.

A pass is one ``tf.function`` that loops over the batches of a prefetched ``tf.data`` pipeline
inside the graph (an iterator and a ``tf.while_loop``), so no batch goes back to the host and
the model stays in the function's own graph. A perturbed pass runs a perturbation's K steps in
an inner ``tf.while_loop`` per batch (``prepare`` once, then per group of S steps
(:func:`~camavg_core.perturbations.step_groups`, S = 1 unless the perturbation groups them)
``apply_group`` and, per step, the model and the activation), its (G, S, P) grouped parameters
a tensor argument: G and the parameter values never re-trace, S does. The outputs of all N
samples are concatenated on the device and put back in step order, (K, N, ...).

The passes belong to the adapter (the ``AveragesCam`` or the stream) that traced them, never to
the model: a trace fixes what the model's Python code did at that moment (its activations, its
layers; only variables are read afresh), so a new ``AveragesCam`` traces the model as it is
now. Within one adapter the batch size is a tensor argument and the sample axis is unknown in
the signatures, so neither N nor the batch size retraces.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from camavg_core.backends import resolve_backend
from camavg_core.engine import Options, apply_activation, model_outputs, prepare_batch
from camavg_core.perturbations import CAM_MASK, Perturbation, apply_group, step_groups, step_order
from camavg_tf.distribute import ReplicaLoop

_BACKEND = resolve_backend("tensorflow")


def score_dtype(dtype: Any) -> tf.DType:
    """Outputs are scored in float32 (float64 stays): never in float16 or bfloat16."""
    return tf.float64 if tf.as_dtype(dtype) == tf.float64 else tf.float32


class BatchStep:
    """One batch of a pass: mask, ``preprocess``, the model and the activation."""

    def __init__(self, model: Any, options: Options) -> None:
        self.model = model
        self.options = options
        self.takes_training = takes_training(model)

    def run_model(self, batch_inputs: list) -> list:
        if self.options.preprocess is not None:
            batch_inputs = [self.options.preprocess(x) for x in batch_inputs]
        batch = batch_inputs if self.options.multi_input else batch_inputs[0]
        outputs = self.model(batch, training=False) if self.takes_training else self.model(batch)
        return apply_activation(model_outputs(outputs, "The model"), self.options.activation, _BACKEND)

    def plain(self, batch: tuple) -> list:
        return self.run_model(list(batch))

    def masked(self, batch: tuple) -> list:
        """The one step of :data:`CAM_MASK`, (B, ...) per output."""
        prepared = self.prepare(batch, CAM_MASK)
        return self.step(batch[0], prepared, CAM_MASK, tf.zeros([1], tf.float32))

    def prepare(self, batch: tuple, perturbation: Perturbation) -> list:
        """``prepare`` per model input; a batch of three holds the per-sample extra's rows."""
        batch_inputs, batch_cams, *extra = batch
        return prepare_batch(_BACKEND, perturbation, self.options, batch_inputs, batch_cams, extra)

    def step(self, batch_inputs: tuple, prepared: list, perturbation: Perturbation, parameter: tf.Tensor) -> list:
        """One step: ``apply``, ``preprocess``, the model and the activation."""
        return self.run_model([
            perturbation.apply(_BACKEND, x, ready, parameter) for x, ready in zip(batch_inputs, prepared)
        ])

    def perturbed(self, batch: tuple, perturbation: Perturbation, grouped: tf.Tensor, output_dtypes: list) -> list:
        """The K = G * S steps of ``perturbation`` on one batch, in a graph loop over the G
        groups of ``grouped``, its (G, S, P) parameters (S static): (B, K, ...) per output (the
        sample axis first, so the batches concatenate along it), in group order: the step of
        row ``grouped[g, s]`` at place g * S + s."""
        prepared = self.prepare(batch, perturbation)
        size = grouped.shape[1]
        n_groups = tf.shape(grouped)[0]
        arrays = tuple(tf.TensorArray(dtype, size=n_groups * size, infer_shape=False) for dtype in output_dtypes)

        def body(group, arrays):
            per_input = [apply_group(perturbation, _BACKEND, x, ready, grouped[group]) for x, ready in zip(batch[0], prepared)]
            for place in range(size):  # the model runs once per step, in the rows' order
                outputs = self.run_model([batches[place] for batches in per_input])
                arrays = tuple(ta.write(group * size + place, out) for ta, out in zip(arrays, outputs))
            return group + 1, arrays

        _, arrays = tf.while_loop(lambda group, _: group < n_groups, body, (tf.constant(0), arrays))
        return [_swap_leading_axes(ta.stack()) for ta in arrays]

    def output_dtypes(self, inputs: list) -> list[tf.DType]:
        """From the model's symbolic outputs when it has them (functional and Sequential
        models), else from one sample run eagerly."""
        symbolic = getattr(self.model, "outputs", None)
        if symbolic:
            return [score_dtype(getattr(out, "dtype", "float32")) for out in symbolic]
        return [out.dtype for out in self.run_model([x[:1] for x in inputs])]


def _swap_leading_axes(tensor: tf.Tensor) -> tf.Tensor:
    """(A, B, ...) -> (B, A, ...)."""
    return tf.transpose(tensor, tf.concat([[1, 0], tf.range(2, tf.rank(tensor))], axis=0))


def grouped_parameters(perturbation: Perturbation, parameters: Any) -> tuple[tf.Tensor, np.ndarray | None]:
    """The (G, S, P) parameters of ``perturbation``'s groups (:func:`~camavg_core.perturbations.step_groups`)
    and the order that puts the pass's outputs, which come in group order, back in step order
    (None when they already are)."""
    parameters = np.asarray(parameters, np.float32)
    groups = step_groups(perturbation, parameters)
    order = step_order(groups)
    in_order = None if np.array_equal(order, np.arange(order.size)) else order
    return tf.constant(parameters[groups]), in_order


def in_step_order(outputs: list, order: np.ndarray | None) -> list:
    """(B, K, ...) outputs in group order -> (K, B, ...) in step order."""
    outputs = [_swap_leading_axes(out) for out in outputs]
    return outputs if order is None else [tf.gather(out, order) for out in outputs]


def takes_training(model: Any) -> bool:
    """Whether ``model`` accepts ``training=``: a Keras model does (inference mode for dropout
    and batch normalisation); a plain function ``lambda x: ...`` may not."""
    try:
        parameters = inspect.signature(model).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): call it plainly
        return False
    return any(p.name == "training" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _batch_tensor(batch_size: int) -> tf.Tensor:
    return tf.constant(batch_size, tf.int64)


def batches(tensors: Any, batch_size: Any) -> tf.data.Dataset:
    """The batches of ``tensors`` as a ``tf.data`` batch pipeline, prefetched: the form a
    ``tf.distribute`` strategy splits over its replicas."""
    dataset = tf.data.Dataset.from_tensor_slices(tensors).batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def batch_slices(tensors: Any, batch_size: Any) -> tf.data.Dataset:
    """The batches of ``tensors`` as slices along the sample axis, prefetched.

    A batch pipeline copies every sample into a fresh batch buffer; a slice along the first
    axis is, in TensorFlow, a view of the tensor it is cut from (when the slice starts on an
    aligned byte, as it does for image-sized rows). On a CPU that spares one write and one
    fresh allocation of the inputs and the CAMs per batch.

    One batch is prefetched, a fixed depth: slicing costs next to nothing, and tf.data's
    autotuning, which has nothing to tune here, made one pass in four 20% slower on a 2-core
    machine (its background work competes with the model for the cores).
    """
    n = tf.shape(tf.nest.flatten(tensors)[0], out_type=tf.int64)[0]

    def take(index: tf.Tensor) -> Any:
        start = index * batch_size
        return tf.nest.map_structure(lambda tensor: tensor[start : start + batch_size], tensors)

    dataset = tf.data.Dataset.range((n + batch_size - 1) // batch_size).map(take).prefetch(1)
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


class CompiledPasses:
    """The plain and the masked pass of one model and options, compiled once per adapter."""

    def __init__(self, steps: BatchStep, output_dtypes: list[tf.DType]) -> None:
        self.steps = steps
        self.output_dtypes = output_dtypes
        self.trace_count = 0  # traces of both passes, for tests and curious users
        self._compiled: dict[tuple, Any] = {}

    def plain(self, inputs: list, batch_size: int) -> list:
        """(N, ...) per output. One traced step per batch, called from Python, not a graph
        loop: this pass runs once per ``AveragesCam`` (and per model change), right after its
        trace, so what counts is the trace, and a step's graph is the model's alone, as small
        as a bare ``tf.function`` forward pass (a graph loop around it costs more to trace and
        to optimise than its overlap of batches saves on one run)."""
        step = self._function("plain", (tuple(inputs),))
        n = int(inputs[0].shape[0])
        parts = [step(tuple(x[start : start + batch_size] for x in inputs)) for start in range(0, n, batch_size)]
        return [tf.concat(outputs, axis=0) for outputs in zip(*parts)]

    def masked(self, inputs: list, cams: list, batch_size: int) -> list:
        """(N, ...) per output: the one step of :data:`CAM_MASK` (no step loop in the graph)."""
        arguments = (tuple(inputs), tuple(cams))
        return self._function("masked", arguments)(*arguments, _batch_tensor(batch_size))

    def perturbed(self, inputs: list, cams: list, batch_size: int, perturbation: Perturbation, parameters: Any,
                  extra: Any = None) -> list:
        """(K, N, ...) per output: the perturbation's K steps on every batch; ``extra``, the
        per-sample data, is sliced into batches with the inputs and the CAMs."""
        arguments = (tuple(inputs), tuple(cams)) + (() if extra is None else (extra,))
        grouped, order = grouped_parameters(perturbation, parameters)
        kind = ("perturbed", perturbation.key, extra is not None, grouped.shape[1])
        outputs = self._function(kind, arguments, perturbation)(*arguments, grouped, _batch_tensor(batch_size))
        return in_step_order(outputs, order)

    def _function(self, kind: Any, arguments: tuple, perturbation: Perturbation | None = None) -> Any:
        """One ``tf.function`` per kind (and perturbation key) and per per-sample shape, with
        the sample axis left unknown in its signature (any N, any batch size) and, for a
        perturbed pass, its (G, S, P) grouped parameters with G and P unknown: one trace per
        group size S (part of ``kind``). A perturbation's per-sample extra (the third
        argument) has every axis unknown but its last: the others follow K (MuFidelity's
        (N, K, g, g) masks), which must not re-trace; the last is known, so that ``prepare``
        can check it against the inputs as it is traced (ROAD's (N, D) noise, D the size of
        the model's first input: another input's D, unknown, failed in a reshape when run)."""
        signature = tf.nest.map_structure(
            lambda t: tf.TensorSpec((None, *t.shape[1:]), t.dtype), arguments
        )
        if len(signature) == 3:
            shape = signature[2].shape.as_list()
            signature = (*signature[:2], tf.TensorSpec([None] * (len(shape) - 1) + shape[-1:], signature[2].dtype))
        key = (kind, tuple((tuple(spec.shape.as_list()[1:]), spec.dtype.name) for spec in tf.nest.flatten(signature)))
        function = self._compiled.get(key)
        if function is None:
            extra = [] if perturbation is None else [tf.TensorSpec((None, kind[3], None), tf.float32)]
            batch_size = [] if kind == "plain" else [tf.TensorSpec((), tf.int64)]  # plain: one batch
            function = self._compiled.setdefault(
                key, tf.function(self._graph(kind, perturbation), input_signature=[*signature, *extra, *batch_size])
            )
        return function

    def _graph(self, kind: Any, perturbation: Perturbation | None) -> Callable:
        """A function of this pass alone. TensorFlow counts traces per code object (a closure
        shares its code with every other) but per object for a ``functools.partial``: each
        ``AveragesCam`` traces its own passes once, which is no retracing to warn about."""
        if kind == "plain":

            def plain_pass(batch: tuple) -> list:
                self.trace_count += 1
                return self.steps.plain(batch)

            return functools.partial(plain_pass)

        if kind == "masked":

            def masked_pass(inputs: tuple, cams: tuple, batch_size: tf.Tensor) -> list:
                self.trace_count += 1
                return self._loop(batch_slices((inputs, cams), batch_size), self.steps.masked)

            return functools.partial(masked_pass)

        def perturbed_pass(inputs: tuple, cams: tuple, parameters: tf.Tensor, batch_size: tf.Tensor, *extra: tf.Tensor) -> list:
            self.trace_count += 1

            def step(batch: tuple) -> list:
                return self.steps.perturbed(batch, perturbation, parameters, self.output_dtypes)

            return self._loop(batch_slices((inputs, cams, *extra), batch_size), step)

        if kind[2]:  # with the per-sample extra: (inputs, cams, extra, parameters, batch_size)

            def with_extra(inputs: tuple, cams: tuple, extra: tf.Tensor, parameters: tf.Tensor, batch_size: tf.Tensor) -> list:
                return perturbed_pass(inputs, cams, parameters, batch_size, extra)

            return functools.partial(with_extra)
        return functools.partial(perturbed_pass)

    def _loop(self, dataset: tf.data.Dataset, step: Callable) -> list:
        """Every batch through ``step`` in a graph loop; outputs concatenated on the device."""
        iterator = iter(dataset)
        n_batches = tf.cast(dataset.cardinality(), tf.int32)
        arrays = tuple(
            tf.TensorArray(dtype, size=n_batches, infer_shape=False) for dtype in self.output_dtypes
        )

        def body(index, arrays):
            outputs = step(iterator.get_next())
            return index + 1, tuple(ta.write(index, out) for ta, out in zip(arrays, outputs))

        _, arrays = tf.while_loop(lambda index, _: index < n_batches, body, (tf.constant(0), arrays))
        return [ta.concat() for ta in arrays]


class DistributedPasses:
    """The same passes on a ``tf.distribute`` strategy: each replica runs its share of every
    batch (the inputs, the CAMs and a perturbation's per-sample extra travel together), and
    the outputs of all N samples come back in the inputs' order.

    A perturbed pass runs :meth:`BatchStep.perturbed` (the K steps in a graph loop over their
    groups) on each replica, its (G, S, P) grouped parameters a tensor given to every replica:
    one trace per perturbation key, group size S and per-sample shapes, whatever K and the
    values."""

    def __init__(self, steps: BatchStep, strategy: tf.distribute.Strategy) -> None:
        self.steps = steps
        self.strategy = strategy
        self._plain = ReplicaLoop(strategy, steps.plain)
        self._masked = ReplicaLoop(strategy, steps.masked)
        self._perturbed: dict[Any, ReplicaLoop] = {}
        self._lock = threading.Lock()

    @property
    def trace_count(self) -> int:
        loops = [self._plain, self._masked, *self._perturbed.values()]
        return sum(loop.trace_count for loop in loops)

    def plain(self, inputs: list, batch_size: int) -> list:
        return list(self._plain.per_sample(batches(tuple(inputs), batch_size)))

    def masked(self, inputs: list, cams: list, batch_size: int) -> list:
        return list(self._masked.per_sample(batches((tuple(inputs), tuple(cams)), batch_size)))

    def perturbed(self, inputs: list, cams: list, batch_size: int, perturbation: Perturbation, parameters: Any,
                  extra: Any = None) -> list:
        """(K, N, ...) per output: every replica runs the K steps on its rows of each batch;
        the replicas' (B, K, ...) outputs are gathered along the sample axis, then swapped."""
        tensors = (tuple(inputs), tuple(cams)) + (() if extra is None else (extra,))
        grouped, order = grouped_parameters(perturbation, parameters)
        loop = self._perturbed_loop(perturbation, inputs, grouped.shape[1])
        return in_step_order(loop.per_sample(batches(tensors, batch_size), grouped), order)

    def _perturbed_loop(self, perturbation: Perturbation, inputs: list, size: int) -> ReplicaLoop:
        """One loop per perturbation key and group size S (what the traced code depends on),
        made at first use."""
        with self._lock:
            loop = self._perturbed.get((perturbation.key, size))
            if loop is None:
                output_dtypes = self.steps.output_dtypes(inputs)

                def step(batch: tuple, parameters: tf.Tensor) -> list:
                    return self.steps.perturbed(batch, perturbation, parameters, output_dtypes)

                loop = self._perturbed[perturbation.key, size] = ReplicaLoop(
                    self.strategy, step, [tf.TensorSpec((None, size, None), tf.float32)]
                )
            return loop
