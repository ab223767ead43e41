"""The streaming state: sums and counts only, so any split of the data merges back exactly.

Like torchmetrics' ``_update`` / ``_compute`` pairs, the state holds sufficient statistics and
nothing derived. Every field is reduced by summation, which makes the same state the reduction
across batches, replicas and hosts (``strategy.reduce(SUM)``, ``jax.lax.psum``, ``merge``).

>>> import numpy as np
>>> state = MetricState.empty()
>>> state = state.update(np.array([0.8, 0.5]), np.array([0.2, 0.6]))
>>> state = state.update(np.array([0.5]), np.array([0.5]))
>>> result = state.result()
>>> round(result.average_drop, 6), round(result.average_increase, 6), result.n
(25.0, 33.333333, 3)

Sums accumulate in float64: on the host (NumPy) whenever the scores are concrete values,
float64 tensors when traced by a backend that has them (TensorFlow, JAX with x64). A traced
backend without float64 (JAX by default, under ``jax.jit``) keeps each sum as a float32 pair
``[sum, compensation]`` updated by Neumaier's compensated summation, whose error does not grow
with the number of batches; ``to_numpy`` adds the pair in float64.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from camavg_core import validation
from camavg_core.backends import Backend, NumpyBackend, resolve_backend
from camavg_core.equations import (
    _as_float_pair,
    _checked_vectors,
    drop_terms,
    gain_terms,
)
from camavg_core.result import Result
from camavg_core.stats import (
    approximate_notes,
    check_level,
    default_ci_methods,
    intervals_from_sums,
)

#: the fields that count samples (Python ints in ``to_numpy``)
COUNT_FIELDS = ("n", "increase_count", "skipped", "drop_nonzero", "gain_nonzero")


def power_sums_on(values: Any, backend: Backend) -> tuple[Any, Any, Any, Any]:
    """Sum, sum of squares, sum of cubes and count of non-zero entries of a vector, on its
    backend (tracers included): what a state keeps of each metric's terms."""
    return (
        backend.sum(values),
        backend.sum(values * values),
        backend.sum(values * values * values),
        backend.sum(backend.astype(values != 0.0, "int32")),
    )


_HOST = NumpyBackend()


def _has_float64(backend: Backend) -> bool:
    """Whether the backend keeps float64 (JAX without x64 makes it float32)."""
    return backend.dtype_name(backend.asarray(np.zeros(1, np.float64))) == "float64"


def _compensated(total: Any) -> bool:
    """A sum kept as a float32 pair ``[sum, compensation]`` (a traced backend without float64)."""
    return len(getattr(total, "shape", ())) == 1


def _as_pair(total: Any, backend: Backend) -> Any:
    if _compensated(total):
        return total
    return backend.stack([backend.asarray(total, "float32"), backend.asarray(0.0, "float32")])


def _neumaier_add(total: Any, value: Any, backend: Backend) -> Any:
    """``total + value`` with ``total`` a pair ``[sum, compensation]`` and ``value`` a pair or a
    scalar: the rounding error of the addition goes into the compensation (Neumaier, 1974), so
    the pair's float64 total stays within a few float32 ulps of the exact sum however many
    batches are added."""
    total = _as_pair(total, backend)
    value = _as_pair(value, backend)
    big, small = total[0], value[0]
    result = big + small
    error = backend.where(
        backend.maximum(big, -big) >= backend.maximum(small, -small),
        (big - result) + small,
        (small - result) + big,
    )
    return backend.stack([result, total[1] + value[1] + error])


def _concrete(backend: Backend, values: Any) -> bool:
    """Python and NumPy values, eager tensors: True; values traced by jit or tf.function: False."""
    if values is None or isinstance(values, (list, tuple, str, bytes, int, float, np.ndarray, np.generic)):
        return True  # host values (or junk, which the checks then name)
    return backend.is_concrete(values)


