"""The engine: the one path from ``evaluate(cams, score_function)`` to the numbers.

Every door (``camavg_tf.AveragesCam``, ``camavg_jax.AveragesCam``, the streams) runs these
steps, in this order, with these checks and messages:

1. check the arguments (options at construction; CAMs and score functions at each call);
2. copy the CAMs into arrays the engine owns and check their shapes and values;
3. run the model on the perturbed inputs (one compiled pass over the batches and the K steps
   of a :mod:`~camavg_core.perturbations` schedule: ``apply``, ``preprocess``, model,
   activation; the CAM mask of the averages is the one-step case), or reuse the outputs of the
   same CAM values and perturbation;
4. apply the score functions, afresh, to the plain and the perturbed outputs;
5. the checks of the scores against what the metrics need (once per vector), the metrics'
   terms and sums (:mod:`camavg_core.metrics`, :mod:`camavg_core.state`) and the result.

An adapter supplies only framework work (:class:`Adapter`): copying arrays into its own
framework, the compiled pass, and bringing the (N,) scores back to the host.

Nothing here can go stale. The model's outputs on the inputs are computed once, from the
engine's own copy of the inputs, together with the adapter's :meth:`Adapter.model_version`;
each call asks for the version again and, when it differs (weights set, an activation
swapped), computes the outputs afresh and drops the masked outputs of the old model. Each call
copies the CAMs at call time; the cache holds one item per perturbation key (the averages' CAM
mask, deletion, ...): the perturbed outputs of the last CAM set under that perturbation, keyed
by that copy's values, the parameters, the per-sample data and the model version (never by an
object's identity); an item is replaced whole and the dict with it, so threads sharing an engine
each get their own numbers, and one ``evaluate`` of several metrics runs each pass once. Score functions are applied on
every call, so a score function that reads changing state is read again. No buffer is reused
across calls or lent out.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Callable, NamedTuple, Protocol

import numpy as np

from camavg_core import validation
from camavg_core.backends import Backend, work_dtype
from camavg_core.imputation import DEFAULT_FRACTIONS, DEFAULT_NOISE, Road, outside_default_noise_range
from camavg_core.masking import cam_maps, cam_summary, check_cam_maps, check_cam_shapes, finite_rows
from camavg_core.metrics import (
    AVERAGE_DROP,
    AVERAGE_GAIN,
    AVERAGE_INCREASE,
    Metric,
    check_scores,
    deletion_metric,
    insertion_metric,
    mufidelity_metric,
    on_cam_mask,
    resolve_metrics,
    road_metric,
    score_requirement,
)
from camavg_core.perturbations import CAM_MASK, Perturbation, pixel_count, step_parameters
from camavg_core.state import MethodResults, Result, summarize_checked, summarize_measured
from camavg_core.scoring import as_score_list, summed_scores

#: Samples per forward pass when the user gives none (Keras' ``predict`` default).
DEFAULT_BATCH_SIZE = 32


class Options(NamedTuple):
    """What a masked pass depends on besides the model, the inputs and the CAMs."""

    activation: str | None = None
    data_format: str = "channels_last"
    normalize: bool = False
    multi_input: bool = False
    preprocess: Callable | None = None


class Adapter(Protocol):
    """The framework work an engine needs: one per framework (``camavg_tf``, ``camavg_jax``).

    An adapter's compiled passes are its own (never shared through a cache keyed by the
    model): a trace fixes what the model's Python code did when it ran, so a new adapter
    runs the model as it is now.
    """

    backend: Backend

    def own(self, array: Any, dtype: str, name: str) -> Any:
        """A fresh array of the framework, of ``dtype``, that shares no memory with ``array``.
        ``array`` is the framework's own array, or anything NumPy reads (already checked)."""

    def input_dtype(self, index: int, dtype: np.dtype) -> str:
        """The dtype model input ``index`` takes, for inputs that came as ``dtype``."""

    def run(self, inputs: list, cams: list | None, options: Options, batch_size: int,
            perturbation: Perturbation | None = None, extra: Any = None) -> list:
        """The model's outputs (one array per model output, on the device): without ``cams``,
        on the inputs, (N, ...) each; with ``cams``, on the inputs perturbed by ``perturbation``
        (:data:`~camavg_core.perturbations.CAM_MASK` when None), (K, N, ...) each.

        ``extra``: the perturbation's per-sample data (:meth:`Engine.per_sample`), an (N, ...)
        array of the framework, batched with the inputs and the CAMs and given to
        ``prepare(backend, x, cams, extra)`` as the batch's rows; None: ``prepare(backend, x,
        cams)``.

        One compiled pass: for each batch, ``prepare`` once, then the K steps (``apply``,
        ``preprocess``, the model, the activation), one perturbed batch at a time. The step
        parameters (:func:`~camavg_core.perturbations.step_parameters`) enter as a tensor: one
        trace per ``(perturbation.key, options, per-sample shapes)``, whatever K and the values."""

    def to_host(self, scores: Any) -> np.ndarray:
        """(N,) scores as a float64 NumPy array."""

    def output_kind(self) -> str | None:
        """``'logits'`` when the model's own layers say its outputs are logits (a linear
        output layer), ``'probabilities'`` when they say probabilities, None when unknown.
        Read afresh at each call: an output layer's activation may be swapped in place.
        An adapter that can name that layer may add ``logits_message(metrics) -> str``, the
        message drop and gain then raise (default :func:`validation.linear_output_layer`)."""

    def model_version(self) -> Any:
        """A value that stays equal (``==``) while the model computes the same function, and
        changes when its weights or structure change; None where the adapter cannot look
        inside the model (a plain function), which then counts as never changing.

        The engine asks at construction and at every call; on a change it runs the plain pass
        again and drops its masked outputs, so no call is answered for an old model. It must
        cost little beside a forward pass: e.g. a few float64 sums of the weights reduced on
        the device (values, squares, a fixed pseudo-random projection) and the identities of
        the layers, their activations and variables. When the structure changed, the adapter
        re-traces its compiled passes (``run`` must not serve an old trace).
        """


