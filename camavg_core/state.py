"""The streaming state: sums and counts only, so any split of the data merges back exactly.

Like torchmetrics' ``update`` / ``compute`` pairs, the state holds sufficient statistics and
nothing derived, for each metric of its :class:`~camavg_core.metrics.Metric` descriptions: the
sums of powers 1-3 of the per-sample terms and their non-zero count (a ``"hall_t"`` metric), or
the count of non-zero terms (a ``"wilson"`` proportion). Every field is reduced by summation,
which makes the same state the reduction across batches, replicas and hosts
(``strategy.reduce(SUM)``, ``jax.lax.psum``, ``merge``).

:meth:`MetricState.add` is the pure update (terms and sums, no checks: it runs inside
``jax.jit`` and ``tf.function``); :meth:`MetricState.update` is the door that checks concrete
scores once and then adds them; :meth:`MetricState.result` is the pure compute.

>>> import numpy as np
>>> state = MetricState.empty()
>>> state = state.update(np.array([0.8, 0.5]), np.array([0.2, 0.6]))
>>> state = state.update(np.array([0.5]), np.array([0.5]))
>>> result = state.result()
>>> round(result.average_drop, 6), round(result.average_increase, 6), result.n
(25.0, 33.333333, 3)
>>> round(float(state.drop_sum), 6), int(state.increase_count)  # the three averages' fields, by name
(0.75, 1)

Sums accumulate in float64: on the host (NumPy) whenever the scores are concrete values,
float64 tensors when traced by a backend that has them (TensorFlow, JAX with x64). A traced
backend without float64 (JAX by default, under ``jax.jit``) keeps each sum as a float32 pair
``[sum, compensation]`` updated by Neumaier's compensated summation, whose error does not grow
with the number of batches; ``to_numpy`` adds the pair in float64.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np

from camavg_core import validation
from camavg_core.backends import Backend, NumpyBackend, resolve_backend
from camavg_core.metrics import (
    METRICS,
    Metric,
    as_float_pair,
    check_scores,
    checked_vectors,
    compute_terms,
    metric_named,
    on_cam_mask,
    resolve_metrics,
)
from camavg_core.stats import (
    BOOTSTRAP_BCA,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    approximate_notes,
    bootstrap_mean_intervals,
    check_level,
    in_unit,
    interval_of,
    skew_note,
)


# --------------------------------------------------------------------------- the result
# The result every ``evaluate`` returns: the three averages, n, the vectors and the intervals.

@dataclasses.dataclass(frozen=True, eq=False)
class Result:
    """Each metric's value of one CAM set, in its unit (percent for the three averages).

    Attributes:
        values: ``{"average_drop": value, ...}``, by metric name, in the metrics' order.
        average_drop, average_increase, average_gain: the three averages, read from ``values``.
        n: samples that entered the averages.
        skipped: samples left out as non-finite under ``nan_policy='omit'``.
        y_c, o_c: the (N,) score vectors on the inputs and on the masked inputs (all N
            samples, skipped ones included), or None when a stream kept no vectors.
        ci: ``{"average_drop": (low, high), ...}`` at ``level``, or None.
        level: the confidence level of ``ci``.
        ci_method: ``{"average_drop": "hall_t", ...}``, the interval method of each metric
            (see :mod:`camavg_core.stats`), or None without intervals.
        notes: why an interval is only approximate (n < 30, few non-zero terms); empty when
            every interval is within its calibrated conditions.
        counts: ``{metric: samples in its value}`` where some metric leaves samples out
            (MuFidelity's undefined correlations), else None: ``n`` then counts the samples
            with finite scores, and each such metric's value and interval use its own count.
        undefined: ``{metric: samples left out because the term is undefined}`` for the
            metrics that leave samples out, else None.
        terms: ``{metric: (N,) per-sample terms}`` (NaN where left out) for the metrics beside
            the averages, what comparisons pair; None otherwise.
        curves: ``{metric: tuple of arrays}``, what ``return_vector`` gives after the terms.
        paired: ``{metric: (rows, N) scores}`` that a comparison's tie rule reads (the
            perturbation's step scores, and a metric's array context, such as MuFidelity's CAM
            sums, below them).

    >>> result = Result({"average_drop": 12.5, "average_gain": 3.0}, n=4)
    >>> result.average_drop, list(result.values)
    (12.5, ['average_drop', 'average_gain'])
    """

    values: dict[str, float]
    n: int
    skipped: int = 0
    y_c: np.ndarray | None = None
    o_c: np.ndarray | None = None
    ci: dict[str, tuple[float, float]] | None = None
    level: float = 0.95
    ci_method: dict[str, str] | None = None
    notes: tuple[str, ...] = ()
    counts: dict[str, int] | None = None
    undefined: dict[str, int] | None = None
    terms: dict[str, np.ndarray] | None = None
    curves: dict[str, tuple] | None = None
    paired: dict[str, np.ndarray] | None = None

    def n_of(self, metric: str) -> int:
        """The samples in ``metric``'s value: ``n`` unless the metric leaves some out."""
        return int((self.counts or {}).get(metric, self.n))

    def __getattr__(self, name: str) -> Any:
        # result.average_drop and any other metric's value by its name
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(validation.no_such_metric(type(self).__name__, name, list(values or ())))

    @property
    def approximate(self) -> bool:
        """True when some interval is outside the conditions it was calibrated for."""
        return bool(self.notes)

    def to_dict(self, *, vectors: bool = True) -> dict[str, Any]:
        """Plain Python types only, ready for ``json.dumps`` (NaN-free by construction)."""
        out: dict[str, Any] = {name: float(value) for name, value in self.values.items()}
        out["n"] = int(self.n)
        out["skipped"] = int(self.skipped)
        out["level"] = float(self.level)
        out["ci"] = (
            None
            if self.ci is None
            else {name: [float(low), float(high)] for name, (low, high) in self.ci.items()}
        )
        out["ci_method"] = None if self.ci_method is None else dict(self.ci_method)
        out["notes"] = list(self.notes)
        if self.counts is not None:
            out["counts"] = {name: int(v) for name, v in self.counts.items()}
            out["undefined"] = {name: int(v) for name, v in (self.undefined or {}).items()}
        if vectors:
            out["y_c"] = None if self.y_c is None else [_json_float(v) for v in self.y_c]
            out["o_c"] = None if self.o_c is None else [_json_float(v) for v in self.o_c]
        return out

    def __str__(self) -> str:
        parts = []
        for name, value in self.values.items():
            shown = metric_named(name).format
            text = f"{name} {shown(value)}{_unit_label(name)}"
            if self.ci is not None and name in self.ci:
                low, high = self.ci[name]
                text += f" [{shown(low)}, {shown(high)}]"
            parts.append(text)
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        approximate = ", approximate intervals" if self.notes else ""
        return f"{', '.join(parts)} (n={self.n}{skipped}{approximate})"

    def __repr__(self) -> str:
        return f"Result({self})"


