r"""The mergeable state of a paired comparison: sums of powers of the paired differences.

For a pair of CAM methods (a, b) scored on the same samples, each metric's paired differences
:math:`d_i = a_i - b_i` enter :math:`\sum d` (the estimate), and with ties set to 0 (see
:func:`ties`) :math:`\sum d, \sum d^2, \sum d^3` and the count of non-zero :math:`d_i` (the
test and the interval); :math:`n` and ``skipped`` count samples. Every field is summed on merge,
so any split of the data (batches, replicas, hosts) merges back to the state of the whole.

:meth:`PairState.result` has sums only, so its test is Hall's skewness-corrected t from the
sums, flagged approximate in ``notes``; :func:`camavg_core.compare.compare`, which has the
per-sample differences, runs the exact sign-flip test (:mod:`camavg_core.sign_flip`). The
difference is the same in both: mean of a's terms minus mean of b's.

>>> import numpy as np
>>> y, o_a, o_b = np.array([0.8, 0.6]), np.array([0.2, 0.6]), np.array([0.4, 0.3])
>>> whole = PairState.empty().update(y, o_a, o_b)
>>> halves = PairState.empty().update(y[:1], o_a[:1], o_b[:1]).merge(
...     PairState.empty().update(y[1:], o_a[1:], o_b[1:]))
>>> whole.to_numpy() == halves.to_numpy()
True
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from camavg_core import validation
from camavg_core.backends import Backend, resolve_backend
from camavg_core.equations import (
    _as_float_pair,
    _checked_vectors,
    drop_terms,
    gain_terms,
)
from camavg_core.state import _concrete, power_sums_on
from camavg_core.metric_info import better_method
from camavg_core.stats import (
    HALL_T,
    approximate_notes,
    as_percent,
    check_level,
    hall_t_interval,
    hall_t_test,
)

#: the default margin of ``better``, in percentage points: a method is named better only when its
#: whole interval lies this far beyond 0 (and its test is significant)
DEFAULT_MARGIN = 0.5
#: Masked scores of the two methods within this many float32 ulps of each other are a tie:
#: float noise of the same maps, set to 0 for the test and the interval (never for the
#: difference). One ulp is taken as FLOAT32_EPS times the larger magnitude (np.spacing of float32
#: is between half of it and all of it). Measured, the same CAMs through two routes on a small
#: conv softmax model (4, 10, 2 and 1000 classes, scores 9e-6 to 0.99): batch sizes 1, 5, 7, 32
#: and 64, eager and predict() gave bit-identical scores; XLA (jit_compile=True) against not
#: differed by up to 21.4 of these ulps (32 np.spacing ulps), and by 36.5 on a very confident
#: 3-class model (score 7e-4): a route that changes the kernels can exceed the rule, and its tiny
#: differences are then reported (never ``better``: the margin). 32 covers the first; a real
#: difference smaller than that (at most 32 * 6e-8 = 1.9e-6 near Y = 1) is tied for the test only,
#: and still counted in the difference (0.99999 against 0.999995 is 42 ulps apart: not a tie).
TIE_ULPS = 32
#: float32's machine epsilon, 2**-23: one ulp of a value in [1, 2)
FLOAT32_EPS = 2.0**-23
_PREFIX = {"average_drop": "drop", "average_increase": "increase", "average_gain": "gain"}
COUNT_FIELDS = ("n", "skipped", "drop_nonzero", "increase_nonzero", "gain_nonzero")
SUMS_ONLY_NOTE = (
    "sums only: Hall t test and interval from the sums of the differences (approximate; the exact "
    "sign-flip test needs the per-sample differences: compare in memory or keep the vectors)"
)


def ties(o_c_a: Any, o_c_b: Any, *, backend: str | Backend | None = None) -> Any:
    """Where the two masked scores are within :data:`TIE_ULPS` float32 ulps of each other.

    >>> ties([0.5, 0.5, 0.99999], [0.5 + 1e-7, 0.5 + 1e-5, 0.999995]).tolist()
    [True, False, False]
    """
    bk = resolve_backend(backend, o_c_a, o_c_b)
    a, b = _as_float_pair(o_c_a, o_c_b, bk)
    gap = bk.maximum(a - b, b - a)
    larger = bk.maximum(bk.maximum(a, -a), bk.maximum(b, -b))
    return gap <= (TIE_ULPS * FLOAT32_EPS) * larger


def method_terms(y_c: Any, o_c: Any, bk: Backend) -> dict[str, Any]:
    """Each metric's per-sample terms of one method, on the backend's arrays."""
    return {
        "average_drop": drop_terms(y_c, o_c, backend=bk),
        "average_increase": bk.astype(y_c < o_c, bk.dtype_name(y_c)),
        "average_gain": gain_terms(y_c, o_c, backend=bk),
    }


def paired_differences(y_c: Any, o_c_a: Any, o_c_b: Any, *, backend: str | Backend | None = None,
                       zero_ties: bool = True):
    """Per-sample differences a - b of each metric's terms; ties (see :func:`ties`) set to
    exactly 0 unless ``zero_ties=False``. Returns ``({metric: d}, (increase_a, increase_b))``.

    >>> d, _ = paired_differences([0.5, 0.5], [0.2, 0.3], [0.2 + 1e-9, 0.2])
    >>> [round(float(v), 6) for v in d["average_drop"]]  # a tie, then (0.2 - 0.3) / 0.5
    [0.0, -0.2]
    """
    bk = resolve_backend(backend, y_c, o_c_a)
    y, o_a = _as_float_pair(y_c, o_c_a, bk)
    _, o_b = _as_float_pair(y_c, o_c_b, bk)
    if zero_ties:
        o_b = bk.where(ties(o_a, o_b, backend=bk), o_a, o_b)
    terms_a, terms_b = method_terms(y, o_a, bk), method_terms(y, o_b, bk)
    differences = {metric: terms_a[metric] - terms_b[metric] for metric in terms_a}
    return differences, (terms_a["average_increase"], terms_b["average_increase"])


class PairState(NamedTuple):
    """Sums of powers 1-3 and non-zero counts of the paired differences of each metric (ties set
    to 0), and the plain sum of the differences (the estimate)."""

    n: Any = 0
    skipped: Any = 0
    drop_sum: Any = 0.0
    drop_sq_sum: Any = 0.0
    drop_cube_sum: Any = 0.0
    drop_nonzero: Any = 0
    increase_sum: Any = 0.0
    increase_sq_sum: Any = 0.0
    increase_cube_sum: Any = 0.0
    increase_nonzero: Any = 0
    gain_sum: Any = 0.0
    gain_sq_sum: Any = 0.0
    gain_cube_sum: Any = 0.0
    gain_nonzero: Any = 0
    # the estimate: sums of the differences as they are, ties included
    drop_estimate_sum: Any = 0.0
    increase_estimate_sum: Any = 0.0
    gain_estimate_sum: Any = 0.0

    @classmethod
    def empty(cls) -> "PairState":
        return cls()

    def update(
        self,
        y_c: Any,
        o_c_a: Any,
        o_c_b: Any,
        *,
        nan_policy: str = "raise",
        backend: str | Backend | None = None,
    ) -> "PairState":
        """The state after also seeing these samples; ``self`` is unchanged.

        The checks are those of ``compare`` (under ``'raise'`` they need concrete values); under
        ``'omit'`` a sample with a non-finite score is counted in ``skipped`` without a Python
        branch on the values, so that path runs inside ``jax.jit`` and ``tf.function``.
        """
        validation.check_nan_policy(nan_policy)
        bk = resolve_backend(backend, y_c, o_c_a, o_c_b)
        if all(_concrete(bk, v) for v in (y_c, o_c_a, o_c_b)):
            y_np, a_np = _checked_vectors(y_c, o_c_a, nan_policy, allow_empty=True, names=("y_c", "o_c_a"))
            _, b_np = _checked_vectors(y_c, o_c_b, nan_policy, allow_empty=True, names=("y_c", "o_c_b"))
            for values, argument in ((y_np, "y_c"), (a_np, "o_c_a"), (b_np, "o_c_b")):
                validation.check_probabilities(values, "Average Drop and Average Gain", upper=True, argument=argument)
            y_c, o_c_a, o_c_b = bk.asarray(y_np), bk.asarray(a_np), bk.asarray(b_np)
        elif nan_policy == "raise":
            raise ValueError(validation.traced_check("y_c"))
        y, o_a = _as_float_pair(y_c, o_c_a, bk)
        _, o_b = _as_float_pair(y_c, o_c_b, bk)
        valid = bk.isfinite(y) & bk.isfinite(o_a) & bk.isfinite(o_b)
        zero = bk.astype(valid, bk.dtype_name(y)) * 0.0
        # skipped samples become zeros before the equations, so no NaN reaches a sum
        y, o_a, o_b = (bk.where(valid, v, zero) for v in (y, o_a, o_b))
        differences, _ = paired_differences(y, o_a, o_b, backend=bk)
        estimates, _ = paired_differences(y, o_a, o_b, backend=bk, zero_ties=False)
        n_valid = bk.sum(bk.astype(valid, "int32"))
        sums: dict[str, Any] = {}
        for metric, prefix in _PREFIX.items():
            added = power_sums_on(bk.where(valid, differences[metric], zero), bk)
            for part, value in zip(("sum", "sq_sum", "cube_sum", "nonzero"), added):
                sums[f"{prefix}_{part}"] = getattr(self, f"{prefix}_{part}") + value
            estimate = power_sums_on(bk.where(valid, estimates[metric], zero), bk)[0]
            sums[f"{prefix}_estimate_sum"] = getattr(self, f"{prefix}_estimate_sum") + estimate
        return PairState(
            n=self.n + n_valid, skipped=self.skipped + (bk.shape(y)[0] - n_valid), **sums
        )

    def merge(self, other: "PairState") -> "PairState":
        """The state of both parts of the data together: a field-wise sum."""
        if not isinstance(other, PairState):
            raise TypeError(f"PairState.merge takes another PairState, got {type(other).__name__}.")
        return PairState(*(mine + theirs for mine, theirs in zip(self, other)))

    def to_numpy(self) -> "PairState":
        """Concrete Python numbers (int counts, float64 sums)."""
        return PairState(
            **{
                name: int(np.asarray(value)) if name in COUNT_FIELDS else float(np.asarray(value))
                for name, value in self._asdict().items()
            }
        )

    def result(self, *, level: float = 0.95, names: tuple[str, str] = ("a", "b"), margin: float = DEFAULT_MARGIN):
        """The :class:`~camavg_core.compare.Comparison` of the samples seen, from the sums: the
        difference of the means, Hall's t test and interval (approximate, said in ``notes``)."""
        from camavg_core.compare import Comparison, check_margin

        level = check_level(level)
        margin = check_margin(margin)
        state = self.to_numpy()
        if state.n == 0:
            raise ValueError("No sample has been seen (or every one was skipped): nothing to compare.")
        difference, ci, p_value, no_difference, nonzero, better = {}, {}, {}, {}, {}, {}
        pair = (str(names[0]), str(names[1]))
        for metric, prefix in _PREFIX.items():
            sums = tuple(getattr(state, f"{prefix}_{part}") for part in ("sum", "sq_sum", "cube_sum"))
            nonzero[metric] = getattr(state, f"{prefix}_nonzero")
            no_difference[metric] = nonzero[metric] == 0
            difference[metric] = 100.0 * getattr(state, f"{prefix}_estimate_sum") / state.n
            if no_difference[metric]:
                ci[metric], p_value[metric] = (0.0, 0.0), 1.0
            else:
                ci[metric] = as_percent(hall_t_interval(state.n, *sums, level=level), -100.0, 100.0)
                p_value[metric] = hall_t_test(state.n, *sums)
            better[metric] = better_method(metric, *ci[metric], p_value[metric], alpha=1.0 - level,
                                           margin=margin, names=pair)
        return Comparison(
            difference=difference,
            ci=ci,
            p_value=p_value,
            n=state.n,
            level=level,
            names=pair,
            skipped=state.skipped,
            test=dict.fromkeys(_PREFIX, "t"),
            no_difference=no_difference,
            ci_method=HALL_T,
            notes=(SUMS_ONLY_NOTE,) + approximate_notes(state.n, nonzero),
            better=better,
            margin=margin,
        )