class CamSet(NamedTuple):
    """CAMs the engine owns: one array per model input, non-finite values zeroed, and which
    samples had them (skipped under ``nan_policy='omit'``)."""

    arrays: tuple
    nonfinite: np.ndarray
    normalize: bool


class PassKey(NamedTuple):
    """What a perturbed pass computes besides the CAMs and the model, by value: the
    perturbation's key, its (K, P) parameters (dtype, shape and bytes) and a digest of its
    per-sample data (empty when it has none). Two perturbation objects built apart but equal
    in these give one key, so they share one pass; an object's identity never enters it (an
    ``id`` is reused once its object is collected)."""

    key: Any
    parameters: bytes
    extra: bytes


class _PerturbedOutputs(NamedTuple):
    """The cache's one entry: the (K, N, ...) outputs of a CAM set under a perturbation, keyed
    by that CAM set, the perturbation's :class:`PassKey`, and the model version."""

    version: Any
    cams: CamSet
    pass_key: PassKey
    outputs: list


#: ``perturbed_outputs``' default version: ask the adapter (callers that just did pass theirs)
_ASK = object()


class _PlainOutputs(NamedTuple):
    """The model's outputs on the inputs and the model version they were computed with."""

    version: Any
    outputs: list


def as_list(value: Any) -> list:
    """Model inputs, outputs or CAM arrays as a list: one array becomes a list of one."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def model_outputs(outputs: Any, argument: str) -> list:
    """A model's outputs as a list (one array per output); a dict is refused, naming its
    keys: camavg cannot know which entry the score functions read, or in which order."""
    if isinstance(outputs, dict):
        raise TypeError(validation.outputs_are_a_dict(argument, [str(k) for k in outputs]))
    return as_list(outputs)


def apply_activation(outputs: list, activation: str | None, backend: Backend) -> list:
    """Each output in its score dtype (float32; float64 stays: never float16 or bfloat16),
    then ``activation``: ``'softmax'`` over the last axis or ``'sigmoid'`` (None and
    ``'identity'`` leave the values as they are)."""
    outputs = [backend.astype(backend.asarray(out), work_dtype(backend.dtype_name(out))) for out in outputs]
    if activation in ("softmax", "sigmoid"):
        return [getattr(backend, activation)(out) for out in outputs]
    return outputs


def check_output_rows(outputs: list, batch_size: int, argument: str) -> None:
    """Every output of a batch's pass has one row per sample, shape (batch, ...)."""
    for out in outputs:
        shape = getattr(out, "shape", None)
        if shape is None or len(shape) == 0 or shape[0] != batch_size:
            seen = type(out).__name__ if shape is None else tuple(shape)
            raise ValueError(validation.not_one_row_per_sample(argument, seen, batch_size))


def prepare_batch(backend: Backend, perturbation: Perturbation, options: Options, batch_inputs: Any,
                  batch_cams: Any, extra: Any = ()) -> list:
    """``perturbation.prepare`` of each input of a batch, with that input's CAMs as
    :func:`~camavg_core.masking.cam_maps` makes them (resized, normalised when asked, clipped)
    and ``extra``, the per-sample data's rows when the perturbation has some."""
    return [
        perturbation.prepare(backend, x, cam_maps(x, cams, data_format=options.data_format,
                                                  normalize=options.normalize, backend=backend), *extra)
        for x, cams in zip(batch_inputs, batch_cams)
    ]


