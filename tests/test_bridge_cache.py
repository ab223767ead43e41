"""The masked-pass cache of ``AveragesCamBase``: the pass reads camavg's own copy of the CAMs,
the copy's buffer is reused, a failed pass leaves nothing stale, and Y_c is kept only for
scores named by value."""

from __future__ import annotations

import numpy as np
import pytest

from camavg_core import buffers
from camavg_core.bridge import AveragesCamBase, matches, private, snapshot


class Recording(AveragesCamBase):
    """An adapter whose pass records what it was given: O_c is the mean of each CAM."""

    def __init__(self, n: int) -> None:
        self._init_options(batch_size=None, activation=None, nan_policy="raise", normalize=False,
                           data_format="channels_last", level=0.95)
        self.n = n
        self.seen: list = []
        self.plain_calls = 0

    def _plain_scores(self, score_function):
        self.plain_calls += 1
        return np.asarray(score_function(np.ones((self.n, 3)) * np.arange(3) / 4), np.float64)

    def _masked_scores(self, cams, score_function):
        self.seen.append(cams)
        return np.asarray(cams, np.float64).reshape(self.n, -1).mean(axis=1)


def score(outputs):
    """Y_c = 0.5 for every sample (the outputs of Recording are 0, 0.25, 0.5 per row)."""
    return np.asarray(outputs)[:, 2]


def test_the_pass_reads_camavgs_copy_not_the_callers_array():
    metrics = Recording(3)
    cams = np.full((3, 4, 4), 0.5, np.float32)
    metrics.evaluate(cams, score)
    given_to_pass = metrics.seen[-1]
    assert given_to_pass is not cams and not np.shares_memory(given_to_pass, cams)
    assert buffers.is_aligned(given_to_pass)
    np.testing.assert_array_equal(given_to_pass, cams)


def test_the_copy_buffer_is_reused_between_cam_sets_and_results_stay_true():
    metrics = Recording(2)
    first, second = np.full((2, 3, 3), 0.25), np.full((2, 3, 3), 0.75)
    result_first = metrics.evaluate(first, score)
    result_second = metrics.evaluate(second, score)
    assert metrics.seen[0] is metrics.seen[1]  # one buffer, overwritten
    np.testing.assert_allclose(result_first.o_c, [0.25, 0.25])  # the first result is its own
    np.testing.assert_allclose(result_second.o_c, [0.75, 0.75])


def test_a_failed_pass_leaves_no_stale_cache_entry():
    """The copy buffer is overwritten before the pass: after a pass that fails, no CAM set may
    be served from the cache, whatever the buffer now holds."""

    class FailsOnNegative(Recording):
        def _masked_scores(self, cams, score_function):
            self.seen.append(np.array(cams))
            if np.asarray(cams).min() < 0:
                raise ValueError("negative CAM")
            return np.asarray(cams, np.float64).reshape(self.n, -1).mean(axis=1)

    metrics = FailsOnNegative(2)
    good, bad = np.full((2, 2, 2), 0.5), np.full((2, 2, 2), -1.0)
    metrics.evaluate(good, score)
    with pytest.raises(ValueError):
        metrics.evaluate(bad, score)
    with pytest.raises(ValueError):  # refused again, not taken from a cache
        metrics.evaluate(bad, score)
    bad[:] = 0.25  # mended in place: the same object, now valid
    np.testing.assert_allclose(metrics.evaluate(bad, score).o_c, [0.25, 0.25])
    np.testing.assert_allclose(metrics.evaluate(good, score).o_c, [0.5, 0.5])
    assert len(metrics.seen) == 5  # every one of those calls ran its pass


def test_private_keeps_tensors_and_copies_arrays_in_lists():
    class Immutable:  # stands for a framework tensor: not copied
        pass

    tensor, array = Immutable(), np.zeros((2, 2))
    kept = snapshot([tensor, array])
    cams = private(kept)
    assert cams[0] is tensor
    assert cams[1] is not array and buffers.same_bits(cams[1], array)
    assert matches(kept, [tensor, array])
    array[0, 0] = 1
    assert not matches(kept, [tensor, array])


class CategoricalScore:
    """Stands for tf-keras-vis' CategoricalScore, which camavg reads by its type name."""

    def __init__(self, indices):
        self.indices = list(indices)

    def __call__(self, outputs):
        outputs = np.asarray(outputs)
        return outputs[np.arange(len(outputs)), self.indices]


def test_y_c_of_a_score_named_by_value_is_computed_once():
    metrics = Recording(2)
    for level in (0.2, 0.4, 0.6):  # three CAM sets, equal scores (a new object each time)
        result = metrics.evaluate(np.full((2, 2, 2), level), CategoricalScore([1, 2]))
        np.testing.assert_allclose(result.y_c, [0.25, 0.5])
    assert metrics.plain_calls == 1
    result = metrics.evaluate(np.full((2, 2, 2), 0.3), CategoricalScore([0, 1]))  # other classes
    np.testing.assert_allclose(result.y_c, [0.0, 0.25])
    assert metrics.plain_calls == 2


def test_y_c_of_a_plain_callable_is_computed_for_every_cam_set():
    """A callable may read state that changes between calls: its Y_c is never reused."""
    labels = [2, 2]

    def by_labels(outputs):
        return np.asarray(outputs)[np.arange(2), labels]

    metrics = Recording(2)
    np.testing.assert_allclose(metrics.evaluate(np.full((2, 2, 2), 0.2), by_labels).y_c, [0.5, 0.5])
    labels[:] = [1, 0]
    np.testing.assert_allclose(metrics.evaluate(np.full((2, 2, 2), 0.4), by_labels).y_c, [0.25, 0.0])
    assert metrics.plain_calls == 2


def test_a_kept_y_c_is_not_changed_by_nan_marking_or_by_the_caller():
    metrics = Recording(2)
    score_by_value = CategoricalScore([2, 2])
    first = metrics.evaluate(np.full((2, 2, 2), 0.2), score_by_value)
    first.y_c[:] = -1  # the caller's copy
    y_c, _ = metrics._get_scores(np.full((2, 2, 2), 0.4), score_by_value)
    np.testing.assert_allclose(y_c, [0.5, 0.5])
