r"""The mergeable state of a paired comparison: sums of powers of the paired differences.

For a pair of CAM methods (a, b) scored on the same samples, each metric's paired differences
:math:`d_i = a_i - b_i` enter :math:`\sum d, \sum d^2, \sum d^3` and the count of non-zero
:math:`d_i`; :math:`n` and ``skipped`` count samples. Every field is summed on merge, so any
split of the data (batches, replicas, hosts) merges back to the state of the whole, and
:meth:`PairState.result` gives the numbers :func:`camavg_core.compare.compare` gives in memory.

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
from camavg_core.stats import (
    approximate_notes,
    as_percent,
    check_level,
    hall_t_interval,
    hall_t_test,
)

#: Masked scores of the two methods within this distance (absolute; scores are probabilities)
#: are a tie. float32 rounds a probability at about 6e-8; the same softmax computed by two routes
#: (another batch size, fused kernels) differs by a few 1e-7, and two CAM methods that are equal
#: in exact arithmetic but computed along other gradient paths (Grad-CAM++ and Layer-CAM behind
#: global average pooling) gave masked scores up to 8.2e-6 apart. A real difference between CAM
#: methods is orders of magnitude larger.
TIE_TOLERANCE = 1e-5
_PREFIX = {"average_drop": "drop", "average_increase": "increase", "average_gain": "gain"}
COUNT_FIELDS = ("n", "skipped", "drop_nonzero", "increase_nonzero", "gain_nonzero")


def paired_differences(y_c: Any, o_c_a: Any, o_c_b: Any, *, backend: str | Backend | None = None):
    """Per-sample differences a - b of each metric's terms, with ties set to exactly 0.

    Where ``|o_c_a - o_c_b| <= TIE_TOLERANCE`` method b's score is replaced by a's, so the
    sample's three differences are 0. Returns ``({metric: d}, (increase_a, increase_b))``.

    >>> d, _ = paired_differences([0.5, 0.5], [0.2, 0.3], [0.2 + 1e-7, 0.2])
    >>> [round(float(v), 6) for v in d["average_drop"]]  # a tie, then (0.2 - 0.3) / 0.5
    [0.0, -0.2]
    """
    bk = resolve_backend(backend, y_c, o_c_a)
    y, o_a = _as_float_pair(y_c, o_c_a, bk)
    _, o_b = _as_float_pair(y_c, o_c_b, bk)
    gap = o_a - o_b
    o_b = bk.where(bk.maximum(gap, -gap) <= TIE_TOLERANCE, o_a, o_b)
    dtype = bk.dtype_name(y)
    increase_a, increase_b = bk.astype(y < o_a, dtype), bk.astype(y < o_b, dtype)
    differences = {
        "average_drop": drop_terms(y, o_a, backend=bk) - drop_terms(y, o_b, backend=bk),
        "average_increase": increase_a - increase_b,
        "average_gain": gain_terms(y, o_a, backend=bk) - gain_terms(y, o_b, backend=bk),
    }
    return differences, (increase_a, increase_b)


class PairState(NamedTuple):
    """Sums of powers 1-3 and non-zero counts of the paired differences of each metric."""

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
        n_valid = bk.sum(bk.astype(valid, "int32"))
        sums: dict[str, Any] = {}
        for metric, prefix in _PREFIX.items():
            added = power_sums_on(bk.where(valid, differences[metric], zero), bk)
            for part, value in zip(("sum", "sq_sum", "cube_sum", "nonzero"), added):
                sums[f"{prefix}_{part}"] = getattr(self, f"{prefix}_{part}") + value
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

    def result(self, *, level: float = 0.95, names: tuple[str, str] = ("a", "b")):
        """The :class:`~camavg_core.compare.Comparison` of the samples seen, default test."""
        from camavg_core.compare import Comparison

        level = check_level(level)
        state = self.to_numpy()
        if state.n == 0:
            raise ValueError("No sample has been seen (or every one was skipped): nothing to compare.")
        difference, ci, p_value, no_difference, nonzero = {}, {}, {}, {}, {}
        for metric, prefix in _PREFIX.items():
            sums = (getattr(state, f"{prefix}_{part}") for part in ("sum", "sq_sum", "cube_sum"))
            sums = tuple(sums)
            nonzero[metric] = getattr(state, f"{prefix}_nonzero")
            no_difference[metric] = nonzero[metric] == 0
            if no_difference[metric]:
                difference[metric], ci[metric], p_value[metric] = 0.0, (0.0, 0.0), 1.0
                continue
            difference[metric] = 100.0 * sums[0] / state.n
            ci[metric] = as_percent(hall_t_interval(state.n, *sums, level=level), -100.0, 100.0)
            p_value[metric] = hall_t_test(state.n, *sums)
        return Comparison(
            difference=difference,
            ci=ci,
            p_value=p_value,
            n=state.n,
            level=level,
            names=(str(names[0]), str(names[1])),
            skipped=state.skipped,
            no_difference=no_difference,
            notes=approximate_notes(state.n, nonzero),
        )