def as_host_array(array: Any, name: str) -> np.ndarray:
    """``array`` as a NumPy array of numbers (not yet copied), or a clear error.

    Every form NumPy reads is accepted: arrays (views, any strides), ``memoryview``, nested
    lists, objects with ``__array__`` (other frameworks' tensors). Anything else is refused
    with a ``TypeError`` naming the argument.
    """
    if array is None or isinstance(array, (str, bytes, dict, set)):
        raise TypeError(validation.not_an_array(name, array))
    try:
        host = np.asarray(array)
    except (TypeError, ValueError) as error:  # ragged lists, objects NumPy cannot read
        raise TypeError(validation.unreadable_array(name, error)) from None
    if not validation.is_real_dtype(host.dtype):
        raise TypeError(validation.not_numbers(name, host.dtype))
    return host


class Engine:
    """One model, its inputs and their outputs; every evaluation of CAMs goes through here."""

    def __init__(self, adapter: Adapter, inputs: Any, *, batch_size: int | None, nan_policy: str,
                 level: float, options: Options, watch_model: bool = True, offset: int = 0) -> None:
        """``watch_model=False`` skips :meth:`Adapter.model_version` for an engine that answers
        one call right after it is built (a stream's batch): nothing can have changed.
        ``offset``: the global index of the first sample (a stream's count of samples already
        seen), from which a perturbation draws its per-sample randomness."""
        validation.check_options(
            activation=options.activation, nan_policy=nan_policy, data_format=options.data_format,
            level=level, normalize=options.normalize, batch_size=batch_size,
            preprocess=options.preprocess,
        )
        self.adapter = adapter
        self.backend = adapter.backend
        self.options = options
        self.nan_policy = nan_policy
        self.level = level
        self.batch_size = int(batch_size or DEFAULT_BATCH_SIZE)
        self.inputs, self.bad_inputs = self.own_inputs(inputs)
        self.n = int(self.backend.shape(self.inputs[0])[0])
        self.watch_model = watch_model
        self.offset = int(offset)
        self._plain = self._run_plain(self._model_version())  # replaced whole, as are the cache entries
        # one entry per perturbation key (the averages' mask, deletion, ...), each replaced whole
        self._cache: dict = {}
        self._warned = threading.Event()
        self._noise_checked = threading.Event()

    @property
    def outputs(self) -> list:
        """The model's outputs on the inputs (one array per model output), as of the last call."""
        return self._plain.outputs

    def _model_version(self) -> Any:
        return self.adapter.model_version() if self.watch_model else None

    def _run_plain(self, version: Any) -> _PlainOutputs:
        return _PlainOutputs(version, self.adapter.run(self.inputs, None, self.options, self.batch_size))

    def plain_outputs(self) -> _PlainOutputs:
        """The outputs on the inputs of the model as it is now: those computed before when the
        model version is the same, else one plain pass (its weights or structure changed)."""
        version = self._model_version()
        plain = self._plain
        if plain.version != version:
            plain = self._plain = self._run_plain(version)
        return plain

    # ----------------------------------------------------------------- the path
    def scores(self, cams: Any, score_function: Any, *, normalize: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(Y_c, O_c)``: (N,) float64 scores on the inputs and on the masked inputs."""
        plain = self.plain_outputs()
        functions = as_score_list(score_function, len(plain.outputs))
        cam_set = self.own_cams(cams, self.options.normalize if normalize is None else normalize)
        masked = self.perturbed_outputs(cam_set, CAM_MASK, version=plain.version)
        y_c = self.score(functions, plain.outputs, "score_function on the model's outputs")
        o_c = self.step_scores(functions, masked, "score_function on the masked inputs")[0]
        # a NaN input may hide behind max pooling or a ReLU: its scores are NaN all the same;
        # a non-finite CAM spoils only the masked score
        y_c[self.bad_inputs] = np.nan
        o_c[self.bad_inputs | cam_set.nonfinite] = np.nan
        return y_c, o_c

    def pass_key(self, perturbation: Perturbation) -> tuple[PassKey, np.ndarray | None]:
        """The :class:`PassKey` of ``perturbation`` for these inputs, and its per-sample data
        (None when it has none), which the pass needs beside the key."""
        parameters = self.step_parameters(perturbation)
        extra = self.per_sample(perturbation)
        # the seed is no part of the key (it changes no trace), so the data itself is compared
        digest = b""
        if extra is not None:  # hashed in place: no copy of data as large as the inputs
            hashed = hashlib.blake2b(f"{extra.dtype.str}{extra.shape}".encode(), digest_size=16)
            hashed.update(np.ascontiguousarray(extra))
            digest = hashed.digest()
        values = f"{parameters.dtype.str}{parameters.shape}".encode() + parameters.tobytes()
        return PassKey(perturbation.key, values, digest), extra

    def perturbed_outputs(self, cam_set: CamSet, perturbation: Perturbation = CAM_MASK, *, version: Any = _ASK,
                          keyed: tuple[PassKey, np.ndarray | None] | None = None) -> list:
        """The model's outputs on the inputs perturbed by ``perturbation`` with ``cam_set``:
        (K, N, ...) per model output. From the cache when the last call had the same CAM
        values, normalisation and :class:`PassKey` under the same model version (``version``:
        the model version the caller just read; by default asked afresh; ``keyed``: the
        caller's :meth:`pass_key` of ``perturbation``), else one compiled pass."""
        if version is _ASK:
            version = self.plain_outputs().version
        pass_key, extra = self.pass_key(perturbation) if keyed is None else keyed
        last = self._cache.get(perturbation.key)
        if (last is not None and last.version == version and last.pass_key == pass_key
                and self._same_cams(last.cams, cam_set)):
            return last.outputs
        options = self.options._replace(normalize=cam_set.normalize)
        # the mask goes as run's default: the four-argument call that wrappers of run know
        arguments = () if perturbation is CAM_MASK else (perturbation,)
        if extra is not None:
            arguments += (self.adapter.own(extra, extra.dtype.name, "the perturbation's per-sample data"),)
        outputs = self.adapter.run(self.inputs, list(cam_set.arrays), options, self.batch_size, *arguments)
        entry = _PerturbedOutputs(version, cam_set, pass_key, outputs)
        # a new dict, not an update in place: a thread reading the old one sees it whole
        self._cache = {**{k: v for k, v in self._cache.items() if v.version == version}, perturbation.key: entry}
        return outputs

    def measure(self, cams: Any, score_function: Any, metrics: tuple[Metric, ...], *,
                normalize: bool | None = None) -> tuple[np.ndarray, dict, dict, np.ndarray | None]:
        """``(Y_c, steps, extras, O_c)`` for metrics of any perturbation: the (N,) scores on the
        inputs; ``steps[name]``, the (K, N) scores of each metric's perturbation (one pass per
        :class:`PassKey`: the metrics whose perturbations are equal in value share it, the
        averages share the CAM mask); ``extras[name]``, the context of the metrics with an
        ``extras`` hook; and the CAM mask's (N,) scores when some metric uses it (else None)."""
        y_c, steps, extras, o_c, _ = self._measure(cams, score_function, metrics, normalize)
        return y_c, steps, extras, o_c

    def _measure(self, cams: Any, score_function: Any, metrics: tuple[Metric, ...],
                 normalize: bool | None) -> tuple[np.ndarray, dict, dict, np.ndarray | None, dict]:
        """:meth:`measure`, and its passes: ``{PassKey: (scores (K, N), [metrics])}``."""
        plain = self.plain_outputs()
        functions = as_score_list(score_function, len(plain.outputs))
        cam_set = self.own_cams(cams, self.options.normalize if normalize is None else normalize)
        y_c = self.score(functions, plain.outputs, "score_function on the model's outputs")
        y_c[self.bad_inputs] = np.nan
        steps, passes, o_c = {}, {}, None
        for metric in metrics:
            perturbation = CAM_MASK if on_cam_mask(metric) else metric.perturbation
            keyed = self.pass_key(perturbation)
            if keyed[0] not in passes:
                outputs = self.perturbed_outputs(cam_set, perturbation, version=plain.version, keyed=keyed)
                where = ("score_function on the masked inputs" if perturbation is CAM_MASK
                         else validation.perturbed_scores(metric.name))
                scores = self.step_scores(functions, outputs, where)
                # a NaN input spoils every score of its sample; a non-finite CAM the perturbed ones
                scores[:, self.bad_inputs | cam_set.nonfinite] = np.nan
                passes[keyed[0]] = (scores, [])
            scores, users = passes[keyed[0]]
            users.append(metric)
            steps[metric.name] = scores
            if perturbation is CAM_MASK:
                o_c = scores[0]
        extras = {m.name: m.extras(self, cam_set) for m in metrics if m.extras is not None}
        return y_c, steps, extras, o_c, passes

    def checked_measure(self, cams: Any, score_function: Any, metrics: tuple[Metric, ...], *,
                        normalize: bool | None = None) -> tuple[np.ndarray, dict, dict, np.ndarray | None]:
        """:meth:`measure`, then the door's one check of each score vector (the inputs' and
        each pass's) against what the metrics that read it need."""
        self.warn_if_road_noise_off_scale(metrics)
        y_c, steps, extras, o_c, passes = self._measure(cams, score_function, metrics, normalize)
        self.check_summed_scores(score_function, y_c, np.concatenate([v.ravel() for v, _ in passes.values()]),
                                 metrics)
        check_scores(y_c, metrics, "Y_c")
        for values, users in passes.values():
            name = "O_c" if on_cam_mask(users[0]) else f"the {users[0].name} scores"
            check_scores(values.ravel(), tuple(users), name)
        return y_c, steps, extras, o_c

    def per_sample(self, perturbation: Perturbation) -> np.ndarray | None:
        """``perturbation.per_sample(indices, x_shape)`` (None when it has no such method): host
        data drawn per sample from its global index, ``offset`` .. ``offset + N - 1``, so that
        a sample gets the same data in memory, in a stream and in any batch size; checked to
        be an (N, ...) array of numbers."""
        per_sample = getattr(perturbation, "per_sample", None)
        if per_sample is None:
            return None
        indices = np.arange(self.offset, self.offset + self.n, dtype=np.int64)
        extra = per_sample(indices, tuple(self.backend.shape(self.inputs[0])))
        if extra is None:
            return None
        extra = np.asarray(extra)
        if extra.ndim < 1 or extra.shape[0] != self.n or not validation.is_real_dtype(extra.dtype):
            raise ValueError(validation.bad_per_sample(perturbation, self.n, extra))
        return extra

    def step_parameters(self, perturbation: Perturbation) -> np.ndarray:
        """The (K, P) parameters of ``perturbation`` for these inputs: those of the first
        input's H * W, which every input's pass takes. Refused where another input's H * W
        gives other parameters (the pixel counts of Deletion, Insertion and ROAD): the steps
        would remove another share of that input's pixels (until 2026-12-06, silently)."""
        counts = [pixel_count(self.backend.shape(x), self.options.data_format) for x in self.inputs]
        parameters = step_parameters(perturbation, counts[0])
        for index, count in enumerate(counts):
            if count != counts[0] and not np.array_equal(step_parameters(perturbation, count), parameters):
                raise ValueError(validation.steps_of_another_size(perturbation, index, count, counts[0]))
        return parameters

    def step_scores(self, functions: list, outputs: list, where: str = "score_function on the perturbed inputs") -> np.ndarray:
        """(K, N) float64 scores of (K, N, ...) outputs: the score functions applied to each
        step's outputs on the device; only the scores reach the host."""
        steps = int(self.backend.shape(outputs[0])[0])
        rows = [summed_scores(functions, [out[step] for out in outputs], self.n, self.backend) for step in range(steps)]
        scores = self.adapter.to_host(rows[0] if steps == 1 else self.backend.stack(rows)).reshape(steps, self.n)
        for row in scores:
            validation.check_scores_finite(row, where, self.nan_policy)
        return scores

    def score(self, functions: list, outputs: list, where: str) -> np.ndarray:
        """Score functions applied to outputs on the device; only (N,) scores reach the host."""
        scores = self.adapter.to_host(summed_scores(functions, outputs, self.n, self.backend))
        validation.check_scores_finite(scores, where, self.nan_policy)
        return scores

    def check_scores(self, y_c: np.ndarray, o_c: np.ndarray, metrics: tuple[Metric, ...]) -> None:
        """The door's one check of the scores against what ``metrics`` need of them (the
        engine's scores are (N,) float64 vectors, their finiteness checked in :meth:`score`)."""
        check_scores(y_c, metrics, "Y_c")
        check_scores(o_c, metrics, "O_c")

    def result(self, y_c: np.ndarray, o_c: np.ndarray, metrics: tuple[Metric, ...]) -> Result:
        """Scores checked by :meth:`check_scores`, summed: no check again."""
        return summarize_checked(y_c, o_c, metrics, level=self.level)

    def check_summed_scores(self, score_function: Any, y_c: np.ndarray, o_c: np.ndarray,
                            metrics: tuple[Metric, ...]) -> None:
        """A sum of several outputs' scores may exceed 1 although each output is a
        probability: say that, not "logits"."""
        needing, _ = score_requirement(metrics)
        if needing and isinstance(score_function, (list, tuple)) and len(score_function) > 1:
            high = float(np.nanmax(np.concatenate([y_c, o_c]), initial=-np.inf))
            if high > 1.0:
                raise ValueError(validation.summed_scores_above_one(needing, len(score_function), high))

    # ----------------------------------------------------------------- inputs and CAMs
    def own_inputs(self, inputs: Any) -> tuple[list, np.ndarray]:
        """The engine's copies of the inputs, in the model's input dtypes; and (N,) flags of
        the samples that hold NaN or infinity (an error under ``nan_policy='raise'``)."""
        arrays = list(inputs) if self.options.multi_input else [inputs]
        if not arrays:
            raise ValueError(validation.empty_input_list())
        owned, flags_per_input = [], []
        for index, array in enumerate(arrays):
            name = f"inputs[{index}]" if self.options.multi_input else "inputs"
            native = self.backend.is_appropriate_type(array)
            host = None if native else as_host_array(array, name)
            shape = tuple(self.backend.shape(array)) if native else host.shape
            if len(shape) < 2:
                raise ValueError(validation.no_batch_axis(name, shape))
            validation.check_nonempty(shape[0], name)
            dtype = self.adapter.input_dtype(index, np.dtype(self.backend.to_numpy_dtype(array)) if native else host.dtype)
            tensor = self.adapter.own(array if native else host, dtype, name)
            owned.append(tensor)
        validation.check_same_count([int(self.backend.shape(t)[0]) for t in owned])
        for index, tensor in enumerate(owned):
            name = f"inputs[{index}]" if self.options.multi_input else "inputs"
            rows, _ = finite_rows(tensor, self.backend)
            flags_per_input.append(validation.check_finite_samples(rows, name, self.nan_policy))
        return owned, np.logical_or.reduce(flags_per_input)

    def own_cams(self, cams: Any, normalize: bool) -> CamSet:
        """The engine's copy of the CAMs, one array per model input, checked."""
        if not isinstance(normalize, (bool, np.bool_)):
            raise TypeError(validation.bad_normalize(normalize))
        cam_list = validation.cams_per_input(cams, len(self.inputs), self.options.multi_input)
        arrays, nonfinite = [], np.zeros(self.n, dtype=bool)
        for cam, x in zip(cam_list, self.inputs):
            native = self.backend.is_appropriate_type(cam)
            host = None if native else as_host_array(cam, "cams")
            work = self.backend.compute_dtype(x)
            owned = self.adapter.own(cam if native else host, work, "cams")
            maps = check_cam_shapes(x, owned, self.options.data_format, self.backend)
            check = check_cam_maps(maps, self.backend, normalize=normalize, nan_policy=self.nan_policy)
            if not normalize and 0.0 < check.high < validation.FAINT_CAMS:
                # inside [0, 1], so not an error, but masking with them blacks out every image
                validation.warn(validation.faint_cams(check.high))
            if check.nonfinite.any():  # only under 'omit': zero them, skip their samples
                nonfinite |= check.nonfinite
                owned = self.backend.where(self.backend.isfinite(owned), owned, 0.0)
            arrays.append(owned)
        return CamSet(tuple(arrays), nonfinite, bool(normalize))

    def _same_cams(self, kept: CamSet, new: CamSet) -> bool:
        # another CAM method differs in its first map already: compare that first, cheaply
        return kept.normalize == new.normalize and all(
            self.backend.all_equal(a[:1], b[:1]) and self.backend.all_equal(a, b)
            for a, b in zip(kept.arrays, new.arrays)
        )

    # ----------------------------------------------------------------- logits
    def check_probability_outputs(self, metrics: tuple[Metric, ...]) -> None:
        """Drop and gain need probabilities: refuse a model whose own output layer says it
        returns logits, unless the user named an activation (values may look like
        probabilities by chance; the layer does not lie)."""
        needing, _ = score_requirement(metrics)
        if needing and self.options.activation is None and self.adapter.output_kind() == "logits":
            message = getattr(self.adapter, "logits_message", validation.linear_output_layer)
            raise ValueError(message(needing))

    def warn_if_logits(self) -> None:
        """Average Increase is defined for any score, but its value depends on the activation:
        say so once per engine for a model with a linear output layer."""
        if self.options.activation is None and self.adapter.output_kind() == "logits" and not self._warned.is_set():
            self._warned.set()
            validation.warn(validation.increase_on_logits())

    def warn_if_road_noise_off_scale(self, metrics: tuple[Metric, ...]) -> None:
        """ROAD's default noise is in the units of [0, 1] pixels: on inputs outside [0, 1] it
        is no longer the original's (0.01 of 255 on [0, 255] pixels, where 2.55 is). Say so
        once per engine (:class:`~camavg_core.validation.RoadNoiseWarning`; the command line
        refuses such inputs unless given ``--road-noise``). The inputs' extremes are read
        once, on the device, at the first such ROAD."""
        if self._noise_checked.is_set() or not any(
                isinstance(m.perturbation, Road) and m.perturbation.noise == DEFAULT_NOISE for m in metrics):
            return
        self._noise_checked.set()
        # the extremes of the finite values (a NaN sample under nan_policy='omit' is skipped anyway)
        if any(outside_default_noise_range(*cam_summary(x, self.backend)[1:]) for x in self.inputs):
            validation.warn(validation.road_noise_off_scale(), validation.RoadNoiseWarning)


class AveragesCamBase:
    """The seed's API (``average_drop``, ``average_increase``, ``_get_scores``) and
    ``evaluate``, on an :class:`Engine`; the adapters' ``AveragesCam`` build the engine."""

    engine: Engine
    model: Any
    inputs: Any

    @property
    def n(self) -> int:
        return self.engine.n

    def _engine_arguments(self, cams: Any, score_function: Any) -> tuple[Any, Any]:
        """The CAMs and the score function in the forms the engine reads, from those the
        framework's users hold (here: as given; PyTorch reads torchcam's lists of CAMs and
        pytorch-grad-cam's per-sample targets). Called first at the doors, so it must leave
        the engine's own forms as they are."""
        return cams, score_function

    def _get_scores(self, cams: Any, score_function: Callable, *, normalize: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(Y_c, O_c)``: NumPy arrays of shape (N,), scores on the inputs and on the inputs
        masked with ``cams``. Several calls with the same CAM values share one masked pass."""
        cams, score_function = self._engine_arguments(cams, score_function)
        return self.engine.scores(cams, score_function, normalize=normalize)

    def average_drop(self, cams: Any, score_function: Callable, return_vector: bool = False, *, normalize: bool | None = None):
        r"""Average Drop in percent, :math:`100 \frac{1}{N}\sum_i \frac{\max(0, Y_i - O_i)}{Y_i + \epsilon}`.

        Returns ``value``, or ``(value, Y_c, O_c)`` with ``return_vector=True``.
        """
        return self._one_metric(AVERAGE_DROP, cams, score_function, return_vector, normalize)

    def average_increase(self, cams: Any, score_function: Callable, return_vector: bool = False, *, normalize: bool | None = None):
        r"""Average Increase in percent, :math:`100 \frac{1}{N}\sum_i [Y_i < O_i]`.

        Returns ``value``, or ``(value, Y_c, O_c)`` with ``return_vector=True``.
        """
        return self._one_metric(AVERAGE_INCREASE, cams, score_function, return_vector, normalize)

    def average_gain(self, cams: Any, score_function: Callable, return_vector: bool = False, *, normalize: bool | None = None):
        r"""Average Gain in percent, :math:`100 \frac{1}{N}\sum_i \frac{\max(0, O_i - Y_i)}{1 - Y_i + \epsilon}`.

        Returns ``value``, or ``(value, Y_c, O_c)`` with ``return_vector=True``.
        """
        return self._one_metric(AVERAGE_GAIN, cams, score_function, return_vector, normalize)

    def _one_metric(self, metric: Metric, cams: Any, score_function: Any, return_vector: bool,
                    normalize: bool | None) -> Any:
        result = self.evaluate(cams, score_function, metrics=(metric,), normalize=normalize)
        value = result.values[metric.name]
        return (value, result.y_c, result.o_c) if return_vector else value

    def evaluate(self, cams: Any, score_function: Callable, metrics: Any = None, *,
                 normalize: bool | None = None) -> Result:
        """Each metric (names or :class:`~camavg_core.metrics.Metric` descriptions; default
        the three averages), its interval, n and the score vectors: one masked pass.

        The door of the path: the model's layers are checked against what the metrics need
        of the scores, then each score vector once (:meth:`Engine.check_scores`)."""
        cams, score_function = self._engine_arguments(cams, score_function)
        described = resolve_metrics(metrics)
        if not score_requirement(described)[0]:  # the metrics take any score, logits too
            self.engine.warn_if_logits()
        self.engine.check_probability_outputs(described)
        if not all(on_cam_mask(m) for m in described):
            return self._evaluate_perturbed(cams, score_function, described, normalize)
        y_c, o_c = self._get_scores(cams, score_function, normalize=normalize)
        self.engine.check_summed_scores(score_function, y_c, o_c, described)
        self.engine.check_scores(y_c, o_c, described)
        return self.engine.result(y_c, o_c, described)

    def _evaluate_perturbed(self, cams: Any, score_function: Any, described: tuple[Metric, ...],
                            normalize: bool | None) -> Result:
        """:meth:`evaluate` of metrics beside the CAM mask: one pass per perturbation, each
        vector of scores checked once against what its metrics need."""
        engine = self.engine
        y_c, steps, extras, o_c = engine.checked_measure(cams, score_function, described, normalize=normalize)
        return summarize_measured(y_c, steps, extras, described, level=engine.level, o_c=o_c)

    def _curve_metric(self, metric: Metric, cams: Any, score_function: Any, return_vector: bool,
                      normalize: bool | None) -> Any:
        result = self.evaluate(cams, score_function, metrics=(metric,), normalize=normalize)
        value = result.values[metric.name]
        if not return_vector:
            return value
        return (value, result.terms[metric.name], *result.curves[metric.name])

    def deletion(self, cams: Any, score_function: Callable, *, steps: int = 10, baseline: Any = 0.0,
                 max_fraction: float = 1.0, return_vector: bool = False, normalize: bool | None = None):
        r"""RISE's Deletion AUC, a fraction in [0, 1], lower is better: the mean over samples of
        :math:`(s_0/2 + s_1 + \dots + s_{K-1} + s_K/2)/K`, :math:`s_i` the target's probability
        with the :math:`k_i` most salient pixels set to ``baseline``
        (:func:`~camavg_core.metrics.deletion_metric`). Returns ``value``, or ``(value, AUCs
        (N,), curves (N, steps + 1))`` with ``return_vector=True``."""
        metric = deletion_metric(steps, baseline, max_fraction)
        return self._curve_metric(metric, cams, score_function, return_vector, normalize)

    def insertion(self, cams: Any, score_function: Callable, *, steps: int = 10, baseline: Any = 0.0,
                  max_fraction: float = 1.0, return_vector: bool = False, normalize: bool | None = None):
        """RISE's Insertion AUC, a fraction in [0, 1], higher is better (see :meth:`deletion`):
        from the baseline, the most salient pixels restored first."""
        metric = insertion_metric(steps, baseline, max_fraction)
        return self._curve_metric(metric, cams, score_function, return_vector, normalize)

    def mufidelity(self, cams: Any, score_function: Callable, *, grid_size: int = 9, subset_fraction: float = 0.2,
                   n_samples: int = 200, baseline: float = 0.0, correlation: str = "spearman", seed: int = 0,
                   return_vector: bool = False, normalize: bool | None = None):
        """MuFidelity in [-1, 1], higher is better, for any score
        (:func:`~camavg_core.metrics.mufidelity_metric`); undefined samples are left out and
        counted (``evaluate(..., metrics=["mufidelity"]).undefined``). Returns ``value``, or
        ``(value, correlations (N,), subset scores (N, n_samples))``."""
        metric = mufidelity_metric(grid_size, subset_fraction, n_samples, baseline, correlation, seed)
        return self._curve_metric(metric, cams, score_function, return_vector, normalize)

    def road(self, cams: Any, score_function: Callable, *, fractions: Any = DEFAULT_FRACTIONS,
             noise: float = DEFAULT_NOISE, seed: int = 0, selection: str = "rank", return_vector: bool = False,
             normalize: bool | None = None):
        """ROAD, (mean LeRF - mean MoRF) / 2 of the target's probability, higher is better
        (:func:`~camavg_core.metrics.road_metric`). Returns ``value``, or ``(value, terms (N,),
        MoRF curves (N, F), LeRF curves (N, F))``."""
        metric = road_metric(fractions, noise, seed, selection)
        return self._curve_metric(metric, cams, score_function, return_vector, normalize)

    def evaluate_many(self, cams_sets: Any, score_function: Callable, metrics: Any = None, *,
                      normalize: bool | None = None) -> Any:
        """One :class:`Result` per CAM set, for comparing CAM methods on the same inputs.

        ``cams_sets`` is ``{name: cams}`` (results by name, in the same order) or a list of
        CAM sets (a list of results). Each CAM set costs one masked pass.
        """
        if isinstance(cams_sets, dict):
            return {name: self.evaluate(cams, score_function, metrics, normalize=normalize)
                    for name, cams in cams_sets.items()}
        if not isinstance(cams_sets, (list, tuple)):
            raise TypeError(validation.bad_cam_sets(cams_sets))
        return [self.evaluate(cams, score_function, metrics, normalize=normalize) for cams in cams_sets]

    def compare(self, cams_sets: dict, score_function: Callable, metrics: Any = None, **options: Any) -> MethodResults:
        """Evaluate ``{name: cams}`` and compare the methods on the same samples: one
        :class:`Result` per method and the pairwise table (paired interval and test, Holm-
        adjusted per metric across the pairs); ``options`` go to
        :func:`~camavg_core.compare.compare_methods`. The averages are compared on their
        scores (ties by :func:`~camavg_core.compare.ties`), every other metric on its
        per-sample terms (a sample is a tie when all its scores are,
        :func:`~camavg_core.compare.curve_ties`), each in its direction and unit."""
        from camavg_core.compare import compare_methods, compare_results
        from camavg_core.state import on_common_samples

        if not isinstance(cams_sets, dict) or len(cams_sets) < 2:
            raise TypeError(validation.too_few_cam_sets())
        described = resolve_metrics(metrics)
        results = on_common_samples(self.evaluate_many(cams_sets, score_function, described), described)
        y_c = next(iter(results.values())).y_c
        options.setdefault("nan_policy", self.engine.nan_policy)
        options.setdefault("level", self.engine.level)
        averages = tuple(m for m in described if on_cam_mask(m))
        others = tuple(m for m in described if not on_cam_mask(m))
        table = None
        if averages:
            table = compare_methods(y_c, {name: r.o_c for name, r in results.items()}, metrics=averages, **options)
        if others:
            options.pop("nan_policy")  # the results' scores were checked at evaluate's door
            table = compare_results(results, others, averages_table=table, **options)
        return MethodResults(results, table)
