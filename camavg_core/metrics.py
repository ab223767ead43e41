r"""What each metric is, said once: a :class:`Metric` description per metric.

Everything after the scores derives from these descriptions: the sums a state keeps, the
result's values and intervals, the comparisons and their direction, the reports, the checks
of the scores and their messages. A metric not in :data:`METRICS` works when passed as an
object (``evaluate(cams, score, metrics=[my_metric])``).

For N samples, :math:`Y_i` is the model's score for the target class on input :math:`x_i`, and
:math:`O_i` the same score on the masked input :math:`x_i \odot L_i`:

.. math::

    \mathrm{drop}_i = \frac{\max(0, Y_i - O_i)}{Y_i + \epsilon}, \qquad
    \mathrm{increase}_i = [Y_i < O_i], \qquad
    \mathrm{gain}_i = \frac{\max(0, O_i - Y_i)}{1 - Y_i + \epsilon}

with :math:`\epsilon = 10^{-7}` (Keras' epsilon, also used by torchcam and xplique). Each average
is ``100 * mean(terms)``, a percentage.

The ``*_terms`` functions are pure and run unchanged under ``jax.jit`` and ``tf.function``; the
``avg_*`` functions check their input and return a Python float.

>>> METRICS["average_drop"].higher_is_better, METRICS["average_gain"].title
(False, 'Average Gain')
>>> [metric.name for metric in AVERAGES]
['average_drop', 'average_increase', 'average_gain']
>>> list(METRICS)[3:]
['deletion', 'insertion', 'mufidelity', 'road']
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from camavg_core import validation
from camavg_core.backends import Backend, resolve_backend, work_dtype
from camavg_core.imputation import DEFAULT_FRACTIONS, DEFAULT_NOISE

EPSILON = 1e-7

#: what a metric's scores must be: probabilities in [0, 1], scores >= 0, or any real score
SCORE_KINDS = ("probabilities", "nonnegative", "any")
INTERVALS = ("hall_t", "wilson")


@dataclasses.dataclass(frozen=True)
class Metric:
    """One metric, described once.

    Attributes:
        name: the key of results, comparisons and reports (``"average_drop"``).
        title: for people (``"Average Drop"``).
        unit: ``"percent"`` or ``"fraction"``: values, intervals, differences and margins are
            reported in it.
        scale: the mean of the terms times ``scale`` is the value (100 for percent).
        higher_is_better: True where a higher value means a more faithful CAM.
        scores: ``"probabilities"`` (in [0, 1]), ``"nonnegative"`` (>= 0) or ``"any"``.
        perturbation: what the masked pass does to the inputs; None is the CAM mask (x * cam).
        terms: ``terms(y, curve, backend) -> (N,)``: per-sample terms from the (N,) scores on
            the inputs and the (K, N) scores on the K perturbed inputs (K = 1 for the CAM mask).
        interval: ``"hall_t"`` (skewness-corrected t from sums of powers 1-3) or ``"wilson"``
            (a proportion of 0/1 terms, from its count).
        bounds: the range of the value in its unit; a difference lies in ``[lo - hi, hi - lo]``.
        return_vector: ``"scores"``: ``return_vector=True`` gives ``(value, Y_c, O_c)``;
            ``"curves"``: ``(value, terms, *curves)`` (:attr:`curves` says which).
        extras: None, or ``extras(engine, cam_set) -> context``: what the terms need beyond
            the scores, computed once per call by the engine (MuFidelity's CAM sums per
            subset, (K, N)); ``terms`` is then called as ``terms(y, curve, backend, context)``.
            An array context also enters a comparison's tie rule (see
            :func:`camavg_core.compare.ties`).
        curves: None, or ``curves(y, curve) -> tuple`` of host arrays that ``return_vector``
            gives after the terms (Deletion: the (N, K + 1) curves; ROAD: MoRF and LeRF);
            None gives the step scores as (N, K).
        margin: the default margin of ``better`` in a comparison, in the metric's unit.
        leaves_out: True where a sample's term may be undefined (NaN) although its scores
            are finite (MuFidelity's constant drops): such samples are left out of this metric
            only and counted (``Result.undefined``); the state then keeps a count of defined
            terms. False: an undefined term is an error.
        meaning: what the value measures and which side is more faithful, in words: the
            command line's conclusion states each measured metric that has one, with this
            sentence, its ranking and its comparisons; empty for a metric it leaves to the
            table (Average Increase and Gain, which count and size the rises Drop ignores).
        options: what the description's functions take beyond its perturbation, in words,
            for :attr:`settings` (MuFidelity's ``correlation='spearman'``).
    """

    name: str
    title: str
    unit: str
    scale: float
    higher_is_better: bool
    scores: str
    terms: Callable = dataclasses.field(repr=False)
    interval: str = "hall_t"
    bounds: tuple[float, float] = (0.0, 100.0)
    perturbation: Any = None
    return_vector: str = "scores"
    extras: Callable | None = dataclasses.field(default=None, repr=False)
    curves: Callable | None = dataclasses.field(default=None, repr=False)
    margin: float = 0.5
    leaves_out: bool = False
    meaning: str = dataclasses.field(default="", repr=False)
    options: str = ""

    def __post_init__(self) -> None:
        if self.scores not in SCORE_KINDS:
            raise ValueError(validation.bad_metric_field(self.name, "scores", self.scores, SCORE_KINDS))
        if self.interval not in INTERVALS:
            raise ValueError(validation.bad_metric_field(self.name, "interval", self.interval, INTERVALS))

    @property
    def settings(self) -> str:
        """How the metric is measured beyond its name, for the record (the command line's
        ``results.json``): its perturbation and :attr:`options`, e.g. ``Road(fractions=(0.1,
        ..., 0.9), noise=2.55, seed=0, selection='rank')``; empty for the averages (the CAM
        mask has nothing to set)."""
        if on_cam_mask(self):
            return self.options
        return ", ".join(part for part in (repr(self.perturbation), self.options) if part)

    @property
    def difference_bounds(self) -> tuple[float, float]:
        """The range of a difference of two values of this metric."""
        low, high = self.bounds
        return (low - high, high - low)

    @property
    def unit_label(self) -> str:
        """The unit of a value (``%``) and of a difference (``pp``)."""
        return "%" if self.unit == "percent" else ""

    @property
    def decimals(self) -> int:
        """Decimals a value, interval or difference is printed with: 2 in percent, 3 for a
        fraction (an AUC of 0.412 read as 0.41, a Deletion difference of 0.004 as 0.00, would
        hide the differences a comparison finds and its margin of 0.005).

        >>> metric_named("average_drop").decimals, metric_named("deletion").decimals
        (2, 3)
        """
        return 2 if self.unit == "percent" else 3

    def format(self, value: float, *, sign: bool = False) -> str:
        """``value`` as printed with :attr:`decimals` (``sign``: a + before positive values),
        except a value that is not 0 but would print as 0: it gets one significant digit, so that
        an interval's bound shows which side of 0 it lies on (-0.0003, not -0.000 or 0.000,
        where the side is what a reader decides on). 0 prints without a sign.

        >>> deletion = metric_named("deletion")
        >>> deletion.format(0.0123), deletion.format(-0.00026), deletion.format(-0.0), deletion.format(0.02, sign=True)
        ('0.012', '-0.0003', '0.000', '+0.020')
        """
        value = float(value)
        if value == 0.0:
            return f"{0.0:.{self.decimals}f}"  # -0.0 too: on neither side
        text = f"{value:{'+' if sign else ''}.{self.decimals}f}"
        if np.isfinite(value) and float(text) == 0.0:
            text = np.format_float_positional(value, precision=1, unique=False, fractional=False, sign=sign)
        return text


def _curve_row(curve: Any, backend: Backend) -> Any:
    """The one step of a (1, N) curve, or an (N,) vector as it is (the pre-curve form)."""
    return curve[0] if len(backend.shape(curve)) == 2 else curve


def as_float_pair(y_c: Any, o_c: Any, backend: Backend) -> tuple[Any, Any]:
    """Both vectors as arrays of the backend in one float dtype: float64 if either is (always
    on NumPy), else float32."""
    y = backend.asarray(y_c)
    o = backend.asarray(o_c)
    dtype = work_dtype(backend.dtype_name(y), backend.dtype_name(o), host=backend.name == "numpy")
    return backend.astype(y, dtype), backend.astype(o, dtype)


def drop_terms(y_c: Any, o_c: Any, *, backend: str | Backend | None = None) -> Any:
    r"""Per-sample drop, :math:`\max(0, Y_i - O_i) / (Y_i + \epsilon)`.

    >>> drop_terms([0.8, 0.5], [0.2, 0.6]).round(6)
    array([0.75, 0.  ])
    """
    bk = resolve_backend(backend, y_c, o_c)
    y, o = as_float_pair(y_c, o_c, bk)
    return bk.maximum(y - o, 0.0) / (y + EPSILON)


def increase_terms(y_c: Any, o_c: Any, *, backend: str | Backend | None = None) -> Any:
    r"""Per-sample increase, :math:`[Y_i < O_i]`, as 0.0 or 1.0.

    >>> increase_terms([0.8, 0.5, 0.5], [0.2, 0.6, 0.5])
    array([0., 1., 0.])
    """
    bk = resolve_backend(backend, y_c, o_c)
    y, o = as_float_pair(y_c, o_c, bk)
    return bk.astype(y < o, bk.dtype_name(y))


def gain_terms(y_c: Any, o_c: Any, *, backend: str | Backend | None = None) -> Any:
    r"""Per-sample gain, :math:`\max(0, O_i - Y_i) / (1 - Y_i + \epsilon)`.

    >>> gain_terms([0.8, 0.5], [0.9, 0.4]).round(6)
    array([0.5, 0. ])
    """
    bk = resolve_backend(backend, y_c, o_c)
    y, o = as_float_pair(y_c, o_c, bk)
    # XLA (jax.jit, TF jit_compile) folds (1 - Y) + eps into (1 + eps) - Y, and 1 + eps rounds
    # to 1 + 1.19e-7 in float32: near Y = 1 that moves the term by up to 11%. 1 - Y is exact
    # there (Sterbenz), and the max, equal to it for a probability, keeps the constants apart.
    return bk.maximum(o - y, 0.0) / (bk.maximum(1.0 - y, 0.0) + EPSILON)


def _on_mask(function: Callable) -> Callable:
    """A metric's ``terms`` from a (Y, O) equation: the CAM mask's curve has one step."""

    def terms(y: Any, curve: Any, backend: Backend) -> Any:
        return function(y, _curve_row(curve, backend), backend=backend)

    terms.__name__ = function.__name__
    terms.__doc__ = function.__doc__
    return terms


AVERAGE_DROP = Metric("average_drop", "Average Drop", "percent", 100.0, False, "nonnegative", _on_mask(drop_terms),
                      meaning="lower means the map keeps more of the evidence the model uses, i.e. more faithful")
AVERAGE_INCREASE = Metric(
    "average_increase", "Average Increase", "percent", 100.0, True, "any", _on_mask(increase_terms),
    interval="wilson",
)
AVERAGE_GAIN = Metric("average_gain", "Average Gain", "percent", 100.0, True, "probabilities", _on_mask(gain_terms))

#: every metric camavg knows, in the order of results and reports
METRICS: dict[str, Metric] = {m.name: m for m in (AVERAGE_DROP, AVERAGE_INCREASE, AVERAGE_GAIN)}
#: the three averages: what ``evaluate`` measures unless told otherwise
AVERAGES: tuple[Metric, ...] = (AVERAGE_DROP, AVERAGE_INCREASE, AVERAGE_GAIN)


# --------------------------------------------------------------------------- faithfulness curves
#: the default margin of ``better`` for the fraction metrics: half a point of a percentage,
#: the averages' 0.5 points on the same [0, 1] scale (0.005 of an AUC is about the seed noise
#: of MuFidelity's 200 subsets on 1,000 samples and well below a difference papers report)
FRACTION_MARGIN = 0.005


def _host_curve(perturbation: Any, y: Any, curve: Any) -> np.ndarray:
    return np.asarray(perturbation.curve(np.asarray(y, np.float64), np.asarray(curve, np.float64),
                                         backend="numpy"), dtype=np.float64)


def deletion_metric(steps: int = 10, baseline: Any = 0.0, max_fraction: float = 1.0, *, kind: str = "deletion") -> Metric:
    r"""RISE's Deletion (``kind="deletion"``) or Insertion (``"insertion"``) AUC as a
    description: per sample, the trapezoid area under the target's probability along the
    curve of :class:`~camavg_core.perturbations.Deletion` (or ``Insertion``),
    :math:`(s_0/2 + s_1 + \dots + s_{K-1} + s_K/2)/K` (:func:`~camavg_core.perturbations.auc_terms`);
    the metric is the mean AUC, a fraction in [0, 1]; lower is better for deletion, higher for
    insertion. ``return_vector`` gives ``(value, per-sample AUCs (N,), curves (N, K + 1))``.
    Equal arguments give perturbations of equal keys and parameters: one pass.

    >>> metric = deletion_metric(steps=4)  # the curve 1, .5, .5, 0, 0: (1/2 + .5 + .5 + 0 + 0/2) / 4
    >>> float(metric.terms(np.array([1.0]), np.array([[0.5], [0.5], [0.0], [0.0]]), resolve_backend("numpy"))[0])
    0.375
    """
    from camavg_core.perturbations import Deletion, Insertion, auc_terms

    perturbation = (Deletion if kind == "deletion" else Insertion)(steps=steps, baseline=baseline,
                                                                   max_fraction=max_fraction)

    def terms(y: Any, curve: Any, backend: Backend) -> Any:
        return auc_terms(perturbation.curve(y, curve, backend=backend), backend=backend)

    def curves(y: Any, curve: Any) -> tuple:
        return (_host_curve(perturbation, y, curve),)

    deletion = kind == "deletion"
    meaning = ("the area under the target's probability as the map's most salient pixels are set to the baseline, "
               "most salient first; lower means the map ranks first the pixels the model needs" if deletion else
               "the area under the target's probability as the map's most salient pixels are put back onto the "
               "baseline, most salient first; higher means the map ranks first the pixels that make the score")
    return Metric(kind, "Deletion" if deletion else "Insertion", "fraction", 1.0, not deletion, "probabilities",
                  terms, bounds=(0.0, 1.0), perturbation=perturbation, return_vector="curves", curves=curves,
                  margin=FRACTION_MARGIN, meaning=meaning)


def insertion_metric(steps: int = 10, baseline: Any = 0.0, max_fraction: float = 1.0) -> Metric:
    """RISE's Insertion AUC as a description (see :func:`deletion_metric`); higher is better."""
    return deletion_metric(steps, baseline, max_fraction, kind="insertion")


def mufidelity_metric(grid_size: int = 9, subset_fraction: float = 0.2, n_samples: int = 200,
                      baseline: float = 0.0, correlation: str = "spearman", seed: int = 0) -> Metric:
    """MuFidelity as a description (:mod:`camavg_core.mufidelity`): per sample, the correlation
    between the CAM summed over each random subset of cells and the score drop when the subset
    is removed; the mean over samples, in [-1, 1], higher is better, for any score. A sample
    whose correlation is undefined (constant drops or sums) is left out of it and counted in
    ``Result.undefined``, never read as 0. The CAM sums come from the ``extras`` hook
    (:func:`~camavg_core.mufidelity.subset_cam_sums`). ``return_vector`` gives ``(value,
    per-sample correlations (N,), the (N, n_samples) scores of the subsets)``.
    """
    from camavg_core.mufidelity import CORRELATIONS, MuFidelity, mufidelity_terms, subset_cam_sums

    if correlation not in CORRELATIONS:
        raise ValueError(validation.mufidelity_argument("correlation", correlation, "'spearman' or 'pearson'"))
    perturbation = MuFidelity(grid_size=grid_size, subset_fraction=subset_fraction, n_samples=n_samples,
                              baseline=baseline, seed=seed)

    def extras(engine: Any, cam_set: Any) -> np.ndarray:
        return subset_cam_sums(engine, cam_set, perturbation)

    def terms(y: Any, curve: Any, backend: Backend, cam_sums: Any) -> Any:
        return mufidelity_terms(backend.to_numpy(y), backend.to_numpy(curve), cam_sums, correlation)

    return Metric("mufidelity", "MuFidelity", "fraction", 1.0, True, "any", terms, bounds=(-1.0, 1.0),
                  perturbation=perturbation, return_vector="curves", extras=extras, margin=FRACTION_MARGIN,
                  leaves_out=True, options=f"correlation={correlation!r}",
                  meaning="the correlation between the map's sum over random subsets of cells and the score's drop "
                          "when those cells are removed; higher means the map's weights track what removing "
                          "the pixels costs the model")


def road_metric(fractions: Any = DEFAULT_FRACTIONS, noise: float = DEFAULT_NOISE,
                seed: int = 0, selection: str = "rank") -> Metric:
    """ROAD as a description (:class:`camavg_core.imputation.Road`): per sample, (mean over
    fractions of the LeRF probabilities - mean of the MoRF ones) / 2
    (:func:`~camavg_core.imputation.road_terms`, pytorch-grad-cam's ``ROADCombined``), a
    fraction in [-0.5, 0.5], higher is better. ``return_vector`` gives ``(value, terms (N,),
    MoRF curves (N, F), LeRF curves (N, F))``.
    """
    from camavg_core.imputation import Road, road_terms

    perturbation = Road(fractions=fractions, noise=noise, seed=seed, selection=selection)
    count = len(perturbation.fractions)

    def terms(y: Any, curve: Any, backend: Backend) -> Any:
        return road_terms(curve[:count], curve[count:], backend)

    def curves(y: Any, curve: Any) -> tuple:
        curve = np.asarray(curve, np.float64)
        return (curve[:count].T.copy(), curve[count:].T.copy())

    return Metric("road", "ROAD", "fraction", 1.0, True, "probabilities", terms, bounds=(-0.5, 0.5),
                  perturbation=perturbation, return_vector="curves", curves=curves, margin=FRACTION_MARGIN,
                  meaning="half the difference between the target's mean probability when the map's least salient "
                          "pixels are removed and when its most salient are, the removed pixels imputed from their "
                          "neighbours; higher means the pixels the map ranks first are the ones the model needs")


DELETION = deletion_metric()
INSERTION = insertion_metric()
MUFIDELITY = mufidelity_metric()
ROAD = road_metric()
METRICS.update({m.name: m for m in (DELETION, INSERTION, MUFIDELITY, ROAD)})


#: metrics passed as objects that are not in :data:`METRICS`, by name, so that a state or a
#: comparison that keeps only names finds their descriptions again (the latest of a name wins)
_DESCRIBED: dict[str, Metric] = {}


def resolve_metrics(metrics: Any = None) -> tuple[Metric, ...]:
    """Metric names or :class:`Metric` objects as a tuple of descriptions (default: the three
    averages). Names must be in :data:`METRICS`; objects need not be.

    >>> [m.title for m in resolve_metrics(["average_gain", AVERAGE_DROP])]
    ['Average Gain', 'Average Drop']
    """
    if metrics is None:
        return AVERAGES
    if isinstance(metrics, (str, Metric)):
        metrics = [metrics]
    try:
        items = list(metrics)
    except TypeError:
        raise TypeError(validation.bad_metrics(metrics, list(METRICS))) from None
    resolved = []
    for item in items:
        if isinstance(item, Metric):
            if item.name in METRICS and not same_kind(METRICS[item.name], item):
                raise ValueError(validation.metric_name_taken(item.name))
            if item.name not in METRICS:
                _DESCRIBED[item.name] = item
            resolved.append(item)
        elif isinstance(item, str) and item in METRICS:
            resolved.append(METRICS[item])
        else:
            raise ValueError(validation.bad_metrics(item, list(METRICS)))
    names = [m.name for m in resolved]
    if not resolved or len(set(names)) != len(names):
        raise ValueError(validation.bad_metrics(names, list(METRICS)))
    return tuple(resolved)


def same_kind(a: Metric, b: Metric) -> bool:
    """Whether ``b`` is ``a`` with other parameters (``deletion(steps=20)`` beside the
    registered ``deletion``): every field but the perturbation and the functions is equal."""
    fields = ("name", "title", "unit", "scale", "higher_is_better", "scores", "interval", "bounds",
              "return_vector", "margin", "leaves_out")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def on_cam_mask(metric: Metric) -> bool:
    """Whether the metric's perturbation is the averages' CAM mask (None or CAM_MASK)."""
    return metric.perturbation is None or getattr(metric.perturbation, "key", None) == ("cam_mask",)


def metric_named(name: str, metrics: tuple[Metric, ...] = ()) -> Metric:
    """The description of ``name``: among ``metrics`` first, then :data:`METRICS`."""
    for metric in metrics:
        if metric.name == name:
            return metric
    if name in METRICS:
        return METRICS[name]
    if name in _DESCRIBED:
        return _DESCRIBED[name]
    raise ValueError(validation.bad_metrics(name, list(METRICS)))


def score_requirement(metrics: tuple[Metric, ...]) -> tuple[tuple[Metric, ...], bool]:
    """The metrics that restrict the scores, and whether the bound is [0, 1] (else >= 0)."""
    needing = tuple(m for m in metrics if m.scores != "any")
    return needing, any(m.scores == "probabilities" for m in needing)


def check_scores(values: np.ndarray, metrics: tuple[Metric, ...], argument: str) -> None:
    """Host scores checked against what ``metrics`` need (one check per vector)."""
    needing, upper = score_requirement(metrics)
    if needing:
        validation.check_probabilities(values, needing, upper=upper, argument=argument)


def compute_terms(metrics: tuple[Metric, ...], y: Any, o: Any, backend: Backend) -> dict[str, Any]:
    """Each metric's per-sample terms from the scores on the inputs and on the CAM-masked
    inputs (a one-step curve, (1, N)), on the backend's arrays. A metric of another
    perturbation has no terms from (Y_c, O_c): refused, naming the door that has its scores."""
    others = [m.name for m in metrics if not on_cam_mask(m)]
    if others:
        raise ValueError(validation.needs_its_perturbation(others))
    curve = backend.reshape(o, (1, -1))
    return {metric.name: metric.terms(y, curve, backend) for metric in metrics}


def better_method(
    metric: str | Metric, low: float, high: float, p_value: float, *, alpha: float, margin: float,
    names: tuple[str, str],
) -> str | None:
    """The method of the pair (a, b) that is better on ``metric``, or None.

    A method is named only when the test is significant (``p_value < alpha``) **and** the whole
    interval of a - b lies beyond ``margin`` (in the metric's unit) on that method's side: for
    a metric where lower is better, ``high < -margin`` names a and ``low > margin`` names b.
    Significance is not size: a tiny but certain difference names no method.

    >>> better_method("average_drop", -3.0, -1.0, 1e-4, alpha=0.05, margin=0.5, names=("a", "b"))
    'a'
    >>> better_method("average_gain", 0.1, 0.4, 1e-9, alpha=0.05, margin=0.5, names=("a", "b")) is None
    True
    """
    if not p_value < alpha:
        return None
    description = metric if isinstance(metric, Metric) else metric_named(metric)
    sign = 1.0 if description.higher_is_better else -1.0
    # in "better" units: positive when a is better
    a_low, a_high = sorted((sign * low, sign * high))
    if a_low > margin:
        return names[0]
    if a_high < -margin:
        return names[1]
    return None


# --------------------------------------------------------------------------- the seed's functions
def to_numpy(values: Any) -> Any:
    """Host values as they are; a framework's array as NumPy (anything else is left for
    :func:`~camavg_core.validation.as_score_vector` to name)."""
    if isinstance(values, (list, tuple, int, float, bool, np.ndarray, np.generic)) or values is None:
        return values
    from camavg_core.backends import get_backend

    try:
        backend = get_backend(values)
    except TypeError:
        return values  # not an array of any backend: as_score_vector's error names the argument
    return backend.to_numpy(values)


def checked_vectors(vectors: dict[str, Any], nan_policy: str, *, allow_empty: bool = False) -> list[np.ndarray]:
    """The door of the public functions: concrete NumPy copies of ``{argument: scores}``,
    each read, paired with the first and checked for non-finite values once."""
    validation.check_nan_policy(nan_policy)
    arrays = [validation.as_score_vector(to_numpy(values), name) for name, values in vectors.items()]
    names = list(vectors)
    if not (allow_empty and all(a.size == 0 for a in arrays)):
        for name, array in zip(names[1:], arrays[1:]):
            validation.check_pair(arrays[0], array, (names[0], name))
    for name, array in zip(names, arrays):
        validation.check_finite(array, name, nan_policy)
    return arrays


def _average(metric: Metric, y_c: Any, o_c: Any, backend: Any, nan_policy: str) -> float:
    bk = resolve_backend(backend, y_c, o_c)
    y, o = checked_vectors({"Y_c": y_c, "O_c": o_c}, nan_policy)
    valid = np.isfinite(y) & np.isfinite(o)
    # left-out pairs enter the terms as zeros, so inf - inf raises no warning on the way
    y, o = np.where(valid, y, 0.0), np.where(valid, o, 0.0)
    check_scores(y, (metric,), "Y_c")
    check_scores(o, (metric,), "O_c")
    terms = bk.to_numpy(metric.terms(bk.asarray(y), bk.asarray(o), bk)).astype(np.float64)[valid]
    if terms.size == 0:
        raise ValueError(validation.all_skipped("average"))
    return float(metric.scale * terms.mean())


def avg_drop(Y_c: Any, O_c: Any, *, nan_policy: str = "raise", backend=None) -> float:
    r"""Average Drop in percent: :math:`100 \cdot \frac{1}{N}\sum_i \mathrm{drop}_i`.

    Args:
        Y_c: scores of the target class on the inputs, shape (N,), probabilities.
        O_c: scores of the same class on the masked inputs, shape (N,).
        nan_policy: ``'raise'`` (default) on a non-finite score, or ``'omit'`` to leave it out.
        backend: ``'numpy'``, ``'tensorflow'``, ``'jax'`` or a Backend; by default the arrays'.

    >>> avg_drop([0.8, 0.5], [0.2, 0.6])  # (0.6 / 0.8 + 0) / 2 = 0.375
    37.49999...
    """
    return _average(AVERAGE_DROP, Y_c, O_c, backend, nan_policy)


def avg_increase(Y_c: Any, O_c: Any, *, nan_policy: str = "raise", backend=None) -> float:
    r"""Average Increase in percent: :math:`100 \cdot \frac{1}{N}\sum_i [Y_i < O_i]`.

    Defined for any score, logits included.

    >>> avg_increase([0.8, 0.5, 0.5, 0.1], [0.2, 0.6, 0.5, 0.3])  # 2 of 4 increase
    50.0
    """
    return _average(AVERAGE_INCREASE, Y_c, O_c, backend, nan_policy)


def avg_gain(Y_c: Any, O_c: Any, *, nan_policy: str = "raise", backend=None) -> float:
    r"""Average Gain in percent: :math:`100 \cdot \frac{1}{N}\sum_i \mathrm{gain}_i`.

    >>> avg_gain([0.8, 0.5], [0.9, 0.4])  # (0.1 / 0.2 + 0) / 2 = 0.25
    24.99999...
    """
    return _average(AVERAGE_GAIN, Y_c, O_c, backend, nan_policy)
