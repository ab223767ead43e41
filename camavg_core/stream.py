"""Streams: the engine fed batch by batch, in memory independent of N.

Each element of the stream is one batch ``(inputs, cams, targets)``. Every batch goes through
the same :class:`~camavg_core.engine.Engine` as an in-memory call (the same copies, checks,
compiled passes and messages), and only its sums enter a
:class:`~camavg_core.state.MetricState`, so the result equals the in-memory call on the
concatenated data.

A stream that stops (an exception in the user's generator, a bad batch, Ctrl-C) loses
nothing: the exception reaches the caller as itself, with a note naming the batch, and carries
a :class:`Checkpoint` of the batches counted so far in ``error.camavg_checkpoint``.
``resume=error.camavg_checkpoint`` skips those batches and goes on, giving exactly the numbers
of an uninterrupted run.

A resume is exact or refused. The counted batches are skipped by reading them again, so the
source must start again from its first batch: a re-created generator, a list, a ``Dataset``
that does not reshuffle. Refused, with a message saying how to go on: the very iterator the
stopped run read (it is past the counted batches), a generator that has already run, a source
that ends before the counted batches, a source whose first batch is not the first batch of the
stopped run (a cheap fingerprint: a hash of that one batch), counted batches that hold another
number of samples than were counted (a source cut into other batch sizes), a changed
``keep_vectors``, and a run that measures something else (:func:`run_digest`: other metrics or
settings, other pass options, a model with other weights).
The state, the batch count and the kept vectors are one immutable :class:`Checkpoint`, replaced
in a single assignment per batch, so an interrupt at any statement leaves a consistent one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import itertools
import weakref
from collections.abc import Iterator as IteratorABC
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import numpy as np

from camavg_core import validation
from camavg_core.engine import Adapter, Engine, Options
from camavg_core.backends import NumpyBackend
from camavg_core.compare import PairState, compare_methods, compare_results, comparison_table
from camavg_core.metrics import on_cam_mask, resolve_metrics
from camavg_core.state import Measured, MethodResults, MetricState, Result, measured_terms, on_common_samples
from camavg_core.scoring import stream_score

SCORES = ("categorical", "binary")


#: a stream's scores are (N,) float64 host vectors, checked by the engine: summed on the host
_HOST = NumpyBackend()


class Checkpoint(NamedTuple):
    """What a stream has counted: the state of its first ``batches`` batches, and their score
    vectors when the stream keeps them. For a stream of several CAM methods (``cams`` a dict
    in every batch), ``state`` and ``o_c`` are dicts by method and ``pairs`` holds a
    :class:`~camavg_core.pair_state.PairState` per pair of methods.

    What a resume checks against (None in a checkpoint made by hand, which is then not
    checked): ``keep_vectors``, the run's option; ``first_batch``, a hash of the stream's first
    batch; ``source``, the iterator the stopped run read, when it was an iterator; ``run``, a
    digest of what the run measured (:func:`run_digest`: its metrics and their settings, the
    pass options, ``nan_policy`` and, where the adapter can give one, the model's weights; not
    the score)."""

    state: Any
    batches: int
    y_c: tuple = ()
    o_c: Any = ()
    pairs: Any = None
    keep_vectors: bool | None = None
    first_batch: str | None = None
    source: Any = None
    run: str | None = None


class _Seen:
    """The iterator a stream read, for refusing it on resume: held weakly where Python allows
    (generators, user classes), else strongly (built-in iterators cannot be weakly referenced,
    and an id alone could be reused by a fresh iterator). It pickles as nothing: a checkpoint
    taken to another process cannot meet the same object there."""

    def __init__(self, source: Any = None) -> None:
        try:
            self._ref = weakref.ref(source)
        except TypeError:
            self._ref = lambda: source

    def __call__(self) -> Any:
        return self._ref()

    def __reduce__(self) -> tuple:
        return (_Seen, ())


#: elements hashed per array at most, evenly spaced: a reordered source changes almost every
#: element, and a large first batch (hundreds of images) then costs a few milliseconds, not a copy
_FINGERPRINT_ELEMENTS = 1 << 16


def fingerprint(batch: Any) -> str:
    """A hash of every array in a batch (dtype, shape and up to 65,536 evenly spaced elements):
    equal batches, equal hashes; a batch of other samples, another hash."""
    digest = hashlib.blake2b(digest_size=16)

    def add(value: Any) -> None:
        if isinstance(value, dict):
            for key in sorted(value, key=str):
                digest.update(str(key).encode())
                add(value[key])
        elif isinstance(value, (tuple, list)):
            for part in value:
                add(part)
        else:
            try:
                array = np.asarray(value)
            except (TypeError, ValueError):  # ragged or odd: the batch's checks will name it
                digest.update(repr(value).encode())
                return
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            array = np.ascontiguousarray(array.reshape(-1)[:: max(1, array.size // _FINGERPRINT_ELEMENTS)])
            digest.update(array.tobytes() if array.dtype != object else repr(array.tolist()).encode())

    add(batch)
    return digest.hexdigest()


def _name_of(value: Any) -> str:
    """A function by its module and qualified name (the same in another process), else repr."""
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    return repr(value)


def run_digest(adapter: Any, metrics: tuple, options: Options, nan_policy: str) -> str:
    """What a stream measures, as a hash that another process computes alike: the metrics and
    their settings (a ROAD's fractions, noise and seed), the pass options (activation, data
    format, normalize, preprocess by name), ``nan_policy`` and the adapter's
    :meth:`model_digest` where it has one (the weights' sums: a retrained model is another
    run). Not the score: a score function that failed may be mended for the resume, and
    ``'categorical'`` may stand for the function it replaces. A resume whose digest differs
    would add its sums to another run's."""
    model = getattr(adapter, "model_digest", None)
    parts = (
        tuple((m.name, m.settings) for m in metrics),
        (options.activation, options.data_format, bool(options.normalize), _name_of(options.preprocess)),
        nan_policy, model() if callable(model) else None,
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def check_resume(batches: Any, done: Checkpoint, keep_vectors: bool, run: Callable[[], str] | None = None) -> None:
    """Refuse a resume that could not skip exactly the counted batches, or that would add its
    sums to another run's (see the module's doc). ``run`` gives this call's :func:`run_digest`."""
    if done.batches and done.keep_vectors is not None and done.keep_vectors != keep_vectors:
        raise ValueError(validation.resume_keep_vectors_changed(done.keep_vectors, keep_vectors))
    if done.batches and done.run is not None and run is not None and run() != done.run:
        raise ValueError(validation.resume_other_run())
    if done.batches == 0 or not isinstance(batches, IteratorABC):
        return
    if inspect.isgenerator(batches) and inspect.getgeneratorstate(batches) != inspect.GEN_CREATED:
        state = "it is finished" if inspect.getgeneratorstate(batches) == inspect.GEN_CLOSED else "it is part-way"
        raise ValueError(validation.resume_started_generator(state))
    if done.source is not None and done.source() is batches:
        raise ValueError(validation.resume_same_iterator())


def skip_counted(iterator: Iterator, done: Checkpoint) -> Iterator:
    """Read and drop the counted batches, checking that the source has them, that its first
    batch is the first batch of the stopped run, and that they hold the samples it counted (a
    source cut into other batch sizes would count some samples twice, or never)."""
    rows = 0
    for index in range(done.batches):
        try:
            batch = next(iterator)
        except StopIteration:
            raise ValueError(validation.resume_source_too_short(done.batches, index)) from None
        if index == 0:
            check_first_batch(batch, done)
        rows += _batch_rows(batch)
    counted = _samples_seen(done.state)
    if done.batches and done.state is not None and rows != counted:
        raise ValueError(validation.resume_other_batches(done.batches, counted, rows))
    return iterator


def _batch_rows(batch: Any) -> int:
    """The samples of a batch ``(inputs, cams, targets)`` (0 where its shape says nothing)."""
    try:
        inputs = batch[0]
    except (TypeError, IndexError, KeyError):
        return 0
    return _rows(list(inputs) if isinstance(inputs, tuple) else inputs) or 0


def check_first_batch(batch: Any, done: Checkpoint) -> None:
    if done.first_batch is not None and fingerprint(batch) != done.first_batch:
        raise ValueError(validation.resume_other_first_batch())


def check_stream_options(score: Any, resume: Any) -> None:
    if not (callable(score) or score in SCORES):
        raise ValueError(validation.bad_stream_score(score, SCORES))
    if resume is not None and not isinstance(resume, Checkpoint):
        raise TypeError(validation.bad_resume(resume))


def _unpack(batch: Any) -> tuple[Any, Any, Any]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 3:
        raise TypeError(validation.bad_batch(batch))
    inputs, cams, targets = batch
    if validation.is_array_list(inputs):  # tf.data gives a multi-input model's inputs as a tuple
        inputs = list(inputs)
    if validation.is_array_list(cams):
        cams = list(cams)
    return inputs, cams, targets


def _rows(inputs: Any) -> int | None:
    """The samples in a batch, read from its first array's shape (None when it has none, or
    none yet: a nested list, an empty batch; the engine then batches by its default)."""
    shape = getattr(inputs[0] if isinstance(inputs, list) else inputs, "shape", None)
    try:
        rows = int(shape[0])
    except (TypeError, IndexError, ValueError):
        return None
    return rows if rows > 0 else None


def _samples_seen(state: Any) -> int:
    """Samples counted so far, skipped ones included: the global index of the next batch's first
    sample, from which a perturbation draws its per-sample randomness (resumes included)."""
    if state is None:
        return 0
    one = next(iter(state.values())) if isinstance(state, dict) else state
    return int(np.asarray(one.n)) + int(np.asarray(one.skipped))


def _check_target_count(targets: Any, n: int) -> None:
    count = int(np.shape(targets)[0]) if np.ndim(targets) else 0
    if count != n:
        raise ValueError(validation.target_count(n, count))


def _progress_bar(enabled: bool, total: int | None) -> tuple[Callable, Callable]:
    if not enabled:
        return (lambda: None), (lambda: None)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(validation.needs_tqdm()) from None
    bar = tqdm(total=total, unit="batch", desc="camavg")
    return (lambda: bar.update(1)), bar.close


def evaluate_stream(
    adapter: Adapter,
    batches: Iterable,
    *,
    score: Any = "categorical",
    options: Options,
    nan_policy: str = "raise",
    level: float = 0.95,
    keep_vectors: bool = False,
    progress: bool = False,
    resume: Checkpoint | None = None,
    total: int | None = None,
    skip: Callable[[Any, int], Iterator] | None = None,
    metrics: Any = None,
) -> Result | MethodResults:
    """Each metric (default: the three averages) over a stream of ``(inputs, cams, targets)`` batches.

    A batch's ``cams`` may be ``{name: cams}`` (the same names in every batch): the stream then
    returns a :class:`~camavg_core.state.MethodResults`, one result per method and the
    pairwise comparison of every pair (paired sign-flip test and interval on the kept scores,
    Holm-adjusted), equal to ``AveragesCam.compare`` on the concatenated data.

    Args:
        adapter: the framework's part (see :class:`~camavg_core.engine.Adapter`).
        batches: any iterable of batches.
        score: ``'categorical'``, ``'binary'`` or ``score(outputs, targets) -> (B,)``.
        options: the pass options (activation, data format, normalize, preprocess); a batch
            whose inputs are a list or tuple is a multi-input model's.
        keep_vectors: also return the (N,) score vectors (memory then grows with N).
        progress: a tqdm progress bar over the batches.
        resume: the :class:`Checkpoint` of a stopped run over the same data: its batches are
            skipped and its state is the start.
        total: the number of batches, for the progress bar, when known.
        skip: ``skip(batches, checkpoint)`` -> an iterator past the checkpoint's batches, having
            checked that it can skip them exactly (:func:`check_first_batch`); by default they
            are read and dropped (:func:`skip_counted`).
        metrics: metric names or :class:`~camavg_core.metrics.Metric` descriptions.
    """
    described = resolve_metrics(metrics)
    validation.check_options(
        activation=options.activation, nan_policy=nan_policy, data_format=options.data_format,
        level=level, normalize=options.normalize, preprocess=options.preprocess,
    )
    check_stream_options(score, resume)
    if isinstance(batches, (str, bytes)) or not isinstance(batches, Iterable):
        raise TypeError(validation.not_batches(batches))
    done = resume or Checkpoint(None, 0)
    digest = functools.cache(lambda: run_digest(adapter, described, options, nan_policy))
    check_resume(batches, done, keep_vectors, digest)
    if skip is not None:
        iterator = skip(batches, done)
    else:
        iterator = skip_counted(iter(batches), done)
    if isinstance(batches, IteratorABC):
        done = done._replace(source=_Seen(batches))
    counted = _Counted(done, keep_vectors, described)
    perturbed = not all(on_cam_mask(m) for m in described)
    advance, close = _progress_bar(progress, total)
    try:
        for batch in iterator:
            first_batch = fingerprint(batch) if counted.batches == 0 else None
            inputs, cams, targets = _unpack(batch)
            score_function = stream_score(score, targets)
            batch_options = options._replace(multi_input=validation.is_array_list(inputs))
            # a stream batch is one step of the compiled passes, plain and masked alike
            # built and used for this batch alone: nothing outlives it to go stale, so the
            # model's version (a pass over every weight) is not read twice per batch
            engine = Engine(adapter, inputs, batch_size=_rows(inputs), nan_policy=nan_policy, level=level,
                            options=batch_options, offset=_samples_seen(counted.state), watch_model=False)
            engine.check_probability_outputs(described)
            _check_target_count(targets, engine.n)
            if perturbed:
                # metrics beside the averages: each batch's terms, drawn from global indices
                def measured(method_cams: Any) -> Measured:
                    y, steps, extras, _ = engine.checked_measure(method_cams, score_function, described)
                    return measured_terms(y, steps, extras, described)

                scores = ({name: measured(c) for name, c in cams.items()} if isinstance(cams, dict)
                          else measured(cams))
            elif isinstance(cams, dict):
                scores = {name: engine.scores(method_cams, score_function) for name, method_cams in cams.items()}
                for y_c, o_c in scores.values():
                    engine.check_scores(y_c, o_c, described)
            else:
                scores = engine.scores(cams, score_function)
                engine.check_scores(*scores, described)
            counted.add(scores, first_batch)
            advance()
    except BaseException as error:
        checkpoint = counted.checkpoint()
        index = checkpoint.batches
        try:
            error.camavg_checkpoint = checkpoint
            if checkpoint.batches and checkpoint.run is None:
                # what this run measured, for its resume to compare: read once it has stopped,
                # after the checkpoint is attached (a second Ctrl-C here must not lose it)
                error.camavg_checkpoint = checkpoint._replace(run=digest())
        except AttributeError:  # an exception type without a __dict__
            pass
        except Exception:  # noqa: BLE001 - the run's own error is what the caller must see
            pass
        kept = f"The sums of batches 0..{index - 1} are kept" if index else "No batch was counted; the start is kept"
        error.add_note(
            f"camavg: the stream stopped in batch {index} (counting from 0). {kept} in "
            f"error.camavg_checkpoint: pass resume=error.camavg_checkpoint with the same data to "
            f"go on from batch {index}."
        )
        raise
    finally:
        close()
    return counted.result(level)


class _Counted:
    """The running sums of a stream (and its vectors when kept): one state per CAM method,
    one pair state per pair of methods for a stream of several.

    Everything counted is one immutable :class:`Checkpoint`, replaced whole once per batch,
    so there is no statement between "the sums include the batch" and "the count does"."""

    def __init__(self, done: Checkpoint, keep_vectors: bool, metrics: tuple) -> None:
        self.keep_vectors = keep_vectors
        self.metrics = metrics
        self.done = done._replace(keep_vectors=keep_vectors)

    @property
    def batches(self) -> int:
        return self.done.batches

    @property
    def state(self) -> Any:
        return self.done.state

    @property
    def pairs(self) -> Any:
        return self.done.pairs

    @property
    def y_c(self) -> tuple:
        return self.done.y_c

    @property
    def o_c(self) -> Any:
        return self.done.o_c

    def add(self, scores: Any, first_batch: str | None = None) -> None:
        several = isinstance(scores, dict)
        state, pairs, o_c = self.done.state, self.done.pairs, self.done.o_c
        if state is None:  # the first batch decides: one CAM method, or several by name
            names = list(scores) if several else None
            if several and len(names) < 2:
                raise ValueError(validation.one_method_dict())
            state = {name: MetricState.empty(self.metrics) for name in names} if several else MetricState.empty(self.metrics)
            pairs = {pair: PairState.empty(self.metrics) for pair in itertools.combinations(names, 2)} if several else None
            o_c = {name: () for name in names} if several else ()
        if several != isinstance(state, dict) or (several and list(scores) != list(state)):
            expected = list(state) if isinstance(state, dict) else "one array"
            raise ValueError(validation.other_methods(expected, list(scores) if several else "one array"))
        y_c = self.done.y_c
        if isinstance(next(iter(scores.values())) if several else scores, Measured):
            self._add_measured(scores, several, state, pairs, o_c, first_batch)
            return
        if several:
            batch_y = next(iter(scores.values()))[0]
            pairs = {
                (a, b): pair.add(batch_y, scores[a][1], scores[b][1], backend=_HOST)
                for (a, b), pair in pairs.items()
            }
            state = {name: state[name].add(y, o, backend=_HOST) for name, (y, o) in scores.items()}
            o_c = {name: o_c[name] + (scores[name][1],) for name in o_c}
        else:
            batch_y = scores[0]
            state = state.add(*scores, backend=_HOST)
            if self.keep_vectors:
                o_c = o_c + (scores[1],)
        # a stream of several methods keeps its (N,) scores (small) for the exact paired test
        if self.keep_vectors or several:
            y_c = y_c + (batch_y,)
        # one assignment: the batch counts whole (sums, vectors, count) or not at all
        self.done = self.done._replace(
            state=state, batches=self.done.batches + 1, y_c=y_c, o_c=o_c, pairs=pairs,
            first_batch=self.done.first_batch if first_batch is None else first_batch,
        )

    def _add_measured(self, scores: Any, several: bool, state: Any, pairs: Any, o_c: Any,
                      first_batch: str | None) -> None:
        """A batch of metrics beside the averages: the terms summed; a stream of several
        methods keeps each batch's terms and tie data (small beside the inputs) in ``o_c``
        for the in-memory comparison."""
        if several:
            state = {name: state[name].add_terms(m.terms, m.valid) for name, m in scores.items()}
            o_c = {name: o_c[name] + (scores[name],) for name in o_c}
            batch_y = next(iter(scores.values())).y
        else:
            state = state.add_terms(scores.terms, scores.valid)
            batch_y = scores.y
        y_c = self.done.y_c + (batch_y,) if self.keep_vectors or several else self.done.y_c
        self.done = self.done._replace(
            state=state, batches=self.done.batches + 1, y_c=y_c, o_c=o_c, pairs=pairs,
            first_batch=self.done.first_batch if first_batch is None else first_batch,
        )

    def checkpoint(self) -> Checkpoint:
        return self.done

    def result(self, level: float) -> Any:
        if self.state is None:
            raise ValueError(validation.empty_dataset())
        if not isinstance(self.state, dict):
            return self._one(self.state, self.o_c, level)
        if not all(on_cam_mask(m) for m in self.metrics):
            return self._measured_methods(level)
        results = {name: self._one(state, self.o_c[name], level) for name, state in self.state.items()}
        seen = sum(len(part) for part in self.y_c)
        first = next(iter(self.state.values())).to_numpy()
        if seen == first.n + first.skipped:  # every batch's scores kept: the in-memory comparison
            y_c = np.concatenate(self.y_c)
            o_c = {name: np.concatenate(parts) for name, parts in self.o_c.items()}
            with_vectors = {name: dataclasses.replace(r, y_c=y_c, o_c=o_c[name]) for name, r in results.items()}
            common = on_common_samples(with_vectors, self.metrics)
            if common is not with_vectors:  # some method left out a sample the others kept
                results = common if self.keep_vectors else {
                    name: dataclasses.replace(r, y_c=None, o_c=None) for name, r in common.items()}
            return MethodResults(results, compare_methods(y_c, o_c, level=level, nan_policy="omit", metrics=self.metrics))
        comparisons = {pair: state.result(level=level, names=pair) for pair, state in self.pairs.items()}
        return MethodResults(results, comparison_table(comparisons, level=level))

    def _measured_methods(self, level: float) -> MethodResults:
        """Several methods on metrics beside the averages: each method's result from its sums,
        with its kept terms, and the in-memory comparison of the concatenated terms."""
        results = {}
        for name, state in self.state.items():
            parts = self.o_c[name]
            terms = {m.name: np.concatenate([p.terms[m.name] for p in parts]) for m in self.metrics}
            paired = {m.name: np.concatenate([p.paired[m.name] for p in parts], axis=1) for m in self.metrics}
            results[name] = dataclasses.replace(state.result(level=level), y_c=np.concatenate(self.y_c),
                                                terms=terms, paired=paired)
        results = on_common_samples(results, self.metrics)
        return MethodResults(results, compare_results(results, self.metrics, level=level))

    def _one(self, state: MetricState, o_c: list, level: float) -> Result:
        if state.to_numpy().n == 0:
            raise ValueError(validation.all_skipped("average"))
        result = state.result(level=level)
        if not self.keep_vectors:
            return result
        if not all(on_cam_mask(m) for m in self.metrics):  # terms were summed, no O_c kept
            return dataclasses.replace(result, y_c=np.concatenate(self.y_c))
        return dataclasses.replace(result, y_c=np.concatenate(self.y_c), o_c=np.concatenate(o_c))
