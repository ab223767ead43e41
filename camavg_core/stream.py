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
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import numpy as np

from camavg_core import validation
from camavg_core.engine import Adapter, Engine, Options
from camavg_core.pair_state import PairState
from camavg_core.result import MethodResults, Result
from camavg_core.scoring import stream_score
from camavg_core.state import MetricState

SCORES = ("categorical", "binary")


class Checkpoint(NamedTuple):
    """What a stream has counted: the state of its first ``batches`` batches, and their score
    vectors when the stream keeps them. For a stream of several CAM methods (``cams`` a dict
    in every batch), ``state`` and ``o_c`` are dicts by method and ``pairs`` holds a
    :class:`~camavg_core.pair_state.PairState` per pair of methods."""

    state: Any
    batches: int
    y_c: tuple = ()
    o_c: Any = ()
    pairs: Any = None


def check_stream_options(score: Any, resume: Any) -> None:
    if not (callable(score) or score in SCORES):
        raise ValueError(
            f"score must be one of {SCORES} or a callable score(outputs, targets) -> (B,), got "
            f"{score!r}."
        )
    if resume is not None and not isinstance(resume, Checkpoint):
        raise TypeError(
            f"resume must be the Checkpoint a stopped stream left on its exception "
            f"(error.camavg_checkpoint), got {type(resume).__name__}."
        )


def _unpack(batch: Any) -> tuple[Any, Any, Any]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 3:
        raise TypeError(
            f"Each batch must be a tuple (inputs, cams, targets), got {type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
            + ". Zip them: tf.data.Dataset.zip((images, cams, labels)), or yield (x, c, t)."
        )
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


def _check_target_count(targets: Any, n: int) -> None:
    count = int(np.shape(targets)[0]) if np.ndim(targets) else 0
    if count != n:
        raise ValueError(
            f"A batch holds {n} input samples but {count} targets: each batch needs one CAM "
            f"and one target per input sample."
        )


