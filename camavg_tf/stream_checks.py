"""What ``evaluate_dataset`` checks while the batches stream past, kept on the device.

The checks ``AveragesCam`` makes before its pass (non-finite samples, CAMs outside [0, 1],
scores that are not probabilities, class indices out of range) cannot look at a batch without
a host round trip, so each step keeps what they need (the first offending sample, the ranges of
the CAMs and of the scores) and :func:`check_totals` runs them once, after the last batch.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from camavg_core import validation
from camavg_core.state import MetricState

#: "no sample yet" for the first-offending-sample indices, which merge by minimum
NO_SAMPLE = np.iinfo(np.int64).max


class StreamChecks(NamedTuple):
    """What the checks need, kept on the device while the batches stream past.

    Each field merges across batches (and replicas) by its own reduction: the two indices by
    minimum (the first offending sample in stream order, ``NO_SAMPLE`` if none), the ranges
    by minimum and maximum. The ranges cover finite values only.
    """

    first_nonfinite: Any  # int64: first sample whose input, CAM or score is NaN or infinite
    first_bad_target: Any  # int64: first sample whose class index is out of range
    score_min: Any  # float64: range of the finite scores on the plain inputs
    score_max: Any
    cam_min: Any  # float64: range of the finite CAM values (before any normalisation)
    cam_max: Any

    @classmethod
    def empty(cls) -> "StreamChecks":
        return cls(
            tf.constant(NO_SAMPLE, tf.int64),
            tf.constant(NO_SAMPLE, tf.int64),
            tf.constant(np.inf, tf.float64),
            tf.constant(-np.inf, tf.float64),
            tf.constant(np.inf, tf.float64),
            tf.constant(-np.inf, tf.float64),
        )

    def then(self, later: "StreamChecks", offset: Any) -> "StreamChecks":
        """These checks followed by ``later``'s, whose sample indices start at ``offset``."""

        def shifted(index: Any) -> Any:
            return tf.where(index == NO_SAMPLE, index, index + offset)

        return StreamChecks(
            tf.minimum(self.first_nonfinite, shifted(later.first_nonfinite)),
            tf.minimum(self.first_bad_target, shifted(later.first_bad_target)),
            tf.minimum(self.score_min, later.score_min),
            tf.maximum(self.score_max, later.score_max),
            tf.minimum(self.cam_min, later.cam_min),
            tf.maximum(self.cam_max, later.cam_max),
        )


class Totals(NamedTuple):
    """The running state of a stream: the metric sums and the checks, tensors on the device."""

    state: MetricState
    checks: StreamChecks


def first_true(flags: tf.Tensor) -> tf.Tensor:
    """Index of the first True in a (B,) boolean vector, ``NO_SAMPLE`` when there is none."""
    positions = tf.range(tf.shape(flags, out_type=tf.int64)[0], dtype=tf.int64)
    return tf.reduce_min(tf.where(flags, positions, tf.fill(tf.shape(positions), tf.constant(NO_SAMPLE, tf.int64))))


def per_sample_finite(tensor: tf.Tensor) -> tf.Tensor:
    """(B,) True where every value of the sample is finite."""
    values = tf.reshape(tensor, (tf.shape(tensor)[0], -1))
    if not values.dtype.is_floating:
        return tf.ones((tf.shape(values)[0],), tf.bool)
    return tf.reduce_all(tf.math.is_finite(values), axis=1)


def finite_range(values: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(min, max) of the finite values as float64; (inf, -inf) when there are none."""
    values = tf.cast(tf.reshape(values, [-1]), tf.float64)
    finite = tf.math.is_finite(values)
    low = tf.reduce_min(tf.where(finite, values, tf.constant(np.inf, tf.float64)))
    high = tf.reduce_max(tf.where(finite, values, tf.constant(-np.inf, tf.float64)))
    return low, high


def check_totals(totals: Totals, *, nan_policy: str, normalize: bool) -> MetricState:
    """The checks ``AveragesCam`` makes up front, on what the stream kept; the state as numbers."""
    checks = StreamChecks(*(value.numpy() for value in totals.checks))
    if checks.first_bad_target != NO_SAMPLE:
        raise ValueError(
            f"The target of sample {int(checks.first_bad_target)} (counting from 0 in stream order) "
            f"is not a class index of the model's outputs: targets must lie in [0, classes)."
        )
    if nan_policy == "raise" and checks.first_nonfinite != NO_SAMPLE:
        raise ValueError(
            f"Sample {int(checks.first_nonfinite)} (counting from 0 in stream order) has a NaN or "
            f"infinite input, CAM or score. Fix the sample, or pass nan_policy='omit' to skip "
            f"non-finite samples and count them in `skipped`."
        )
    if not normalize and checks.cam_min <= checks.cam_max:
        validation.check_cam_range(float(checks.cam_min), float(checks.cam_max))
    if checks.score_min <= checks.score_max:
        seen = np.array([checks.score_min, checks.score_max])
        validation.check_probabilities(seen, "Average Drop and Average Gain", upper=True)
    return totals.state.to_numpy()
