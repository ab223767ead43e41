"""Does camavg's paired test hold its level? A simulation, printed as a table (issue 20, item 2).

Under exchangeable methods the two methods' terms on a sample are iid draws, so each paired
difference is symmetric about 0 and the mean difference is 0. For each kind of term and each n,
``trials`` samples of n paired differences are drawn (fixed seeds) and each is tested at level
0.05 with:

- sign flip: camavg's default (``camavg_core.stats``), exact under exchangeability;
- Hall t: the skewness-corrected t test from sums (what a merged ``PairState`` gives);
- plain t: Student's paired t test (``scipy.stats.ttest_1samp``), for reference.

The rejection rate is 1 - the coverage of the interval (test and interval are dual, and the true
mean is 0). Requirements: at most 6.5% everywhere; at least 2% where n >= 30 and at least 15% of
the differences are non-zero (the "calibrated" column). A last block draws a skewed alternative
(method a better on 17% of samples) and gives the interval's coverage of the true mean.

Run: ``python -m benchmarks.paired_test_level [--trials 2000]`` (about 3-6 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from camavg_core.stats import sign_flip_p_values
from camavg_core.stats import _scipy_stats, hall_t_test

LEVEL = 0.95
ALPHA = 1 - LEVEL
SIZES = (30, 50, 100, 1000)


def zero_inflated(rng, shape, share, draw):
    """Terms that are 0 with probability 1 - share, else ``draw(size)``."""
    return np.where(rng.random(shape) < share, draw(shape), 0.0)


# name: (terms of one method: rng, shape -> values in [0, 1]; expected share of non-zero differences)
KINDS = {
    "drop, 50% non-zero, Beta(2, 3)": (lambda rng, s: zero_inflated(rng, s, 0.5, lambda t: rng.beta(2, 3, t)), 0.75),
    "gain, 17% non-zero, Beta(1, 2)": (lambda rng, s: zero_inflated(rng, s, 0.17, lambda t: rng.beta(1, 2, t)), 0.31),
    "heavy-tailed, 30% non-zero, Pareto(1.2)/50": (
        lambda rng, s: zero_inflated(rng, s, 0.3, lambda t: np.minimum(1.0, (rng.pareto(1.2, t) + 1) / 50)), 0.51),
    "skewed, 15% non-zero, Beta(0.3, 5)": (lambda rng, s: zero_inflated(rng, s, 0.15, lambda t: rng.beta(0.3, 5, t)), 0.28),
    "increase, rate 0.3": (lambda rng, s: (rng.random(s) < 0.3).astype(float), 0.42),
    "sparse gain, 5% non-zero": (lambda rng, s: zero_inflated(rng, s, 0.05, lambda t: rng.beta(1, 2, t)), 0.10),
}


def differences(kind: str, n: int, trials: int) -> np.ndarray:
    """(n, trials) paired differences of two exchangeable methods, fixed seed per cell."""
    draw, _ = KINDS[kind]
    rng = np.random.default_rng([n, trials, list(KINDS).index(kind)])
    return draw(rng, (n, trials)) - draw(rng, (n, trials))


def p_values(d: np.ndarray, chunk: int = 250) -> dict[str, np.ndarray]:
    """The three tests' p-values of mean 0, one per column of d (n, trials)."""
    n = d.shape[0]
    flips = np.concatenate([sign_flip_p_values(d[:, i:i + chunk]) for i in range(0, d.shape[1], chunk)])
    sums = d.sum(axis=0), (d * d).sum(axis=0), (d**3).sum(axis=0)
    hall = np.array([hall_t_test(n, *column) for column in zip(*sums)])
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant columns: scipy's precision note
        plain = _scipy_stats().ttest_1samp(d, 0.0, axis=0).pvalue
    plain = np.where(np.isfinite(plain), plain, 1.0)  # all-zero columns: no evidence
    return {"sign flip": flips, "Hall t": hall, "plain t": plain}


def level_table(trials: int, sizes=SIZES, kinds=None) -> list[dict]:
    rows = []
    for kind in kinds or KINDS:
        for n in sizes:
            d = differences(kind, n, trials)
            share = float(np.mean(d != 0))
            rejected = {name: float(np.mean(p < ALPHA)) for name, p in p_values(d).items()}
            rows.append({"kind": kind, "n": n, "nonzero": share, "calibrated": n >= 30 and share >= 0.15, **rejected})
    return rows


def skewed_alternative(trials: int, sizes=SIZES) -> list[dict]:
    """Method a better on 17% of samples by Beta(1, 2): d >= 0, mean 0.17 / 3; coverage of that mean."""
    rows = []
    truth = 0.17 / 3
    for n in sizes:
        rng = np.random.default_rng([n, trials, 99])
        d = zero_inflated(rng, (n, trials), 0.17, lambda t: rng.beta(1, 2, t))
        covered = {name: float(np.mean(p >= ALPHA)) for name, p in p_values(d - truth).items()}
        rows.append({"kind": "a better on 17%, Beta(1, 2)", "n": n, **covered})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"Rejection rate at level {ALPHA:g} under exchangeable methods ({args.trials} trials per cell)")
    print(f"{'terms of each method':44} {'n':>5} {'non-zero':>8} {'sign flip':>9} {'Hall t':>7} {'plain t':>7}  calibrated")
    for row in level_table(args.trials):
        print(f"{row['kind']:44} {row['n']:5d} {row['nonzero']:8.0%} {row['sign flip']:9.1%} "
              f"{row['Hall t']:7.1%} {row['plain t']:7.1%}  {'yes' if row['calibrated'] else 'no (flagged)'}")
    print(f"\nCoverage of the true mean difference at level {LEVEL:g}, skewed alternative")
    print(f"{'':44} {'n':>5} {'':8} {'sign flip':>9} {'Hall t':>7} {'plain t':>7}")
    for row in skewed_alternative(args.trials):
        print(f"{row['kind']:44} {row['n']:5d} {'':8} {row['sign flip']:9.1%} {row['Hall t']:7.1%} {row['plain t']:7.1%}")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