def _unit_label(name: str) -> str:
    return metric_named(name).unit_label


def _json_float(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class MethodResults(NamedTuple):
    """Several CAM methods on the same samples: one :class:`Result` per method, by name, and
    their pairwise comparison (a :class:`~camavg_core.multiple.ComparisonTable`)."""

    results: dict
    comparisons: Any

    def __str__(self) -> str:
        width = max(len(str(name)) for name in self.results)
        lines = [f"{str(name):<{width}}  {result}" for name, result in self.results.items()]
        return "\n".join(lines) + "\n\n" + str(self.comparisons)


# --------------------------------------------------------------------------- the state
#: the parts a ``"hall_t"`` metric keeps (the last one counts); a ``"wilson"`` one keeps a count
HALL_PARTS = ("sum", "sq_sum", "cube_sum", "nonzero")
WILSON_PARTS = ("count",)
#: a metric that leaves undefined samples out (``Metric.leaves_out``) also counts its defined
#: terms (a float total, exact below 2**53, so that every part but the last adds alike)
LEAVING_PARTS = ("sum", "sq_sum", "cube_sum", "defined", "nonzero")

_HOST = NumpyBackend()


def parts_of(metric: Metric) -> tuple[str, ...]:
    """The names of the sums a state keeps for ``metric``; the last one is a count."""
    if metric.interval == "wilson":
        return WILSON_PARTS
    return LEAVING_PARTS if metric.leaves_out else HALL_PARTS


def ordered(names: Any) -> list[str]:
    """Metric names in the registry's order, then any others in the order given (a traced
    dict comes back with sorted keys)."""
    names = list(names)
    return [name for name in METRICS if name in names] + [name for name in names if name not in METRICS]


def power_sums_on(values: Any, backend: Backend) -> tuple[Any, Any, Any, Any]:
    """Sum, sum of squares, sum of cubes and count of non-zero entries of a vector, on its
    backend (tracers included): the one place camavg's sums are written."""
    return (
        backend.sum(values),
        backend.sum(values * values),
        backend.sum(values * values * values),
        backend.sum(backend.astype(values != 0.0, "int32")),
    )


def sums_of(terms: Any, metric: Metric, backend: Backend) -> tuple:
    """What a state keeps of one metric's (N,) terms: its power sums, or for a proportion the
    count of its non-zero (1) terms."""
    sums = power_sums_on(terms, backend)
    return sums[-1:] if metric.interval == "wilson" else sums


def named_part(sums: Any, name: str, parts: Any) -> Any:
    """``drop_sum`` -> ``sums["average_drop"][0]``: a part of a metric's sums by its field name
    (``parts(metric)`` names the parts); an AttributeError otherwise."""
    if not name.startswith("_"):
        for metric, values in (sums or {}).items():
            prefix = metric[len("average_"):] if metric.startswith("average_") else metric
            if name.startswith(prefix + "_"):
                part = name[len(prefix) + 1:]
                names = parts(metric)
                if part in names:
                    return values[names.index(part)]
    raise AttributeError(name)


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


def concrete(backend: Backend, values: Any) -> bool:
    """Python and NumPy values, eager tensors: True; values traced by jit or tf.function: False."""
    if values is None or isinstance(values, (list, tuple, str, bytes, int, float, np.ndarray, np.generic)):
        return True  # host values (or junk, which the checks then name)
    return backend.is_concrete(values)


def add_sums(old: tuple, new: tuple, backend: Backend, compensate: bool) -> tuple:
    """Sums of one metric added part by part; counts (the last part) as they are."""
    *totals, count = old
    *added, new_count = new
    if compensate or any(_compensated(t) for t in totals):
        totals = [_neumaier_add(t, a, backend) for t, a in zip(totals, added)]
    else:
        totals = [t + a for t, a in zip(totals, added)]
    return (*totals, count + new_count)


def valid_pairs(vectors: list, backend: Backend) -> tuple[list, Any, Any]:
    """The vectors with the samples where any is non-finite set to 0 (so no NaN reaches a sum),
    the (N,) valid mask, and a zero of their dtype shaped like them."""
    valid = backend.isfinite(vectors[0])
    for vector in vectors[1:]:
        valid = valid & backend.isfinite(vector)
    zero = backend.astype(valid, backend.dtype_name(vectors[0])) * 0.0
    return [backend.where(valid, v, zero) for v in vectors], valid, zero


def host_or_traced(backend: Backend, vectors: list, nan_policy: str) -> bool:
    """True when every vector is concrete (checked on the host at the door); refuses a traced
    vector under ``'raise'``, which cannot be checked."""
    if all(concrete(backend, v) for v in vectors):
        return True
    if nan_policy == "raise":
        raise ValueError(validation.traced_check("y_c"))
    return False


def float64_on(backend: Backend, vectors: list) -> tuple[list, bool]:
    """Vectors in float64 where the backend has it; else as they are, with ``True``: sums are
    then compensated float32 pairs."""
    if backend is _HOST or not _has_float64(backend):
        return vectors, backend is not _HOST
    return [backend.astype(v, "float64") for v in vectors], False


class MetricState(NamedTuple):
    """Sufficient statistics of each metric over the samples seen so far.

    A ``NamedTuple`` of scalars and a dict of tuples of scalars, so it is a JAX pytree and a
    ``tf.nest`` structure as it is. ``sums[name]`` holds, for a ``"hall_t"`` metric,
    ``(sum, sum of squares, sum of cubes, non-zero count)`` of its terms, and for a
    ``"wilson"`` metric ``(count,)``: what the intervals need (:mod:`camavg_core.stats`). The
    three averages' sums read as fields too: ``drop_sum``, ``gain_cube_sum``, ``increase_count``.
    """

    n: Any = 0
    skipped: Any = 0
    sums: Any = None

    @classmethod
    def empty(cls, metrics: Any = None) -> "MetricState":
        """No sample seen, for ``metrics`` (names or descriptions; default the three averages)."""
        described = resolve_metrics(metrics)
        return cls(0, 0, {m.name: (0.0,) * (len(parts_of(m)) - 1) + (0,) for m in described})

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """The descriptions of the metrics this state sums, in the registry's order."""
        return tuple(metric_named(name) for name in ordered(self.sums or {}))

    def __getattr__(self, name: str) -> Any:
        # the three averages' fields by their old names: drop_sum, gain_nonzero, increase_count
        return named_part(self.sums, name, lambda metric: parts_of(metric_named(metric)))

    def update(
        self,
        y_c: Any,
        o_c: Any,
        *,
        nan_policy: str = "raise",
        backend: str | Backend | None = None,
    ) -> "MetricState":
        """The state after also seeing the samples (y_c, o_c); ``self`` is unchanged.

        The door: concrete scores are read, checked once (shape, finiteness under
        ``nan_policy='raise'``, what the metrics need of them) and summed on the host in
        float64. Traced scores are not checked (a traced value cannot be): under ``'omit'``
        they go to :meth:`add`, which has no Python branch on the values and so runs inside
        ``jax.jit`` and ``tf.function``.
        """
        validation.check_nan_policy(nan_policy)
        bk = resolve_backend(backend, y_c, o_c)
        if host_or_traced(bk, [y_c, o_c], nan_policy):
            y, o = checked_vectors({"y_c": y_c, "o_c": o_c}, nan_policy, allow_empty=True)
            check_scores(y, self.metrics, "y_c")
            check_scores(o, self.metrics, "o_c")
            return self.add(y, o, backend=_HOST)
        return self.add(y_c, o_c, backend=bk)

    def add(self, y_c: Any, o_c: Any, *, backend: Backend) -> "MetricState":
        """The pure update: the terms of already-checked scores added to the sums. A sample
        with a non-finite score is counted in ``skipped``."""
        bk = backend
        y, o = bk.asarray(y_c), bk.asarray(o_c)
        y_shape, o_shape = bk.shape(y), bk.shape(o)
        # a dimension unknown while tracing is a tensor: compare only the static ones
        static_mismatch = isinstance(y_shape[0] if y_shape else 0, int) and isinstance(
            o_shape[0] if o_shape else 0, int
        ) and y_shape != o_shape
        if len(y_shape) != 1 or len(o_shape) != 1 or static_mismatch:
            raise ValueError(validation.score_vector_shapes(y_shape, o_shape))
        (y, o), compensate = float64_on(bk, list(as_float_pair(y, o, bk)))
        (y, o), valid, zero = valid_pairs([y, o], bk)
        n_valid = bk.sum(bk.astype(valid, "int32"))
        metrics = self.metrics
        terms = compute_terms(metrics, y, o, bk)
        sums = {
            m.name: add_sums(self.sums[m.name], sums_of(bk.where(valid, terms[m.name], zero), m, bk), bk, compensate)
            for m in metrics
        }
        return MetricState(self.n + n_valid, self.skipped + (y_shape[0] - n_valid), sums)

    def add_terms(self, terms: dict, valid: Any) -> "MetricState":
        """The pure update from per-sample terms already computed on the host (the engine's
        path for metrics of any perturbation): ``terms[name]`` is (N,) float64, ``valid`` the
        (N,) samples whose scores are finite (the others count in ``skipped``). A metric with
        ``leaves_out`` leaves out its non-finite terms among the valid samples and counts the
        defined ones; for any other metric they are an error."""
        valid = np.asarray(valid, dtype=bool)
        n_valid = int(np.count_nonzero(valid))
        sums = {}
        for metric in self.metrics:
            values = np.asarray(terms[metric.name], dtype=np.float64)
            defined = valid & np.isfinite(values)
            if not metric.leaves_out and not np.array_equal(defined, valid):
                raise ValueError(validation.undefined_terms(metric.name, int(np.count_nonzero(valid & ~defined))))
            new = sums_of(np.where(defined, values, 0.0), metric, _HOST)
            if metric.leaves_out:
                new = (*new[:3], float(np.count_nonzero(defined)), new[3])
            sums[metric.name] = add_sums(self.sums[metric.name], new, _HOST, False)
        return MetricState(self.n + n_valid, self.skipped + (valid.size - n_valid), sums)

    def fields(self) -> list[str]:
        """The names of :meth:`flat`'s entries: ``n``, ``skipped``, then each metric's parts
        (``drop_sum``, ..., ``increase_count``, ...)."""
        names = ["n", "skipped"]
        for name in ordered(self.sums):
            prefix = name[len("average_"):] if name.startswith("average_") else name
            names += [f"{prefix}_{part}" for part in parts_of(metric_named(name))]
        return names

    def flat(self) -> list:
        """Every field as one list, in :meth:`fields` order: what a reduction sums (a Keras
        metric's variables, a replica's float64 vector)."""
        return [self.n, self.skipped, *(value for name in ordered(self.sums) for value in self.sums[name])]

    def from_flat(self, values: Any) -> "MetricState":
        """A state of the same metrics from :meth:`flat`'s values (counts rounded to ints)."""
        values = [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]
        n, skipped, rest = round(values[0]), round(values[1]), values[2:]
        sums = {}
        for name in ordered(self.sums):
            size = len(parts_of(metric_named(name)))
            part, rest = rest[:size], rest[size:]
            sums[name] = (*part[:-1], round(part[-1]))
        return MetricState(n, skipped, sums)

    def merge(self, other: "MetricState") -> "MetricState":
        """The state of both halves of the data together: a field-wise sum."""
        if not isinstance(other, MetricState):
            raise TypeError(validation.merge_other(type(self).__name__, other))
        if set(self.sums) != set(other.sums):
            raise ValueError(validation.merge_other_metrics(sorted(self.sums), sorted(other.sums)))
        sums = {name: tuple(_merged(a, b) for a, b in zip(mine, other.sums[name])) for name, mine in self.sums.items()}
        return MetricState(self.n + other.n, self.skipped + other.skipped, sums)

    def to_numpy(self) -> "MetricState":
        """Concrete Python numbers (int counts, float64 sums; a compensated pair added)."""
        sums = {}
        for name in ordered(self.sums):
            *totals, count = self.sums[name]
            sums[name] = (*(float(np.asarray(t).astype(np.float64).sum()) for t in totals), int(np.asarray(count)))
        return MetricState(int(np.asarray(self.n)), int(np.asarray(self.skipped)), sums)

    def result(self, *, level: float = 0.95) -> Result:
        """Each metric's value in its unit, with its interval (a stream keeps no vectors).

        ``ci`` holds each metric's interval by its rule: Hall's skewness-corrected t from the
        sums of powers 1-3, or Wilson's from the count (see :mod:`camavg_core.stats`): the same
        numbers ``summarize`` gives for the same samples.
        """
        level = check_level(level)
        state = self.to_numpy()
        if state.n == 0:
            raise ValueError(validation.nothing_seen("average"))
        values, ci, methods, nonzero, counts, undefined = {}, {}, {}, {}, {}, {}
        for metric in state.metrics:
            sums = state.sums[metric.name]
            # a metric that leaves samples out averages over its defined terms only
            n = round(sums[3]) if metric.leaves_out else state.n
            counts[metric.name] = n
            if metric.leaves_out:
                undefined[metric.name] = state.n - n
            if n == 0:
                raise ValueError(validation.all_undefined(metric.name, state.n))
            values[metric.name] = metric.scale * sums[0] / n
            ci[metric.name] = interval_of(metric, n, sums, level=level)
            methods[metric.name] = metric.interval
            if metric.interval == "hall_t":
                nonzero[metric.name] = sums[-1]
        notes = approximate_notes(state.n, nonzero)
        for metric in state.metrics:
            if metric.interval == "hall_t":
                n = counts[metric.name]
                note = skew_note(metric.name, n, *state.sums[metric.name][:3], level=level) if n > 1 else None
                notes += (note,) if note else ()
        notes += tuple(f"{name}: {count} of {state.n} samples left out (term undefined); n = {counts[name]}"
                       for name, count in undefined.items() if count)
        return Result(
            values=values, n=state.n, skipped=state.skipped, ci=ci, ci_method=methods,
            notes=notes, level=level, counts=counts if undefined else None, undefined=undefined or None,
        )


def _merged(mine: Any, theirs: Any) -> Any:
    """One field of two states added; compensated pairs stay pairs (see the module's doc)."""
    if not (_compensated(mine) or _compensated(theirs)):
        return mine + theirs
    host = (int, float, np.ndarray, np.generic)
    if isinstance(mine, host) and isinstance(theirs, host):
        return float(np.asarray(mine, np.float64).sum() + np.asarray(theirs, np.float64).sum())
    return _neumaier_add(mine, theirs, resolve_backend(None, *(x for x in (mine, theirs) if _compensated(x))))


# --------------------------------------------------------------------------- in memory
CI_METHODS = ("default", "bootstrap")


def summarize(
    y_c: Any,
    o_c: Any,
    *,
    metrics: Any = None,
    nan_policy: str = "raise",
    level: float = 0.95,
    ci_method: str = "default",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: Any = DEFAULT_SEED,
) -> Result:
    """Each metric of one CAM set (default: the three averages), with its score vectors.

    The numbers and the default intervals come from :class:`MetricState`, so a stream, a
    merge of splits or a distributed run over the same samples gives the same result.

    Args:
        y_c: (N,) scores of the target class on the inputs, probabilities.
        o_c: (N,) scores of the same class on the inputs masked by their CAMs.
        metrics: metric names or :class:`~camavg_core.metrics.Metric` descriptions.
        nan_policy: ``'raise'`` (default) names the first non-finite score; ``'omit'`` leaves
            such samples out of the averages and counts them in ``skipped``.
        level: confidence level of the intervals in ``result.ci``.
        ci_method: ``'default'``: each metric's own interval (``result.ci_method`` names
            them: Hall's t for drop and gain, Wilson for increase); ``'bootstrap'``: a seeded
            BCa bootstrap (``scipy.stats.bootstrap``) for the ``"hall_t"`` metrics instead.
        n_resamples, seed: of the bootstrap, when asked for.

    >>> result = summarize([0.8, 0.5, 0.5, 0.1], [0.2, 0.6, 0.5, 0.3])
    >>> round(result.average_drop, 4), result.average_increase, result.n
    (18.75, 50.0, 4)
    >>> result.ci_method["average_drop"], result.approximate  # n = 4 < 30
    ('hall_t', True)
    """
    validation.check_ci_method(ci_method)
    described = resolve_metrics(metrics)
    y, o = checked_vectors({"Y_c": y_c, "O_c": o_c}, nan_policy)
    check_scores(y, described, "Y_c")
    check_scores(o, described, "O_c")
    return summarize_checked(y, o, described, level=level, ci_method=ci_method, n_resamples=n_resamples, seed=seed)


def summarize_checked(
    y: np.ndarray,
    o: np.ndarray,
    metrics: tuple[Metric, ...],
    *,
    level: float = 0.95,
    ci_method: str = "default",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: Any = DEFAULT_SEED,
) -> Result:
    """:func:`summarize` of host vectors already checked at a door: no check again."""
    result = MetricState.empty(metrics).add(y, o, backend=_HOST).result(level=level)
    vectors = {"y_c": np.array(y, dtype=np.float64), "o_c": np.array(o, dtype=np.float64)}
    resampled = [m for m in metrics if m.interval == "hall_t"]
    if ci_method == "default" or not resampled:
        return dataclasses.replace(result, **vectors)
    valid = np.isfinite(y) & np.isfinite(o)
    y_valid, o_valid = y[valid].astype(np.float64), o[valid].astype(np.float64)
    terms = compute_terms(tuple(resampled), y_valid, o_valid, _HOST)
    columns = np.stack([np.asarray(terms[m.name], np.float64) for m in resampled], axis=1)
    bounds = bootstrap_mean_intervals(columns, level=level, n_resamples=n_resamples, seed=seed)
    ci, methods = dict(result.ci), dict(result.ci_method)
    for metric, interval in zip(resampled, bounds):
        ci[metric.name] = in_unit(interval, metric.scale, metric.bounds)
        methods[metric.name] = BOOTSTRAP_BCA
    return dataclasses.replace(result, ci=ci, ci_method=methods, **vectors)


class Measured(NamedTuple):
    """The per-sample numbers of metrics of any perturbation on one CAM set: ``y`` (N,) the
    scores on the inputs; ``terms[name]`` (N,) float64 (NaN where left out); ``valid`` (N,) the
    samples with finite scores on the inputs and on every pass; ``curves[name]``, what
    ``return_vector`` gives after the terms; ``paired[name]`` (rows, N), what a comparison's tie
    rule reads (:func:`camavg_core.compare.curve_ties`)."""

    y: np.ndarray
    terms: dict
    valid: np.ndarray
    curves: dict
    paired: dict


def measured_terms(y: np.ndarray, steps: dict, extras: dict, metrics: tuple[Metric, ...]) -> Measured:
    """Each metric's per-sample terms from host scores checked at a door: ``y`` (N,),
    ``steps[name]`` the (K, N) scores of that metric's perturbation, ``extras[name]`` its
    context (``Metric.extras``). A sample enters when its scores are finite on the inputs and
    on every pass (else it is skipped, under ``nan_policy='omit'``); the terms are computed on
    the host in float64 with the skipped samples' scores set to 0, then set to NaN."""
    y = np.asarray(y, dtype=np.float64)
    valid = np.isfinite(y)
    for curve in steps.values():
        valid &= np.isfinite(curve).all(axis=0)
    terms, curves, paired = {}, {}, {}
    y0 = np.where(valid, y, 0.0)
    for metric in metrics:
        curve = np.where(valid[None], np.asarray(steps[metric.name], np.float64), 0.0)
        context = () if metric.extras is None else (extras[metric.name],)
        values = np.asarray(_HOST.to_numpy(metric.terms(y0, curve, _HOST, *context)), dtype=np.float64)
        terms[metric.name] = np.where(valid, values, np.nan)
        if metric.return_vector == "curves":
            kept = metric.curves(y0, curve) if metric.curves is not None else (curve.T.copy(),)
            curves[metric.name] = tuple(np.where(valid[:, None], c, np.nan) for c in kept)
        rows = [curve] + [np.asarray(c, np.float64) for c in context if np.ndim(c) == 2]
        paired[metric.name] = np.concatenate(rows, axis=0)
    return Measured(y, terms, valid, curves, paired)


def on_common_samples(results: dict, metrics: tuple[Metric, ...]) -> dict:
    """``{method: Result}`` on the samples that every method kept, as a paired comparison
    pairs them: a sample one method leaves out (its scores non-finite under
    ``nan_policy='omit'``, e.g. a degenerate map; for a metric that leaves samples out, such as
    MuFidelity, an undefined term) is left out of every method's value for that metric, and
    counted in ``skipped`` (or ``undefined``). Each comparison's difference is then the
    difference of the two results beside it, and a ranking by value agrees with the pairs
    (until 2026-12-06 each method kept its own samples: 'a -0.017, b 0.013' beside a paired
    difference of -0.009). Results that kept the same samples come back as they are; so do
    results without their score vectors (a stream that kept none)."""
    if any(r.y_c is None for r in results.values()):
        return results
    kept = {name: _kept_samples(r, metrics) for name, r in results.items()}
    common = np.logical_and.reduce([valid for valid, _ in kept.values()])
    defined = {m.name: np.logical_and.reduce([each[m.name] for _, each in kept.values()]) & common
               for m in metrics if m.leaves_out}
    if all(np.array_equal(valid, common) and all(np.array_equal(each[name], defined[name]) for name in defined)
           for valid, each in kept.values()):
        return results
    if not common.any():
        raise ValueError(validation.all_skipped("compare"))
    return {name: _on_samples(r, metrics, common, defined) for name, r in results.items()}


def _kept_samples(result: Result, metrics: tuple[Metric, ...]) -> tuple[np.ndarray, dict]:
    """(the samples a result's values use, {metric that leaves samples out: its defined ones})."""
    valid = np.isfinite(result.y_c)
    if result.o_c is not None and any(on_cam_mask(m) for m in metrics):
        valid &= np.isfinite(result.o_c)
    terms = result.terms or {}
    for m in metrics:
        if m.name in terms and not m.leaves_out:
            valid &= np.isfinite(terms[m.name])
    return valid, {m.name: valid & np.isfinite(terms[m.name]) for m in metrics if m.leaves_out}


def _on_samples(result: Result, metrics: tuple[Metric, ...], common: np.ndarray, defined: dict) -> Result:
    """``result`` summed again over ``common`` samples (``defined`` ones for a metric that
    leaves samples out), its vectors NaN elsewhere."""
    o_c = None if result.o_c is None else np.where(common, result.o_c, np.nan)
    if result.terms is None:  # the averages alone: summed from the score vectors
        return summarize_checked(result.y_c, o_c, metrics, level=result.level)
    terms = {name: np.where(defined.get(name, common), values, np.nan) for name, values in result.terms.items()}
    curves = None if result.curves is None else {
        name: tuple(np.where(common[:, None], c, np.nan) for c in kept) for name, kept in result.curves.items()}
    return _summed_terms(metrics, terms, common, result.level, y_c=result.y_c, o_c=o_c, curves=curves,
                         paired=result.paired)


def _summed_terms(metrics: tuple[Metric, ...], terms: dict, valid: np.ndarray, level: float, **kept: Any) -> Result:
    """The result of per-sample ``terms`` summed as a stream sums them
    (:meth:`MetricState.add_terms`), with the terms and the ``kept`` fields (vectors, curves,
    tie data)."""
    result = MetricState.empty(metrics).add_terms(terms, valid).result(level=level)
    return dataclasses.replace(result, terms=terms, **kept)


def summarize_measured(y: np.ndarray, steps: dict, extras: dict, metrics: tuple[Metric, ...], *,
                       level: float = 0.95, o_c: np.ndarray | None = None) -> Result:
    """The result of metrics of any perturbation (:func:`measured_terms`), summed as a stream
    sums them (:meth:`MetricState.add_terms`), with the terms, curves and tie data kept.
    ``o_c``: the CAM mask's (N,) scores, kept as ``Result.o_c`` when an average was asked for."""
    measured = measured_terms(y, steps, extras, metrics)
    return _summed_terms(metrics, measured.terms, measured.valid, level, y_c=measured.y.copy(),
                         o_c=None if o_c is None else np.array(o_c, np.float64), curves=measured.curves or None,
                         paired=measured.paired)
