"""Paired comparisons of CAM methods, and the demo's conclusion in plain words.

The comparisons come from ``camavg_core.compare_methods`` (a paired sign-flip test per pair of
methods, Holm-adjusted p-values, and ``better``: significant *and* beyond a margin). Every number
in the text is computed from the results of this run.
"""

from __future__ import annotations

import textwrap
from typing import Any, Mapping, Sequence

import numpy as np

from camavg_core import METRICS, compare_methods, smallest_sign_flip_p, ties
from camavg_core.compare import compare_results, curve_ties, sign_flip_floor
from camavg_core.metrics import metric_named, on_cam_mask, resolve_metrics

ROW_FIELDS = ("a", "b", "metric", "difference", "low", "high", "p_value", "p_adjusted", "test", "adjust", "better",
              "margin")
TEST_WORDS = {"sign_flip": "sign-flip permutation", "t": "Hall t"}


def _field(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def compare_pairs(y_c: np.ndarray, o_c: Mapping[str, np.ndarray], *, level: float = 0.95, nan_policy: str = "raise",
                  baseline: str | None = None, margin: float | None = None,
                  metrics: Any = None, results: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One record per (pair of methods, metric): the fields of :data:`ROW_FIELDS`; every pair, or
    each method against ``baseline``.

    ``difference`` is a minus b, in the metric's unit; ``p_adjusted`` is Holm-adjusted over the
    pairs, per metric; ``better`` names a method only when ``p_adjusted < 1 - level`` and the
    interval lies beyond ``margin`` (None: each metric's own, 0.5 points for the averages). The
    averages are compared on the score vectors; any other metric (Deletion, Insertion, ...)
    on the per-sample terms that ``results`` (``{method: Result}``) kept, as
    ``AveragesCam.compare`` does.
    """
    if len(o_c) < 2:
        return []
    described = resolve_metrics(metrics)
    averages = tuple(m for m in described if on_cam_mask(m))
    others = tuple(m for m in described if not on_cam_mask(m))
    table = None
    if averages:
        table = compare_methods(y_c, dict(o_c), level=level, adjust="holm", nan_policy=nan_policy,
                                baseline=baseline, margin=margin, metrics=averages)
    if others:
        table = compare_results(dict(results), others, baseline=baseline, level=level, margin=margin,
                                averages_table=table)
    return [{name: _plain(_field(row, name)) for name in ROW_FIELDS} for row in table.rows]


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _p(value: float) -> str:
    if value == 0.0:  # below the smallest float64: the t distribution's tail underflowed
        return "< 1e-300"
    return f"= {value:.2g}" if value >= 1e-3 else f"= {value:.1e}"


def _listed(names: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _value(metric: str, value: float) -> str:
    """A value in its metric's unit: percent to 2 decimals, a fraction (an AUC) to 3 (a value
    that is not 0 but would print as 0 with one significant digit: :meth:`Metric.format`)."""
    return metric_named(metric).format(value)


def _amount(metric: str, value: float) -> str:
    """A difference or a margin in words: '4.97 points' for a percentage, '0.052' for a fraction."""
    text = _value(metric, value)
    return f"{text} points" if metric_named(metric).unit == "percent" else text


def _margin(metric: str, margin: float) -> str:
    return f"{margin:g} points" if metric_named(metric).unit == "percent" else f"{margin:g}"


def _same_scores(first: Any, second: Any, metric: str) -> tuple[bool, float]:
    """Whether two methods gave the same scores to float precision on ``metric`` (the masked
    scores for an average, every step of the curves for a curve metric), and the largest gap."""
    paired_a, paired_b = (getattr(r, "paired", None) or {} for r in (first, second))
    if metric in paired_a and metric in paired_b:
        a, b = np.asarray(paired_a[metric], float), np.asarray(paired_b[metric], float)
        same = bool(np.all(curve_ties(a, b)))
    else:
        a, b = np.asarray(first.o_c, float), np.asarray(second.o_c, float)
        same = bool(np.all(ties(a, b)))
    return same, float(np.max(np.abs(a - b))) if a.size else 0.0


def _metric_lines(metric: str, results: Mapping[str, Any], methods: Sequence[str], rows: Sequence[Mapping[str, Any]],
                  level: float) -> list[str]:
    """One metric's part of the conclusion: its ranking, then one bullet per pair of methods,
    the smallest adjusted p first. Each bullet names the better method only where the row does
    (adjusted p below ``1 - level`` and the interval beyond the margin, in the metric's
    direction)."""
    description = metric_named(metric)
    title = description.title
    higher = description.higher_is_better
    metric_rows = [row for row in rows if row["metric"] == metric]
    test = TEST_WORDS.get(metric_rows[0]["test"], metric_rows[0]["test"]) if metric_rows else ""
    margin = metric_rows[0].get("margin", description.margin) if metric_rows else description.margin
    lines = [f"{title} ({description.meaning}; paired {test} test, margin {_margin(metric, margin)}):"]
    ranked = sorted(methods, key=lambda name: results[name].values[metric], reverse=higher)
    lines.append(f"  ranking by {title}: " + (" > " if higher else " < ").join(
        f"{name} ({_value(metric, results[name].values[metric])})" for name in ranked))
    direction = "higher" if higher else "lower"
    for row in sorted(metric_rows, key=lambda row: row["p_adjusted"]):
        # ahead: the method on the metric's better side; by: how far ahead, in the metric's
        # direction, with its interval (a - b and its interval, turned round where it reads so)
        sign = 1.0 if higher else -1.0
        a_ahead = sign * row["difference"] >= 0.0
        turn = sign if a_ahead else -sign
        ahead, behind = (row["a"], row["b"]) if a_ahead else (row["b"], row["a"])
        by = turn * row["difference"]
        low, high = sorted((turn * row["low"], turn * row["high"]))
        interval = f"{100 * level:g}% CI {_value(metric, low)} to {_amount(metric, high)}"
        same, gap = _same_scores(results[ahead], results[behind], metric)
        if same:
            if on_cam_mask(description):
                lines.append(f"  - {ahead} and {behind} give the same masked scores to float precision (largest "
                             f"difference {gap:.1e}): the same maps up to scale (see docs/command-line.md).")
            else:
                lines.append(f"  - {ahead} and {behind} give the same {title} curves to float precision (largest "
                             f"difference {gap:.1e}): the maps order the pixels alike.")
        elif row.get("better"):
            lines.append(f"  - {row['better']} is more faithful than {behind if row['better'] == ahead else ahead}: "
                         f"{title} {_amount(metric, by)} {direction} ({interval}), adjusted p {_p(row['p_adjusted'])}.")
        elif row["p_adjusted"] < 1 - level:
            lines.append(f"  - {ahead} and {behind}: a difference too small to matter ({title} {_amount(metric, by)} "
                         f"{direction} for {ahead}, {interval}, adjusted p {_p(row['p_adjusted'])}; the interval "
                         f"does not clear the {_margin(metric, row.get('margin', margin))} margin).")
        elif row["p_value"] < 1 - level and (low > 0.0 or high < 0.0):
            # the interval and p are the pair's alone: they can exclude 0 where Holm's adjusted
            # p does not reject, and the bullet says so rather than leave the two to disagree
            lines.append(f"  - {ahead} and {behind}: no clear difference after Holm's adjustment ({title} "
                         f"{_amount(metric, by)} {direction} for {ahead}, {interval}; this interval and p "
                         f"{_p(row['p_value'])} are for the pair alone, adjusted p {_p(row['p_adjusted'])}).")
        else:
            lines.append(f"  - {ahead} and {behind}: no clear difference ({title} {_amount(metric, by)} "
                         f"{direction} for {ahead}, {interval}, adjusted p {_p(row['p_adjusted'])}).")
    return lines


def _too_few(n: int, pairs: int, level: float, rows: Sequence[Mapping[str, Any]]) -> str | None:
    """Where the sign-flip test cannot reject at ``1 - level`` after Holm's adjustment with
    ``n`` images, whatever the maps (:func:`camavg_core.compare.sign_flip_floor`), the
    sentence that says so; else None. Every bullet's "no clear difference" is then the test's
    floor, not the data's answer."""
    alpha = 1.0 - level
    smallest = sign_flip_floor(n, pairs, level, (row["test"] for row in rows))
    if smallest is None:
        return None
    needed = n + 1
    while smallest_sign_flip_p(needed, pairs) >= alpha:
        needed += 1
    adjusted = f", {smallest:.2g} once adjusted for the {pairs} pairs" if pairs > 1 else ""
    return (f"With {n} images no pair can be called different, whatever the maps: the sign-flip test's smallest "
            f"p-value is 2 / 2^{n} = {smallest_sign_flip_p(n):.2g}{adjusted}, not below {alpha:g}. Each \"no clear "
            f"difference\" below says only that; {needed} images or more can show a difference.")


def conclusion(results: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], references: Mapping[str, str], *,
               level: float = 0.95) -> str:
    """The conclusion in words: which CAM methods beat which, on each measured metric that has a
    ``meaning`` (Average Drop, Deletion, Insertion, MuFidelity, ROAD; not Average Increase or
    Gain), and, with Average Drop, where the reference maps landed.

    Args:
        results: ``{method: Result}`` of this run, CAM methods and reference maps.
        rows: :func:`compare_pairs` records over the CAM methods only.
        references: ``{reference name: what the map is}``.
        level: the level of the rows' intervals; a difference is clear when the row names a
            ``better`` method (adjusted p below ``1 - level`` and the interval beyond the margin).
    """
    methods = [name for name in results if name not in references]
    measured = next(iter(results.values())).values
    stated = [metric for metric in measured if metric_named(metric).meaning]
    if not stated:
        readable = [metric.title for metric in METRICS.values() if metric.meaning]
        return ("No conclusion in words: it reads " + _listed(readable).replace(" and ", " or ")
                + ", and none was measured (see --metrics).")
    n = next(iter(results.values())).n
    pairs = len({(row["a"], row["b"]) for row in rows})
    lines = [f"What the numbers say, metric by metric (paired tests on the same {n} images, p-values "
             f"Holm-adjusted over the {pairs} pairs of CAM methods for each metric; a method is called more "
             f"faithful only when the difference is significant and its {100 * level:g}% interval lies beyond "
             f"the metric's margin):"]
    floor = _too_few(n, pairs, level, rows)
    if floor:
        lines.append(floor)
    for metric in stated:
        lines += _metric_lines(metric, results, methods, rows, level)
    if methods and references and "average_drop" in measured:  # the command line's own CAM sets come without reference maps
        ranked = sorted(methods, key=lambda name: results[name].average_drop)
        low_drop = min(results[name].average_drop for name in methods)
        high_drop = max(results[name].average_drop for name in methods)
        lines.append(f"Reference maps, as measured (the CAM methods span Average Drop {_value('average_drop', low_drop)} "
                     f"to {_value('average_drop', high_drop)}):")
        for name, what in references.items():
            if name not in results:
                continue
            drop = results[name].average_drop
            beaten = [method for method in ranked if results[method].average_drop > drop]
            if len(beaten) == len(ranked):
                where = "lower than every CAM method"
            elif not beaten:
                where = "higher than every CAM method"
            else:
                where = f"lower than {_listed(beaten)}, so those maps keep less evidence than this one"
            others = ", ".join(f"{metric_named(metric).title} {_value(metric, value)}"
                               for metric, value in results[name].values.items() if metric != "average_drop")
            lines.append(f"  - {name} = {what}: Average Drop {_value('average_drop', drop)}, {where}"
                         + (f"; {others}." if others else "."))
    # Long lines wrap (bullets and rankings under their own text), so the paragraph reads in a
    # 100-column terminal.
    return "\n".join(textwrap.fill(line, 100, subsequent_indent="    " if line.startswith("  ") else "",
                                   break_on_hyphens=False, break_long_words=False) for line in lines)
