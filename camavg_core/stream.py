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
from camavg_core.result import Result
from camavg_core.scoring import stream_score
from camavg_core.state import MetricState

SCORES = ("categorical", "binary")


class Checkpoint(NamedTuple):
    """What a stream has counted: the state of its first ``batches`` batches, and their score
    vectors when the stream keeps them."""

    state: MetricState
    batches: int
    y_c: tuple = ()
    o_c: tuple = ()


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
    if isinstance(inputs, tuple):  # tf.data gives a multi-input model's inputs as a tuple
        inputs = list(inputs)
    if isinstance(cams, tuple):
        cams = list(cams)
    return inputs, cams, targets


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
) -> Result:
    """The three metrics over a stream of ``(inputs, cams, targets)`` batches.

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
    done = resume or Checkpoint(MetricState.empty(), 0)
    if skip is not None:
        iterator = skip(batches, done.batches)
    else:
        iterator = itertools.islice(iter(batches), done.batches, None)
    state, index = done.state, done.batches
    kept_y, kept_o = list(done.y_c), list(done.o_c)
    advance, close = _progress_bar(progress, total)
    try:
        for batch in iterator:
            inputs, cams, targets = _unpack(batch)
            score_function = stream_score(score, targets)
            batch_options = options._replace(multi_input=isinstance(inputs, list))
            engine = Engine(adapter, inputs, batch_size=None, nan_policy=nan_policy, level=level, options=batch_options)
            engine.batch_size = engine.n  # a stream batch is one step of the compiled pass
            engine.check_probability_outputs("Average Drop and Average Gain")
            _check_target_count(targets, engine.n)
            y_c, o_c = engine.scores(cams, score_function)
            state = state.update(y_c, o_c, nan_policy="omit")
            if keep_vectors:
                kept_y.append(y_c)
                kept_o.append(o_c)
            index += 1
            advance()
    except BaseException as error:
        checkpoint = Checkpoint(state, index, tuple(kept_y), tuple(kept_o))
        try:
            error.camavg_checkpoint = checkpoint
        except AttributeError:  # an exception type without a __dict__
            pass
        counted = f"The sums of batches 0..{index - 1} are kept" if index else "No batch was counted; the start is kept"
        error.add_note(
            f"camavg: the stream stopped in batch {index} (counting from 0). {counted} in "
            f"error.camavg_checkpoint: pass resume=error.camavg_checkpoint with the same data to "
            f"go on from batch {index}."
        )
        raise
    finally:
        close()
    if index == 0:
        raise ValueError("dataset is empty: there is no sample to evaluate.")
    if state.n == 0 and nan_policy == "omit":
        raise ValueError("Every sample was skipped as non-finite: there is nothing to average.")
    result = state.result(level=level)
    if not keep_vectors:
        return result
    return dataclasses.replace(result, y_c=np.concatenate(kept_y), o_c=np.concatenate(kept_o))