class MetricState(NamedTuple):
    """Sufficient statistics of the three metrics over the samples seen so far.

    A ``NamedTuple`` of scalars, so it is a JAX pytree and a ``tf.nest`` structure as it is.
    The sums of cubes and the non-zero counts (appended last, so positional use of the first
    seven fields is unchanged) are what the skewness-corrected interval and its calibration
    note need (:mod:`camavg_core.stats`).
    """

    n: Any = 0
    drop_sum: Any = 0.0
    drop_sq_sum: Any = 0.0
    gain_sum: Any = 0.0
    gain_sq_sum: Any = 0.0
    increase_count: Any = 0
    skipped: Any = 0
    drop_cube_sum: Any = 0.0
    gain_cube_sum: Any = 0.0
    drop_nonzero: Any = 0
    gain_nonzero: Any = 0

    @classmethod
    def empty(cls) -> "MetricState":
        return cls()

    def update(
        self,
        y_c: Any,
        o_c: Any,
        *,
        nan_policy: str = "raise",
        backend: str | Backend | None = None,
    ) -> "MetricState":
        """The state after also seeing the samples (y_c, o_c); ``self`` is unchanged.

        Under ``nan_policy='raise'`` the values are checked first (they must be concrete). Under
        ``'omit'`` a pair with a non-finite score is counted in ``skipped`` instead; that path
        has no Python branch on the values, so it runs inside ``jax.jit`` and ``tf.function``.
        """
        validation.check_nan_policy(nan_policy)
        bk = resolve_backend(backend, y_c, o_c)
        if _concrete(bk, y_c) and _concrete(bk, o_c):
            # the same checks as summarize; the policy only decides what happens to NaN
            y_np, o_np = _checked_vectors(y_c, o_c, nan_policy, allow_empty=True, names=("y_c", "o_c"))
            validation.check_probabilities(y_np, "Average Drop and Average Gain", upper=True, argument="y_c")
            validation.check_probabilities(o_np, "Average Drop and Average Gain", upper=True, argument="o_c")
            # concrete scores are summed on the host, in float64, whatever their framework
            bk, y_c, o_c = _HOST, y_np, o_np
        elif nan_policy == "raise":
            raise ValueError(validation.traced_check("y_c"))
        y, o = _as_float_pair(y_c, o_c, bk)
        compensate = bk is not _HOST and not _has_float64(bk)
        if bk is not _HOST and not compensate:
            y, o = bk.astype(y, "float64"), bk.astype(o, "float64")
        y_shape, o_shape = bk.shape(y), bk.shape(o)
        # a dimension unknown while tracing is a tensor: compare only the static ones
        static_mismatch = isinstance(y_shape[0] if y_shape else 0, int) and isinstance(
            o_shape[0] if o_shape else 0, int
        ) and y_shape != o_shape
        if len(y_shape) != 1 or len(o_shape) != 1 or static_mismatch:
            raise ValueError(
                f"y_c and o_c must be score vectors of one shape (N,), got y_c of shape "
                f"{y_shape} and o_c of shape {o_shape}."
            )
        valid = bk.isfinite(y) & bk.isfinite(o)
        zero = bk.astype(valid, bk.dtype_name(y)) * 0.0
        y_safe = bk.where(valid, y, zero)
        o_safe = bk.where(valid, o, zero)
        drop = bk.where(valid, drop_terms(y_safe, o_safe, backend=bk), zero)
        gain = bk.where(valid, gain_terms(y_safe, o_safe, backend=bk), zero)
        increase = bk.where(valid, bk.astype(y_safe < o_safe, bk.dtype_name(y)), zero)
        n_valid = bk.sum(bk.astype(valid, "int32"))
        drop_s, drop_sq, drop_cube, drop_nonzero = power_sums_on(drop, bk)
        gain_s, gain_sq, gain_cube, gain_nonzero = power_sums_on(gain, bk)
        n = self.n + n_valid
        increase_count = self.increase_count + bk.sum(bk.astype(increase, "int32"))
        skipped = self.skipped + (y_shape[0] - n_valid)
        sums = {"drop_sum": drop_s, "drop_sq_sum": drop_sq, "gain_sum": gain_s, "gain_sq_sum": gain_sq,
                "drop_cube_sum": drop_cube, "gain_cube_sum": gain_cube}
        if compensate or any(_compensated(getattr(self, name)) for name in sums):
            sums = {name: _neumaier_add(getattr(self, name), value, bk) for name, value in sums.items()}
        else:
            sums = {name: getattr(self, name) + value for name, value in sums.items()}
        return MetricState(
            n=n,
            increase_count=increase_count,
            skipped=skipped,
            drop_nonzero=self.drop_nonzero + drop_nonzero,
            gain_nonzero=self.gain_nonzero + gain_nonzero,
            **sums,
        )

    def merge(self, other: "MetricState") -> "MetricState":
        """The state of both halves of the data together: a field-wise sum."""
        if not isinstance(other, MetricState):
            raise TypeError(f"MetricState.merge takes another MetricState, got {type(other).__name__}.")
        return MetricState(*(_merged(mine, theirs) for mine, theirs in zip(self, other)))

    def to_numpy(self) -> "MetricState":
        """Concrete Python numbers (int counts, float64 sums; a compensated pair added)."""
        values = {}
        for name, value in self._asdict().items():
            array = np.asarray(value)
            values[name] = int(array) if name in COUNT_FIELDS else float(array.astype(np.float64).sum())
        return MetricState(**values)

    def result(self, *, level: float = 0.95) -> Result:
        """The three averages in percent, with their intervals (a stream keeps no vectors).

        ``ci`` holds the skewness-corrected t intervals (Hall) of drop and gain from their sums
        of powers 1-3, and the Wilson interval of increase from its count (see
        :mod:`camavg_core.stats`): the same numbers ``summarize`` gives for the same samples.
        """
        level = check_level(level)
        state = self.to_numpy()
        if state.n == 0:
            raise ValueError(
                "No sample has been seen (or every one was skipped as non-finite): there is "
                "nothing to average."
            )
        return Result(
            average_drop=100.0 * state.drop_sum / state.n,
            average_increase=100.0 * state.increase_count / state.n,
            average_gain=100.0 * state.gain_sum / state.n,
            n=state.n,
            skipped=state.skipped,
            ci=intervals_from_sums(
                state.n,
                (state.drop_sum, state.drop_sq_sum, state.drop_cube_sum),
                (state.gain_sum, state.gain_sq_sum, state.gain_cube_sum),
                state.increase_count,
                level=level,
            ),
            ci_method=default_ci_methods(),
            notes=approximate_notes(
                state.n, {"average_drop": state.drop_nonzero, "average_gain": state.gain_nonzero}
            ),
            level=level,
        )


def _merged(mine: Any, theirs: Any) -> Any:
    """One field of two states added; compensated pairs stay pairs (see the module's doc)."""
    if not (_compensated(mine) or _compensated(theirs)):
        return mine + theirs
    if all(isinstance(x, (int, float, np.ndarray, np.generic)) for x in (mine, theirs)):  # host values
        return float(np.asarray(mine, np.float64).sum() + np.asarray(theirs, np.float64).sum())
    return _neumaier_add(mine, theirs, resolve_backend(None, *(x for x in (mine, theirs) if _compensated(x))))
