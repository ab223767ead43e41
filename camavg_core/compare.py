r"""Paired comparison of two CAM methods scored on the same samples.

For each sample :math:`i` the two methods give terms :math:`a_i` and :math:`b_i` of the same
metric; the comparison is about the paired differences :math:`d_i = a_i - b_i`:

- difference: :math:`100 \cdot \bar d`, in percentage points (method a minus method b);
- interval: a paired bootstrap (BCa) of :math:`\bar d`, all three metrics over the same
  resamples of the samples;
- p-value, Average Drop and Average Gain: the Wilcoxon signed-rank test of the :math:`d_i`
  (SciPy, ``zero_method='wilcox'``: zero differences are left out; all zero gives 1);
- p-value, Average Increase: the exact McNemar test, a two-sided binomial test with
  probability 1/2 on the discordant pairs (no discordant pair gives 1).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from camavg_core import validation
from camavg_core.equations import (
    _checked_vectors,
    _to_numpy,
    drop_terms,
    gain_terms,
    increase_terms,
)
from camavg_core.result import METRICS
from camavg_core.stats import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    as_percent,
    bootstrap_mean_intervals,
    check_level,
)


@dataclasses.dataclass(frozen=True, eq=False)
class Comparison:
    """Method a against method b on the same samples, per metric.

    Attributes:
        difference: ``{"average_drop": a - b, ...}`` in percentage points.
        ci: ``{"average_drop": (low, high), ...}``, the paired interval of each difference,
            clipped to [-100, 100].
        p_value: ``{"average_drop": p, ...}``, two-sided; Wilcoxon for drop and gain, exact
            McNemar for increase.
        n: samples compared. skipped: samples left out as non-finite (``nan_policy='omit'``).
        level: the confidence level of ``ci``. names: the two methods' names, a first.
    """

    difference: dict[str, float]
    ci: dict[str, tuple[float, float]]
    p_value: dict[str, float]
    n: int
    level: float = 0.95
    names: tuple[str, str] = ("a", "b")
    skipped: int = 0

    def summary(self) -> str:
        """One line: every metric's difference, interval and p-value."""
        parts = []
        for name in METRICS:
            low, high = self.ci[name]
            parts.append(
                f"{name} {self.difference[name]:+.2f} pp [{low:+.2f}, {high:+.2f}] "
                f"p={self.p_value[name]:.3g}"
            )
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        return (
            f"{self.names[0]} - {self.names[1]} (n={self.n}{skipped}, "
            f"{100 * self.level:g}% CI): {'; '.join(parts)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types, ready for ``json.dumps``."""
        return {
            "names": list(self.names),
            "n": int(self.n),
            "skipped": int(self.skipped),
            "level": float(self.level),
            "difference": {name: float(value) for name, value in self.difference.items()},
            "ci": {name: [float(low), float(high)] for name, (low, high) in self.ci.items()},
            "p_value": {name: float(value) for name, value in self.p_value.items()},
        }

    def __str__(self) -> str:
        return self.summary()


def mcnemar_p_value(increase_a: Any, increase_b: Any) -> float:
    r"""Exact two-sided McNemar p-value of two paired 0/1 vectors.

    With :math:`b` pairs where only a is 1, :math:`c` where only b is 1, and
    :math:`m = b + c`: :math:`p = \min(1, 2 P(X \le \min(b, c)))`, :math:`X \sim
    \mathrm{Binomial}(m, 1/2)`, summed in log space so it holds for any :math:`m`.

    >>> mcnemar_p_value([1, 1, 1, 1, 0], [0, 0, 0, 0, 0])  # b=4, c=0: 2 / 2**4
    0.125
    """
    a = np.asarray(increase_a).astype(bool)
    b = np.asarray(increase_b).astype(bool)
    only_a = int(np.count_nonzero(a & ~b))
    only_b = int(np.count_nonzero(~a & b))
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    smaller = min(only_a, only_b)
    successes = np.arange(smaller + 1)
    log_choose = math.lgamma(discordant + 1) - np.array(
        [math.lgamma(k + 1) + math.lgamma(discordant - k + 1) for k in successes]
    )
    log_terms = log_choose - discordant * math.log(2.0)
    largest = log_terms.max()
    log_tail = largest + math.log(np.exp(log_terms - largest).sum())
    return float(min(1.0, 2.0 * math.exp(log_tail)))


def wilcoxon_p_value(differences: Any) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (SciPy, zeros left out).

    Needs SciPy (``pip install camavg[stats]``). All differences zero gives 1.

    >>> wilcoxon_p_value([0.1, 0.2, 0.3, 0.4, 0.5])  # exact: 2 / 2**5
    0.0625
    >>> wilcoxon_p_value([0.0, 0.0])
    1.0
    """
    values = np.asarray(differences, dtype=np.float64)
    if not np.any(values != 0):
        return 1.0
    try:
        from scipy.stats import wilcoxon
    except ImportError as exc:  # core needs NumPy only; the test statistics need SciPy
        raise ImportError(
            "The Wilcoxon signed-rank p-value of camavg_core.compare needs SciPy: "
            "pip install camavg[stats]"
        ) from exc
    p_value = float(wilcoxon(values, zero_method="wilcox").pvalue)
    # SciPy gives NaN only when no non-zero difference is left, which returned 1 above
    return p_value if math.isfinite(p_value) else 1.0


def _terms(y: np.ndarray, o: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "average_drop": drop_terms(y, o, backend="numpy"),
        "average_increase": increase_terms(y, o, backend="numpy"),
        "average_gain": gain_terms(y, o, backend="numpy"),
    }


def compare(
    y_c: Any,
    o_c_a: Any,
    o_c_b: Any,
    *,
    level: float = 0.95,
    names: tuple[str, str] = ("a", "b"),
    nan_policy: str = "raise",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: Any = DEFAULT_SEED,
) -> Comparison:
    """Compare two CAM methods, a and b, on the same samples.

    Args:
        y_c: (N,) scores of the target class on the inputs, probabilities.
        o_c_a: (N,) scores on the inputs masked by method a's CAMs.
        o_c_b: (N,) scores on the inputs masked by method b's CAMs, same samples and order.
        level: confidence level of the intervals.
        names: the two methods' names, for the summary line.
        nan_policy: ``'raise'`` (default) or ``'omit'``, which leaves out every sample with a
            non-finite score in any of the three vectors and counts it in ``skipped``.
        n_resamples, seed: of the paired bootstrap; the fixed default seed makes the interval
            reproducible.

    Returns:
        A :class:`Comparison`: difference a - b in percentage points, its interval and p-value,
        per metric.

    >>> y = [0.8, 0.8, 0.8, 0.8]
    >>> result = compare(y, [0.2, 0.3, 0.4, 0.5], y, names=("grad-cam", "unmasked"))
    >>> round(result.difference["average_drop"], 4)  # mean of 0.6, 0.5, 0.4, 0.3 over 0.8
    56.25
    >>> result.p_value["average_drop"], result.p_value["average_increase"]  # 2 / 2**4; no change
    (0.125, 1.0)
    """
    level = check_level(level)
    y, o_a = _checked_vectors(y_c, o_c_a, nan_policy)
    o_b = validation.as_score_vector(_to_numpy(o_c_b), "O_c_b")
    if o_b.shape != y.shape:
        raise ValueError(
            f"o_c_b has {o_b.shape[0]} scores but y_c has {y.shape[0]}: both CAM methods must "
            f"be scored on the same samples, in the same order."
        )
    validation.check_finite(o_b, "O_c_b", nan_policy)
    validation.check_probabilities(y, "Average Drop and Average Gain", upper=True)
    valid = np.isfinite(y) & np.isfinite(o_a) & np.isfinite(o_b)
    n = int(np.count_nonzero(valid))
    if n == 0:
        raise ValueError("Every sample was skipped as non-finite: there is nothing to compare.")
    y, o_a, o_b = (v[valid].astype(np.float64) for v in (y, o_a, o_b))

    terms_a, terms_b = _terms(y, o_a), _terms(y, o_b)
    differences = np.stack([terms_a[m] - terms_b[m] for m in METRICS], axis=1)
    # one bootstrap for the three metrics: the same resampled samples, as pairing requires
    bounds = bootstrap_mean_intervals(differences, level=level, n_resamples=n_resamples, seed=seed)
    p_value = {
        "average_drop": wilcoxon_p_value(differences[:, 0]),
        "average_increase": mcnemar_p_value(
            terms_a["average_increase"], terms_b["average_increase"]
        ),
        "average_gain": wilcoxon_p_value(differences[:, 2]),
    }
    return Comparison(
        difference={m: float(100.0 * differences[:, j].mean()) for j, m in enumerate(METRICS)},
        ci={m: as_percent(bounds[j], -100.0, 100.0) for j, m in enumerate(METRICS)},
        p_value=p_value,
        n=n,
        level=level,
        names=(str(names[0]), str(names[1])),
        skipped=int(valid.size - n),
    )
