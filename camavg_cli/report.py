"""What the ``camavg`` command writes: the table, ``results.json``, ``results.csv``, ``report.png``.

The text outputs need nothing but the standard library. ``report.png`` needs matplotlib, which is
imported only when the picture is drawn, through its object API (``Figure`` and the Agg canvas),
so drawing never changes pyplot's global backend in the caller's process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO, Mapping, Sequence

import numpy as np

from camavg_core.compare import format_p
from camavg_core.metrics import METRICS, Metric, metric_named, resolve_metrics
from camavg_core.state import Result
from camavg_cli.output import csv_text


def metrics_of(results: Mapping[str, Result]) -> list[str]:
    """The metric names of the results, in their order (every result has the same metrics).

    >>> metrics_of({"gradcam": Result({"average_gain": 3.0, "average_drop": 12.5}, n=4)})
    ['average_gain', 'average_drop']
    """
    first = next(iter(results.values()), None)
    return list(METRICS) if first is None else list(first.values)


def title_of(name: str) -> str:
    return metric_named(name).title


def direction_of(name: str) -> str:
    """Which way is better, for the plot titles: a faithful CAM keeps the evidence."""
    return "higher is better" if metric_named(name).higher_is_better else "lower is better"


# ----------------------------------------------------------------------------- records
def result_records(results: Mapping[str, Result], recipes: Mapping[str, str] | None = None,
                   metrics: Any = None) -> list[dict[str, Any]]:
    """One JSON-ready object per method: ``method``, ``recipe``, the ``settings`` of the
    ``metrics`` measured (names or descriptions, as ``evaluate`` took them) that have any
    (``{"road": "Road(fractions=..., noise=2.55, ...)"}``; the averages have none), then
    ``Result.to_dict()``."""
    recipes = recipes or {}
    described = resolve_metrics(metrics) if metrics is not None else ()
    settings = {metric.name: metric.settings for metric in described if metric.settings}
    extra = {"settings": settings} if settings else {}
    return [{"method": method, "recipe": recipes.get(method, ""), **extra, **result.to_dict()}
            for method, result in results.items()]


# ----------------------------------------------------------------------------- text
def _with_interval(metric: str, value: float, interval: Sequence[float] | None) -> str:
    shown = metric_named(metric).format
    if interval is None:
        return shown(value)
    low, high = interval
    return f"{shown(value)} [{shown(low)}, {shown(high)}]"


def format_table(results: Mapping[str, Result], recipes: Mapping[str, str] | None = None) -> str:
    """The results as an aligned text table, intervals in brackets once they exist.

    >>> three = dict(zip(METRICS, (12.5, 25.0, 3.0)))
    >>> table = format_table({"gradcam": Result(three, n=4)})
    >>> print(table)  # doctest: +NORMALIZE_WHITESPACE
    method   Average Drop  Average Increase  Average Gain  n
    gradcam         12.50             25.00          3.00  4
    """
    metrics = metrics_of(results)
    any_ci = any(result.ci is not None for result in results.values())
    any_skipped = any(result.skipped for result in results.values())
    header = ["method"] + [title_of(m) + (" [95% CI]" if any_ci else "") for m in metrics] + ["n"]
    if any_ci:
        levels = {result.level for result in results.values() if result.ci is not None}
        if levels != {0.95}:
            header[1:1 + len(metrics)] = [
                title_of(m) + f" [{', '.join(f'{level:.0%}' for level in sorted(levels))} CI]" for m in metrics
            ]
    if any_skipped:
        header.append("skipped")
    rows = []
    for method, result in results.items():
        row = [method] + [
            _with_interval(metric, result.values[metric], None if result.ci is None else result.ci.get(metric))
            for metric in metrics
        ] + [str(result.n)]
        if any_skipped:
            row.append(str(result.skipped))
        rows.append(row)
    table = _align([header] + rows)
    if recipes:
        width = max(len(method) for method in recipes)
        table += "\nhow each map was made:\n" + "\n".join(
            f"  {method.ljust(width)}  {recipe}" for method, recipe in recipes.items() if method in results
        )
    return table


def format_comparison_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Every pair of methods: the difference (a - b) per metric, its interval and adjusted p-value."""
    pairs: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        pairs.setdefault((row["a"], row["b"]), {})[row["metric"]] = row
    metrics = list(dict.fromkeys(row["metric"] for row in rows))
    header = ["method a - method b"] + [f"{title_of(m)} diff [CI] p (adjusted)" for m in metrics]
    lines = []
    for (method_a, method_b), by_metric in pairs.items():
        line = [f"{method_a} - {method_b}"]
        for metric in metrics:
            entry = by_metric.get(metric)
            line.append("" if entry is None else
                        f"{_with_interval(metric, entry['difference'], (entry['low'], entry['high']))} "
                        f"p{format_p(entry['p_adjusted'])}" + (f" {entry['better']} better" if entry.get("better") else ""))
        lines.append(line)
    return _align([header] + lines)