def _progress_bar(enabled: bool, total: int | None) -> tuple[Callable, Callable]:
    if not enabled:
        return (lambda: None), (lambda: None)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("progress=True needs tqdm: pip install tqdm (or camavg[progress]).") from None
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
) -> Result | MethodResults:
    """The three metrics over a stream of ``(inputs, cams, targets)`` batches.

    A batch's ``cams`` may be ``{name: cams}`` (the same names in every batch): the stream then
    returns a :class:`~camavg_core.result.MethodResults`, one result per method and the
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
        skip: ``skip(batches, k)`` -> an iterator past the first k batches; by default they
            are read and dropped.
    """
    validation.check_options(
        activation=options.activation, nan_policy=nan_policy, data_format=options.data_format,
        level=level, normalize=options.normalize, preprocess=options.preprocess,
    )
    check_stream_options(score, resume)
    if isinstance(batches, (str, bytes)) or not isinstance(batches, Iterable):
        raise TypeError(
            f"dataset must be an iterable of (inputs, cams, targets) batches (a tf.data.Dataset, "
            f"a generator, a list), got {type(batches).__name__}."
        )
    done = resume or Checkpoint(None, 0)
    if skip is not None:
        iterator = skip(batches, done.batches)
    else:
        iterator = itertools.islice(iter(batches), done.batches, None)
    counted = _Counted(done, keep_vectors)
    advance, close = _progress_bar(progress, total)
    try:
        for batch in iterator:
            inputs, cams, targets = _unpack(batch)
            score_function = stream_score(score, targets)
            batch_options = options._replace(multi_input=validation.is_array_list(inputs))
            # a stream batch is one step of the compiled passes, plain and masked alike
            engine = Engine(adapter, inputs, batch_size=_rows(inputs), nan_policy=nan_policy, level=level,
                            options=batch_options)
            engine.check_probability_outputs("Average Drop and Average Gain")
            _check_target_count(targets, engine.n)
            if isinstance(cams, dict):
                scores = {name: engine.scores(method_cams, score_function) for name, method_cams in cams.items()}
                for y_c, o_c in scores.values():
                    validation.check_pair_probabilities(y_c, o_c)
            else:
                scores = engine.scores(cams, score_function)
                validation.check_pair_probabilities(*scores)
            counted.add(scores)
            advance()
    except BaseException as error:
        checkpoint = counted.checkpoint()
        index = checkpoint.batches
        try:
            error.camavg_checkpoint = checkpoint
        except AttributeError:  # an exception type without a __dict__
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
    one pair state per pair of methods for a stream of several."""

    def __init__(self, done: Checkpoint, keep_vectors: bool) -> None:
        self.batches = done.batches
        self.state = done.state
        self.pairs = done.pairs
        self.keep_vectors = keep_vectors
        self.y_c = list(done.y_c)
        self.o_c = {name: list(parts) for name, parts in done.o_c.items()} if isinstance(done.o_c, dict) else list(done.o_c)

    def add(self, scores: Any) -> None:
        several = isinstance(scores, dict)
        if self.state is None:  # the first batch decides: one CAM method, or several by name
            names = list(scores) if several else None
            if several and len(names) < 2:
                raise ValueError("cams is a dict of one CAM method: pass the array, or two or more methods to compare.")
            self.state = {name: MetricState.empty() for name in names} if several else MetricState.empty()
            self.pairs = {pair: PairState.empty() for pair in itertools.combinations(names, 2)} if several else None
            self.o_c = {name: [] for name in names} if several else []
        if several != isinstance(self.state, dict) or (several and list(scores) != list(self.state)):
            expected = list(self.state) if isinstance(self.state, dict) else "one array"
            raise ValueError(
                f"Every batch must carry the same CAM methods: the stream began with {expected}, "
                f"this batch has {list(scores) if several else 'one array'}."
            )
        # every new sum is computed before any is kept: a batch counts whole or not at all
        if several:
            y_c = next(iter(scores.values()))[0]
            state = {name: self.state[name].update(y, o, nan_policy="omit") for name, (y, o) in scores.items()}
            self.pairs = {
                (a, b): pair.update(y_c, scores[a][1], scores[b][1], nan_policy="omit")
                for (a, b), pair in self.pairs.items()
            }
            self.state = state
        else:
            y_c = scores[0]
            self.state = self.state.update(*scores, nan_policy="omit")
        # a stream of several methods keeps its (N,) scores (small) for the exact paired test
        if self.keep_vectors or several:
            self.y_c.append(y_c)
            if several:
                for name, (_, o) in scores.items():
                    self.o_c[name].append(o)
            else:
                self.o_c.append(scores[1])
        self.batches += 1

    def checkpoint(self) -> Checkpoint:
        o_c = {name: tuple(parts) for name, parts in self.o_c.items()} if isinstance(self.o_c, dict) else tuple(self.o_c)
        return Checkpoint(self.state, self.batches, tuple(self.y_c), o_c, self.pairs)

    def result(self, level: float) -> Any:
        if self.state is None:
            raise ValueError("dataset is empty: there is no sample to evaluate.")
        if not isinstance(self.state, dict):
            return self._one(self.state, self.o_c, level)
        from camavg_core.multiple import compare_methods, comparison_table

        results = {name: self._one(state, self.o_c[name], level) for name, state in self.state.items()}
        seen = sum(len(part) for part in self.y_c)
        first = next(iter(self.state.values())).to_numpy()
        if seen == first.n + first.skipped:  # every batch's scores kept: the in-memory comparison
            y_c = np.concatenate(self.y_c)
            o_c = {name: np.concatenate(parts) for name, parts in self.o_c.items()}
            return MethodResults(results, compare_methods(y_c, o_c, level=level, nan_policy="omit"))
        comparisons = {pair: state.result(level=level, names=pair) for pair, state in self.pairs.items()}
        return MethodResults(results, comparison_table(comparisons, level=level))

    def _one(self, state: MetricState, o_c: list, level: float) -> Result:
        if state.to_numpy().n == 0:
            raise ValueError("Every sample was skipped as non-finite: there is nothing to average.")
        result = state.result(level=level)
        if not self.keep_vectors:
            return result
        return dataclasses.replace(result, y_c=np.concatenate(self.y_c), o_c=np.concatenate(o_c))
