"""Paired comparisons of CAM methods, and the demo's conclusion in plain words.

The comparisons come from ``camavg_core.compare_methods`` (a paired sign-flip test per pair of
methods, Holm-adjusted p-values, and ``better``: significant *and* beyond a margin). Every number
in the text is computed from the results of this run.
"""

from __future__ import annotations

import textwrap
from typing import Any, Mapping, Sequence

import numpy as np

from camavg_core import DEFAULT_MARGIN, METRICS, compare_methods, ties
from camavg_core.compare import compare_results
from camavg_core.metrics import metric_named, on_cam_mask, resolve_metrics

METRIC_TITLES = {name: metric.title for name, metric in METRICS.items()}
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


def conclusion(results: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], references: Mapping[str, str], *,
               level: float = 0.95) -> str:
    """The demo's conclusion: which CAM methods beat which, and where the reference maps landed.

    Args:
        results: ``{method: Result}`` of this run, CAM methods and reference maps.
        rows: :func:`compare_pairs` records over the CAM methods only.
        references: ``{reference name: what the map is}``.
        level: the level of the rows' intervals; a difference is clear when the row names a
            ``better`` method (adjusted p below ``1 - level`` and the interval beyond the margin).
    """
    methods = [name for name in results if name not in references]
    if "average_drop" not in next(iter(results.values())).values:
        return "No conclusion in words: it reads Average Drop, which was not measured (see --metrics)."
    drop_rows = [row for row in rows if row["metric"] == "average_drop"]
    n = next(iter(results.values())).n
    test = TEST_WORDS.get(drop_rows[0]["test"], drop_rows[0]["test"]) if drop_rows else ""
    margin = drop_rows[0].get("margin", DEFAULT_MARGIN) if drop_rows else DEFAULT_MARGIN
    lines = [
        "What the numbers say (Average Drop: lower means the map keeps more of the evidence the model",
        f"uses, i.e. more faithful; paired {test} test on the same {n} images,",
        f"p-values Holm-adjusted over the {len(drop_rows)} pairs of CAM methods; a method is called more",
        f"faithful only when the difference is significant and its {100 * level:g}% interval lies beyond "
        f"{margin:g} points):",
    ]
    ranked = sorted(methods, key=lambda name: results[name].average_drop)
    lines.append("  ranking by Average Drop: " + " < ".join(f"{name} ({results[name].average_drop:.2f})" for name in ranked))
    for row in sorted(drop_rows, key=lambda row: row["p_adjusted"]):
        # lower_by: how much lower the lower-drop method's drop is, with its interval.
        if row["difference"] > 0:  # a - b > 0: b has the lower drop
            lower, higher, lower_by, low, high = row["b"], row["a"], row["difference"], row["low"], row["high"]
        else:
            lower, higher, lower_by, low, high = row["a"], row["b"], -row["difference"], -row["high"], -row["low"]
        interval = f"{100 * level:g}% CI {low:.2f} to {high:.2f} points"
        same = bool(np.all(ties(np.asarray(results[lower].o_c, float), np.asarray(results[higher].o_c, float))))
        if same:
            gap = np.max(np.abs(np.asarray(results[lower].o_c, float) - np.asarray(results[higher].o_c, float)))
            lines.append(f"  - {lower} and {higher} give the same masked scores to float precision (largest "
                         f"difference {gap:.1e}): the same maps up to scale (see docs/command-line.md).")
        elif row.get("better"):
            lines.append(f"  - {row['better']} is more faithful than {higher if row['better'] == lower else lower}: "
                         f"Average Drop {lower_by:.2f} points lower ({interval}), adjusted p {_p(row['p_adjusted'])}.")
        elif row["p_adjusted"] < 1 - level:
            lines.append(f"  - {lower} and {higher}: a difference too small to matter (Average Drop {lower_by:.2f} "
                         f"points lower for {lower}, {interval}, adjusted p {_p(row['p_adjusted'])}; the interval "
                         f"does not clear the {margin:g}-point margin).")
        else:
            lines.append(f"  - {lower} and {higher}: no clear difference (Average Drop {lower_by:.2f} points "
                         f"lower for {lower}, {interval}, adjusted p {_p(row['p_adjusted'])}).")
    if methods and references:  # the command line's own CAM sets come without reference maps
        low_drop = min(results[name].average_drop for name in methods)
        high_drop = max(results[name].average_drop for name in methods)
        lines.append(f"Reference maps, as measured (the CAM methods span Average Drop {low_drop:.2f} to {high_drop:.2f}):")
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
            others = ", ".join(f"{metric_named(metric).title} {value:.2f}"
                               for metric, value in results[name].values.items() if metric != "average_drop")
            lines.append(f"  - {name} = {what}: Average Drop {drop:.2f}, {where}" + (f"; {others}." if others else "."))
    # Long bullets wrap under their own text, so the paragraph reads in an 100-column terminal.
    return "\n".join(textwrap.fill(line, 100, subsequent_indent="    ", break_on_hyphens=False)
                     if line.startswith("  - ") else line for line in lines)