def _align(rows: list[list[str]]) -> str:
    """Left-align the first column, right-align the numbers."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_json(records: Any) -> str:
    """``json.dumps`` with a stable layout (the records are NaN-free by construction)."""
    return json.dumps(records, indent=2, allow_nan=False)


def csv_fields(metrics: Sequence[str]) -> list[str]:
    """The columns of ``results.csv``: the method, each metric with its interval, the counts."""
    return (
        ["method"]
        + [f"{metric}{suffix}" for metric in metrics for suffix in ("", "_low", "_high")]
        + ["n", "skipped", "level", "recipe"]
    )


CSV_FIELDS = csv_fields(list(METRICS))
COMPARISON_FIELDS = ("a", "b", "metric", "difference", "low", "high", "p_value", "p_adjusted", "test", "adjust", "better",
                     "margin")


def format_csv(results: Mapping[str, Result], recipes: Mapping[str, str] | None = None) -> str:
    """One row per method; text quoted (formula-like text escaped), numbers bare.

    >>> print(format_csv({"=ones": Result(dict(zip(METRICS, (0.0, 0.0, -1.0))), n=3)}).splitlines()[1])
    "'=ones",0.0,"","",0.0,"","",-1.0,"","",3,0,0.95,""
    """
    recipes = recipes or {}
    metrics = metrics_of(results)
    rows = []
    for method, result in results.items():
        row: dict[str, Any] = {"method": method, "n": int(result.n), "skipped": int(result.skipped),
                               "level": float(result.level), "recipe": recipes.get(method, "")}
        for metric in metrics:
            row[metric] = float(result.values[metric])
            interval = None if result.ci is None else result.ci.get(metric)
            row[f"{metric}_low"] = "" if interval is None else float(interval[0])
            row[f"{metric}_high"] = "" if interval is None else float(interval[1])
        rows.append(row)
    return csv_text(csv_fields(metrics), rows)


def text_outputs(
    results: Mapping[str, Result],
    recipes: Mapping[str, str] | None = None,
    comparisons: Sequence[Mapping[str, Any]] | None = None,
    conclusion: str | None = None,
    metrics: Any = None,
) -> dict[str, bytes]:
    """``{file name: content}``: ``results.json``, ``results.csv`` (and ``comparisons.json``/``.csv``,
    ``conclusion.txt``), for :func:`camavg_cli.output.write_outputs`; ``metrics`` as for
    :func:`result_records`.

    >>> sorted(text_outputs({"gradcam": Result(dict(zip(METRICS, (12.5, 25.0, 3.0))), n=4)}, conclusion="In words."))
    ['conclusion.txt', 'results.csv', 'results.json']
    """
    files = {"results.json": format_json(result_records(results, recipes, metrics)) + "\n",
             "results.csv": format_csv(results, recipes)}
    if comparisons:
        files["comparisons.json"] = format_json(list(comparisons)) + "\n"
        files["comparisons.csv"] = csv_text(COMPARISON_FIELDS, comparisons)
    if conclusion:
        files["conclusion.txt"] = conclusion + "\n"
    return {name: text.encode("utf-8") for name, text in files.items()}


# ----------------------------------------------------------------------------- picture
def _three_channels(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float64: grey repeated for one channel, the channel mean for other counts."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    if image.shape[-1] != 3:
        return np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1)
    return image


def _display_range(image: np.ndarray) -> tuple[float, float]:
    """(low, high) mapped to black and white: [0, 1] when the image fits, else its own range."""
    finite = image[np.isfinite(image)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return (0.0, 1.0) if low >= 0.0 and high <= 1.0 else (low, high)


def _displayable(image: np.ndarray, display_range: tuple[float, float]) -> np.ndarray:
    """``image`` in [0, 1] for imshow, with ``display_range`` mapped to black and white.

    The masked input is drawn with its image's range, so that what the model saw shows: with
    inputs in [-1, 1] a CAM of 0 gives 0, which is drawn grey, not black.

    >>> _displayable(np.array([[[-1.0], [0.0], [1.0]]]), (-1.0, 1.0))[0, :, 0].tolist()
    [0.0, 0.5, 1.0]
    """
    low, high = display_range
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return np.clip(np.nan_to_num(_three_channels(scaled)), 0.0, 1.0)


def _resized(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D map, for display only."""
    cam = np.asarray(cam, dtype=np.float64)
    rows = (np.arange(height) * cam.shape[0] // height).clip(0, cam.shape[0] - 1)
    cols = (np.arange(width) * cam.shape[1] // width).clip(0, cam.shape[1] - 1)
    return cam[rows][:, cols]


def _metric_bars(axes, results: Mapping[str, Result], metric: str) -> None:
    methods = list(results)
    description = metric_named(metric)
    values = np.array([results[m].values[metric] for m in methods])
    positions = np.arange(len(methods))
    colours = ["#8c8c8c" if m.startswith("reference:") else "#3b75af" for m in methods]
    errors = None
    if all(results[m].ci is not None and metric in results[m].ci for m in methods):
        bounds = np.array([results[m].ci[metric] for m in methods], dtype=np.float64)
        errors = np.vstack([values - bounds[:, 0], bounds[:, 1] - values]).clip(min=0.0)
    axes.barh(positions, values, xerr=errors, color=colours, capsize=3, error_kw={"elinewidth": 1})
    axes.set_yticks(positions, methods, fontsize=8)
    axes.invert_yaxis()  # first method on top, as in the table
    unit = " (%)" if description.unit == "percent" else ""
    # two lines: five metrics' titles side by side on one line would run into each other
    axes.set_title(f"{title_of(metric)}{unit}\n{direction_of(metric)}", fontsize=9)
    axes.tick_params(axis="x", labelsize=8)
    axes.grid(axis="x", alpha=0.3)
    upper = float(np.max(values if errors is None else values + errors[1])) if len(values) else 0.0
    lower = float(np.min(values if errors is None else values - errors[0])) if len(values) else 0.0
    # from 0, or from the lowest whisker where a value or interval is negative (ROAD and
    # MuFidelity can be), to the top of the metric's range ([0, 1] at least, ROAD's 0.5)
    axes.set_xlim(min(0.0, lower * 1.2), max(upper * 1.2, min(1.0, description.bounds[1])))
    if lower < 0.0:
        axes.axvline(0.0, color="black", linewidth=0.6)
    # Labels sit past the upper whisker, so they never cover it; they read as the table and the
    # conclusion do (-0.001, not -0.00: Metric.format)
    label_at = values if errors is None else values + errors[1]
    for position, value, x in zip(positions, values, label_at):
        axes.text(x, position, f"  {description.format(value)}", va="center", ha="left", fontsize=7)


#: curve metrics whose mean curves per method the report draws, and what their x axis is
CURVE_PLOTS = {"deletion": "fraction of pixels set to the baseline, most salient first",
               "insertion": "fraction of pixels restored, most salient first",
               "road": "fraction removed (solid: MoRF, most salient first; dashed: LeRF)"}


def _positions(metric: Metric, width: int) -> tuple[np.ndarray, str]:
    """The x of a curve of ``width`` points and its axis label: its perturbation's
    ``fractions`` (ROAD's; Deletion's and Insertion's K + 1 steps from 0 to ``max_fraction``);
    the step index where they do not account for ``width`` points (never a guessed fraction)."""
    fractions = getattr(metric.perturbation, "fractions", None)
    if fractions is None or len(fractions) != width:
        return np.arange(width, dtype=np.float64), "step"
    return np.asarray(fractions, dtype=np.float64), CURVE_PLOTS[metric.name]


def _mean_curves(part: Any, results: Mapping[str, Result], names: Sequence[str], metrics: tuple = ()) -> None:
    """One panel per curve metric: each method's mean curves (score against the fraction of
    pixels perturbed, from the metric's description among ``metrics``, else the registered
    one; ROAD's MoRF and LeRF in one colour), the curves whose area or mean makes the metric."""
    axes_row = part.subplots(1, len(names), squeeze=False)[0]
    for axes, name in zip(axes_row, names):
        metric, label_x = metric_named(name, metrics), "step"
        for method, result in results.items():
            colour = None
            for curve, style in zip((result.curves or {}).get(name) or (), ("-", "--")):
                mean = np.nanmean(np.asarray(curve, dtype=np.float64), axis=0)
                x, label_x = _positions(metric, mean.size)
                label = f"{method} ({metric.format(result.values[name])})" if colour is None else "_"
                (line,) = axes.plot(x, mean, style, marker=".", label=label, color=colour)
                colour = line.get_color()
        axes.set_title(f"{name}: mean curve per method (the metric in the legend)", fontsize=9)
        axes.set_xlabel(label_x, fontsize=8)
        axes.set_ylabel("score of the target class", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.legend(fontsize=7)
    part.subplots_adjust(left=0.08, right=0.98, bottom=0.2, top=0.86, wspace=0.2)


def plot_report(
    path: str | Path | BinaryIO,
    results: Mapping[str, Result],
    images: np.ndarray,
    cams: Mapping[str, np.ndarray],
    *,
    n_samples: int = 3,
    title: str = "camavg: CAM faithfulness",
    metrics: Any = None,
) -> Path | BinaryIO:
    """Draw ``report.png``: bars per metric with their intervals, then a grid of samples.

    The grid has one row per method and, for each of the first ``n_samples`` images, three
    panels: the image, the CAM over it, and the masked image the model was scored on.

    Args:
        path: where to write the PNG: a path, or a binary file such as ``io.BytesIO()``.
        results: ``{method: Result}``.
        images: (N, H, W, C) channels-last inputs (shown min-max scaled if outside [0, 1]).
        cams: ``{method: (N, h, w)}`` maps in [0, 1], same keys as ``results``.
        n_samples: images shown per method.
        title: the figure's title.
        metrics: the metrics measured, names or descriptions (as ``evaluate`` took them): a
            description passed here sets its curves' x (ROAD's ``fractions``, Deletion's
            ``steps`` and ``max_fraction``); a name, the registered one's.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    methods = list(results)
    images = np.asarray(images)
    n_samples = max(1, min(n_samples, images.shape[0]))
    n_columns = 3 * n_samples
    bar_height = 0.3 * len(methods) + 1.2
    grid_height = 1.2 * len(methods)
    curve_names = [name for name in CURVE_PLOTS if any((r.curves or {}).get(name) for r in results.values())]
    curve_height = 2.6 if curve_names else 0.0
    figure = Figure(figsize=(max(11.0, 1.25 * n_columns + 2.0), bar_height + curve_height + grid_height + 0.6), dpi=110)
    FigureCanvasAgg(figure)
    if curve_names:
        top, middle, bottom = figure.subfigures(
            3, 1, height_ratios=[bar_height + 0.3, curve_height, grid_height + 0.3])
        _mean_curves(middle, results, curve_names, resolve_metrics(metrics) if metrics is not None else ())
    else:
        top, bottom = figure.subfigures(2, 1, height_ratios=[bar_height + 0.3, grid_height + 0.3])

    names = metrics_of(results)
    bar_axes = top.subplots(1, len(names), squeeze=False)[0]
    for axes, metric in zip(bar_axes, names):
        _metric_bars(axes, results, metric)
    for axes in bar_axes[1:]:
        axes.set_yticklabels([])
    # the title in the bars' own part, above their titles: the parts share the figure's height exactly
    top.suptitle(title, fontsize=12, y=0.99)
    top.subplots_adjust(left=0.17, right=0.98, bottom=0.14, top=0.74, wspace=0.08)
    top.text(0.5, 0.01, "blue: CAM methods, grey: reference maps; whiskers: each method's own confidence interval "
             "(when computed). Whether two methods differ is the paired test's answer (comparisons.csv,\n"
             "conclusion.txt: the demo's, or evaluate --compare's), not whether their whiskers overlap. Below: each image, its CAM, and the masked image "
             "(image x CAM) the model is scored on.", ha="center", va="bottom", fontsize=8, color="#444444")

    grid = bottom.subplots(len(methods), n_columns, squeeze=False)
    for row, method in enumerate(methods):
        for sample in range(n_samples):
            raw = _three_channels(images[sample])
            display_range = _display_range(raw)
            image = _displayable(raw, display_range)
            cam = _resized(np.asarray(cams[method][sample]), image.shape[0], image.shape[1])
            panels = grid[row, 3 * sample : 3 * sample + 3]
            panels[0].imshow(image, interpolation="nearest")
            panels[1].imshow(image, interpolation="nearest")
            panels[1].imshow(cam, cmap="jet", alpha=0.5, vmin=0.0, vmax=1.0, interpolation="bilinear")
            # The masked input as the model saw it (input x CAM), drawn on the image's own scale.
            panels[2].imshow(_displayable(raw * cam[..., None], display_range), interpolation="nearest")
            if row == 0:
                for panel, name in zip(panels, ("image", "CAM", "masked")):
                    panel.set_title(f"{name} {sample + 1}", fontsize=8)
        grid[row, 0].set_ylabel(method, rotation=0, ha="right", va="center", fontsize=8)
    for axes in grid.ravel():
        axes.set_xticks([])
        axes.set_yticks([])
    bottom.subplots_adjust(left=0.17, right=0.98, bottom=0.01, top=0.96, wspace=0.05, hspace=0.08)

    if isinstance(path, (str, Path)):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
