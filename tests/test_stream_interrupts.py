"""A stream stopped at any line of its batch loop resumes exactly (issue 20, item 4).

The loop is the core's (``camavg_core.stream.evaluate_stream``), whatever the framework, so
this runs it on an engine made of NumPy alone (tests/numpy_adapter.py) and stops it with a
KeyboardInterrupt at every line event of its try block and of the running sums' methods, each
of them, then resumes from the checkpoint the error carries. Oracle: NumPy's scores of the
same model (softmax of the channel means times a known matrix) and tests/reference.py's
averages. tests/test_stream_resume.py runs the same interrupts through TensorFlow's
``evaluate_dataset`` at a sample of the line events.
"""

from __future__ import annotations

import inspect
import sys
from typing import Callable

import numpy as np
import pytest

from camavg_core import stream as core_stream
from camavg_core.engine import Options
from camavg_core.stream import evaluate_stream
from numpy_adapter import NumpyAdapter
from reference import reference_metrics

BATCH, SIZE, CLASSES = 10, 4, 3
SHORT = 3  # batches: every line of the loop is reached with a batch counted before and after
RNG = np.random.default_rng(20)
IMAGES = RNG.uniform(0, 1, (SHORT * BATCH, SIZE, SIZE, 2)).astype(np.float32)
CAMS = RNG.uniform(0, 1, (SHORT * BATCH, SIZE, SIZE)).astype(np.float32)
LABELS = RNG.integers(0, CLASSES, SHORT * BATCH)
WEIGHTS = RNG.normal(0, 2, (2, CLASSES))
METRICS = ("average_drop", "average_increase", "average_gain")


def loop_code() -> tuple[range, set]:
    """The line numbers of evaluate_stream's try block, and the code objects of _Counted that
    the block calls."""
    source, start = inspect.getsourcelines(core_stream.evaluate_stream)
    first = start + 1 + next(i for i, line in enumerate(source) if line.strip() == "try:")
    last = start + next(i for i, line in enumerate(source) if line.strip().startswith("except BaseException"))
    # what the try block calls of _Counted (its constructor runs before, checkpoint() after)
    members = vars(core_stream._Counted)
    codes = {members["add"].__code__}
    if isinstance(members.get("batches"), property):
        codes.add(members["batches"].fget.__code__)
    return range(first, last), codes


def interrupted_at(k: int, run: Callable):
    """``run()``, with a KeyboardInterrupt raised at the k-th line event of the batch loop:
    (result, None) if k is past the loop's last event, else (None, the error)."""
    lines, counted_code = loop_code()
    stream_code = core_stream.evaluate_stream.__code__
    seen = {"events": 0}

    def local(frame, event, arg):
        if event == "line" and (frame.f_code in counted_code or (frame.f_code is stream_code and frame.f_lineno in lines)):
            seen["events"] += 1
            if seen["events"] == k:
                raise KeyboardInterrupt(f"line event {k}")
        return local

    def global_trace(frame, event, arg):
        if frame.f_code is stream_code or frame.f_code in counted_code:
            return local
        return None

    sys.settrace(global_trace)
    try:
        return run(), None
    except KeyboardInterrupt as error:
        return None, error
    finally:
        sys.settrace(None)


def check_every_resume(run: Callable, events: range, y_c: np.ndarray, o_c: np.ndarray, keep_vectors: bool) -> int:
    """Stop ``run(resume=None)`` at each line event k of ``events`` until it finishes, resume
    each from its checkpoint, and check the resumed and the finished results against NumPy's
    scores ``y_c``, ``o_c``; the number of interrupts."""
    expected = reference_metrics(y_c, o_c)

    def check(result, context):
        assert result.n == len(y_c), context
        for name in METRICS:
            assert getattr(result, name) == pytest.approx(expected[name], abs=1e-4), (context, name)
        if keep_vectors:
            np.testing.assert_allclose(result.y_c, y_c, atol=1e-6, err_msg=context)
            np.testing.assert_allclose(result.o_c, o_c, atol=1e-6, err_msg=context)

    interrupted = 0
    for k in events:
        result, error = interrupted_at(k, lambda: run(resume=None))
        if result is not None:
            check(result, "run to the end")
            return interrupted
        interrupted += 1
        assert hasattr(error, "camavg_checkpoint"), f"interrupt at line event {k}: {error!r}"
        check(run(resume=error.camavg_checkpoint), f"resumed after an interrupt at line event {k}")
    raise AssertionError(f"the stream did not finish within line event {events[-1]}")


def mean_colour_scores(images, cams, labels, weights):
    """NumPy's (y_c, o_c) of the model softmax(mean colour @ weights), float64."""
    def probabilities(x):
        logits = x.astype(np.float64).mean(axis=(1, 2)) @ weights.astype(np.float64)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    rows = np.arange(len(labels))
    return probabilities(images)[rows, labels], probabilities(images * cams[..., None])[rows, labels]


@pytest.mark.parametrize("keep_vectors", [False, True])
def test_an_interrupt_at_every_line_of_the_loop_resumes_exactly(keep_vectors):
    def run(resume):
        batches = ((IMAGES[i:i + BATCH], CAMS[i:i + BATCH], LABELS[i:i + BATCH]) for i in range(0, len(LABELS), BATCH))
        return evaluate_stream(NumpyAdapter(WEIGHTS), batches, options=Options(), keep_vectors=keep_vectors,
                               resume=resume)

    interrupted = check_every_resume(run, range(1, 10_000), *mean_colour_scores(IMAGES, CAMS, LABELS, WEIGHTS),
                                     keep_vectors)
    # every batch passes through several lines: the interrupts fell all through the loop
    assert interrupted > 6 * SHORT
